"""Metadata inside every exported file, readable without TensorFlow.

ONNX: `metadata_props` (read through onnxruntime's custom_metadata_map).
TFLite: one entry named "edgedigits" in the flatbuffer's `metadata` table, whose
buffer holds the same key/value pairs as JSON.
Keras: the `metrics.json`/`config.json` of the run directory beside the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgedigits import __version__
from edgedigits.contract import LABELS, PREPROCESSING, scale_pixels
from edgedigits.errors import MissingExtraError, ModelError, first_line

TFLITE_METADATA_NAME = "edgedigits"
PROBE_SEED = 20_261_125
# how far a model's outputs on the probe may move before the file counts as corrupt
# (int8: 0.02 is 5 steps of the 1/256 output quantization)
FINGERPRINT_TOLERANCE = {"none": 1e-4, "fp16": 1e-2, "int8": 0.02}
PROBE_SCALES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def probe_inputs() -> np.ndarray:
    """Fixed inputs float32 [8, 28, 28]: noise reaches every weight, unlike a clean digit,
    and most of it is faint, so the softmax is not saturated and any changed logit shows.
    (Full-strength noise alone saturates it: 24 of 144 harmful bit flips in an fp16 model
    passed that probe; none pass this one.)"""
    noise = np.random.default_rng(PROBE_SEED).random((8, 28, 28), dtype=np.float32)
    return noise * np.asarray(PROBE_SCALES, np.float32)[:, None, None]


MAX_LABEL_CHANGES = 1  # near-ties may flip between CPUs; a damaged model flips more


def label_probe() -> np.ndarray:
    """The 300 shipped MNIST test digits as model input, float32 [300, 28, 28]: a corrupted
    weight that only real digits exercise changes some of their labels (noise may not)."""
    from edgedigits.assets import shipped_digits

    return scale_pixels(shipped_digits()[0])


def probe_labels(predict) -> str:  # noqa: ANN001  (a Classifier's predict)
    """The labels on label_probe() as a string of digits, as stored in the metadata."""
    return "".join(str(int(v)) for v in predict(label_probe()))


def fingerprint(proba: np.ndarray) -> str:
    """The model's outputs on probe_inputs(), as stored in the metadata."""
    return json.dumps(np.round(np.asarray(proba, dtype=np.float64), 6).tolist(), separators=(",", ":"))


def check_probe_labels(path: Path, meta: dict[str, str], predict) -> None:  # noqa: ANN001
    """Raise ModelError when the labels on the shipped digits differ from those at export."""
    expected = meta.get("probe_labels")
    if not expected:
        return
    if not (isinstance(expected, str) and expected.isdigit() and len(expected) <= 10_000):
        raise ModelError(
            f"{path}: corrupt metadata (probe_labels is not a string of digits); export it again"
        )
    actual = probe_labels(predict)
    changed = sum(a != b for a, b in zip(actual, expected, strict=False)) + abs(len(actual) - len(expected))
    if changed > MAX_LABEL_CHANGES:
        raise ModelError(
            f"{path}: {changed} of {len(expected)} reference digits now get another "
            "label than at export: the file is corrupt, export it again"
        )


def check_fingerprint(path: Path, meta: dict[str, str], proba: np.ndarray) -> None:
    """Raise ModelError when the outputs on the probe differ from those recorded at export."""
    if "fingerprint" not in meta:
        return  # not made by edgedigits export: nothing to check against
    text = meta["fingerprint"]
    try:
        if len(text) > 64 * 1024:  # 80 numbers take ~800 characters; anything huge is not ours
            raise ValueError(f"{len(text):,} characters")
        expected = np.asarray(json.loads(text), dtype=np.float64)  # nesting, objects: ValueError/TypeError
        tol = FINGERPRINT_TOLERANCE[meta.get("quantization", "none")]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ModelError(
            f"{path}: corrupt metadata (fingerprint unreadable: {first_line(exc)[:80]}); export it again"
        ) from exc
    diff = (
        np.abs(np.asarray(proba, dtype=np.float64) - expected)
        if expected.shape == proba.shape
        else np.array([np.inf])
    )
    if not np.all(diff <= tol):  # NaN outputs fail too
        raise ModelError(
            f"{path}: outputs differ from the fingerprint recorded at export "
            f"(max |dp| {np.nanmax(diff):.2g} > {tol:g}): the file is corrupt, export it again"
        )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_metadata(
    source: Path,
    source_sha256: str,
    quantization: str,
    training_data: str,
    test_accuracy: float | None,
    created: str,
    run_config: dict[str, Any] | None = None,
    macs: int | None = None,
) -> dict[str, str]:
    """The key/value pairs stored in every export (all values are strings).

    `run_config` (the run's config.json) adds what the model is: "architecture" and
    "training" (optimizer, augmentation, outliers, slivers, epochs); `macs` the multiply-adds per image
    (bench's GFLOP/s). The export adds "fingerprint":
    its outputs on probe_inputs(), checked at every load.
    """
    run_config = run_config or {}
    recipe = {
        k: run_config[k]
        for k in (
            "optimizer",
            "learning_rate",
            "batch_size",
            "epochs",
            "augment",
            "outliers",
            "slivers",
            "shift",
            "seed",
            "lr_schedule",
        )
        if k in run_config
    }
    if os.sep in training_data:  # a user's path: keep the file name, not their folders
        training_data = Path(training_data).name
    return {
        "labels": json.dumps(LABELS),
        "preprocessing": PREPROCESSING,
        "source_model": source.name,
        "source_sha256": source_sha256,
        "edgedigits_version": __version__,
        "training_data": training_data,
        "test_accuracy": "" if test_accuracy is None else f"{test_accuracy:.6f}",
        "created": created,
        "quantization": quantization,
        "architecture": str(run_config.get("arch", "mlp")),
        "training": json.dumps(recipe, sort_keys=True),
        "macs_per_image": "" if macs is None else str(macs),
    }


# ----------------------------------------------------------------------------- TFLite


def _schema():
    try:
        import ai_edge_litert.schema_py_generated as schema
    except ImportError as exc:
        raise MissingExtraError("reading .tflite files", extra="tflite") from exc
    return schema


def tflite_with_metadata(model_bytes: bytes, meta: dict[str, str]) -> bytes:
    """Return the flatbuffer with `meta` added as the "edgedigits" metadata entry."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(meta, sort_keys=True).encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = TFLITE_METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != TFLITE_METADATA_NAME.encode()]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite_metadata(path: Path) -> dict[str, str]:
    schema = _schema()
    raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAs(raw, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == TFLITE_METADATA_NAME.encode():
                data = model.Buffers(entry.Buffer()).DataAsNumpy()
                return dict(json.loads(bytes(data).decode()))
    except Exception as exc:  # a corrupt flatbuffer fails anywhere in the accessors
        raise ModelError(f"{path}: corrupt TFLite file ({first_line(exc)})") from exc
    return {}


# ----------------------------------------------------------------------------- any format


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """metadata_props of an ONNX file, through onnxruntime (the edge install has no onnx)."""
    import onnxruntime as ort

    from edgedigits.quiet import silenced

    try:
        with silenced():
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from exc
    return session_metadata(session, path)


def session_metadata(session: Any, path: Path) -> dict[str, str]:
    """An onnxruntime session's metadata_props as a dict; a flipped byte is one ModelError."""
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except UnicodeDecodeError as exc:  # a flipped byte inside a metadata string
        raise ModelError(f"{path}: corrupt metadata ({first_line(exc)}); export it again") from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata of a `.onnx`, `.tflite` or `.keras` file (empty when it has none).

    Raises:
        ModelError: the file is missing, of an unknown type or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return read_onnx_metadata(path)
    if suffix == ".tflite":
        return read_tflite_metadata(path)
    if suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise ModelError(f"{path}: not a .keras archive (corrupt or truncated)")
        meta: dict[str, str] = {"source_sha256": sha256(path)}
        metrics = path.parent / "metrics.json"
        if metrics.is_file():
            m = json.loads(metrics.read_text())
            meta.update(
                training_data=str(m.get("data", "")),
                test_accuracy=f"{m.get('test_accuracy', float('nan')):.6f}",
            )
        return meta
    raise ModelError(f"{path}: unknown model type; expected .onnx, .tflite or .keras")
