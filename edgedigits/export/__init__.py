"""Export a trained model to every edge format, each checked against Keras before it lands.

Every variant is one registry entry (EXPORTERS): its format, file name, quantization, the
converter (keras_model, ExportContext) -> bytes and the step that embeds metadata in those
bytes. The CLI's choices, bench, the fuzz lists and the tests derive from it.
`export_model` converts, embeds metadata, writes to a temp file, runs parity on it, and only
a passing file replaces the final name (so a FAIL never clobbers a good export).
`--format triton` wraps the parity-checked ONNX in a Triton model repository (triton.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgedigits import atomic
from edgedigits.contract import IMAGE_SHAPE, INPUT_NAME
from edgedigits.errors import EdgeDigitsError, OptionError, ParityError, first_line
from edgedigits.export import onnx as onnx_export
from edgedigits.export import tflite as tflite_export
from edgedigits.export import triton
from edgedigits.export.parity import (
    TOLERANCES,
    ParityRow,
    compare,
    format_table,
    predict_in_batches,
)
from edgedigits.formats import SUFFIX_BACKEND


def _embed_tflite(data: bytes, meta: dict[str, str]) -> bytes:
    from edgedigits.metadata import tflite_with_metadata

    return tflite_with_metadata(data, meta)


@dataclass(frozen=True)
class Variant:
    format: str  # the --format that selects it; also the runtime backend that loads its file
    filename: str
    quantization: str  # "none", "fp16" or "int8": picks the parity tolerance
    fn: Callable[[Any, Any], bytes]  # (keras_model, ExportContext) -> serialized model
    embed: Callable[[bytes, dict[str, str]], bytes]  # (serialized model, metadata) -> with metadata


EXPORTERS: dict[str, Variant] = {
    "onnx": Variant("onnx", "model.onnx", "none", onnx_export.export_onnx, onnx_export.add_onnx_metadata),
    "onnx_int8": Variant(
        "onnx", "model_int8.onnx", "int8", onnx_export.export_onnx_int8, onnx_export.add_onnx_metadata
    ),
    "tflite": Variant("tflite", "model.tflite", "none", tflite_export.export_tflite, _embed_tflite),
    "tflite_fp16": Variant(
        "tflite", "model_fp16.tflite", "fp16", tflite_export.export_tflite_fp16, _embed_tflite
    ),
    "tflite_int8": Variant(
        "tflite", "model_int8.tflite", "int8", tflite_export.export_tflite_int8, _embed_tflite
    ),
}
for _key, _variant in EXPORTERS.items():  # a variant's file must be one the runtime can load
    if SUFFIX_BACKEND.get(Path(_variant.filename).suffix) != _variant.format:
        raise RuntimeError(f"export variant {_key}: {_variant.filename} is not a {_variant.format} file name")
PACKAGES = {"triton": "onnx"}  # a format that packages another one's parity-checked file
FORMATS = (*dict.fromkeys(v.format for v in EXPORTERS.values()), *PACKAGES, "all")
QUANTIZE = tuple(dict.fromkeys(v.quantization for v in EXPORTERS.values()))


def select_variants(fmt: str, quantize: str | None) -> list[str]:
    """Registry keys for `--format` and `--quantize` (None: float for one format, every variant for all)."""
    if fmt not in FORMATS:
        raise EdgeDigitsError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise EdgeDigitsError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZE)}")
    base = PACKAGES.get(fmt, fmt)
    keys = [k for k, v in EXPORTERS.items() if fmt == "all" or v.format == base]
    if quantize is not None:
        keys = [k for k in keys if EXPORTERS[k].quantization == quantize]
    elif fmt != "all":
        keys = [k for k in keys if EXPORTERS[k].quantization == "none"]
    if not keys:
        offered = sorted({v.quantization for v in EXPORTERS.values() if v.format == base})
        raise OptionError(
            "format", f"{fmt} has no {quantize} variant; it offers {{0}} {' or '.join(offered)}", "quantize"
        )
    return keys


@dataclass
class ExportConfig:
    source: str  # a run directory (uses its model.keras) or a .keras file
    variants: list[str] = field(default_factory=lambda: list(EXPORTERS))  # registry keys
    opset: int = 17  # ONNX opset
    out: str | None = None  # default: <run dir>/export
    data: str | None = None  # parity + calibration data; default: the run's training data
    calibration_size: int = 500  # training images used to calibrate int8
    triton: bool = False  # also wrap the ONNX variant in a Triton model repository (<out>/triton)


@dataclass
class ExportContext:
    opset: int
    x_calibration: np.ndarray  # float32 [n, 28, 28], training images
    scratch: Path  # a private temp folder for multi-step exporters


def export_model(config: ExportConfig, log: Callable[[str], None] = print) -> list[ParityRow]:
    """Write the requested variants plus parity.json into the output folder.

    Raises:
        ModelError: the source model is missing, corrupt or of another shape.
        EdgeDigitsError: unwritable output folder, bad opset, failed conversion.
        ParityError: a variant disagreed with Keras (its file was not written).
    """
    from edgedigits.data import load_dataset
    from edgedigits.keras_io import KerasClassifier, load_keras_model
    from edgedigits.metadata import build_metadata, sha256
    from edgedigits.model import count_macs
    from edgedigits.runtime import load_classifier

    unknown = [k for k in config.variants if k not in EXPORTERS]
    if unknown:
        raise EdgeDigitsError(
            f"unknown export variant {', '.join(map(repr, unknown))}; choose from {', '.join(EXPORTERS)}"
        )
    if config.triton and [EXPORTERS[k].format for k in config.variants] != ["onnx"]:
        raise OptionError("triton", "packages exactly one ONNX variant: {0} onnx or onnx_int8", "variants")
    source, run_dir = _resolve_source(Path(config.source))
    if not 7 <= config.opset <= 21:
        raise OptionError("opset", f"{config.opset}: tf2onnx supports opsets 7-21; 17 is the default")
    out = Path(config.out) if config.out else run_dir / "export"
    _check_writable(out)
    atomic.clean_stale(out)  # orphans of an export that was killed mid-write
    model = _canonical(load_keras_model(source))
    run_metrics = _read_json(run_dir / "metrics.json")
    data = load_dataset(config.data or _read_json(run_dir / "config.json").get("data", "mnist"))
    reference = predict_in_batches(KerasClassifier(source, model=model), data.x_test)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    source_sha = sha256(source)
    rng = np.random.default_rng(0)
    calib = data.x_train[
        rng.choice(len(data.x_train), min(config.calibration_size, len(data.x_train)), replace=False)
    ]
    rows: list[ParityRow] = []
    header = {
        "source": str(source),
        "source_sha256": source_sha,
        "data": data.name,
        "n_test": int(len(data.y_test)),
        "created": created,
        "config": asdict(config),
        "tolerances": TOLERANCES,
    }
    earlier = [r for r in _read_json(out / "parity.json").get("rows", []) if isinstance(r, dict)]
    run_config, macs = _read_json(run_dir / "config.json"), count_macs(model)  # once per run
    with tempfile.TemporaryDirectory(prefix="edgedigits-export-") as scratch:
        ctx = ExportContext(config.opset, calib, Path(scratch))
        for key in config.variants:
            variant = EXPORTERS[key]
            meta = build_metadata(
                source,
                source_sha,
                variant.quantization,
                data.name,
                run_metrics.get("test_accuracy"),
                created,
                run_config,
                macs,
            )
            try:
                with atomic.atomic_path(out / variant.filename) as tmp:
                    _try_export(key, variant, model, ctx, meta, tmp, log)
                    proba = predict_in_batches(load_classifier(tmp), data.x_test)
                    rows.append(
                        compare(tmp, variant.filename, variant.quantization, proba, reference, data.y_test)
                    )
                    if not rows[-1].passed:  # a previous good file stays; this one is kept beside it
                        rows[-1].file = failed_name(variant.filename)
                        os.replace(tmp, out / rows[-1].file)
                        raise _Rejected
            except _Rejected:
                pass
            # after every variant, so an interrupted export leaves a report of the files on disk
            _write_report(out, header, rows, earlier)
    _write_report(out, header, rows, earlier)
    log(format_table(rows))
    log(f"parity report: {out / 'parity.json'}")
    failed = [r.file for r in rows if not r.passed]
    if failed:
        raise ParityError(
            f"disagreed with the Keras model beyond tolerance (see {out / 'parity.json'}): "
            f"kept as {', '.join(str(out / f) for f in failed)} for inspection; the files "
            "under the final names are unchanged"
        )
    if config.triton:
        exported = out / EXPORTERS[config.variants[0]].filename
        config_file = triton.write_repository(out / "triton", exported, load_classifier(exported).metadata())
        log(
            f"Triton model repository: {config_file.parent.parent} "
            f"(serve: tritonserver --model-repository {config_file.parent.parent})"
        )
    return rows


def failed_name(filename: str) -> str:
    """Where a variant that failed parity is kept: model.onnx -> model.failed.onnx."""
    path = Path(filename)
    return f"{path.stem}.failed{path.suffix}"


class _Rejected(Exception):
    """A variant failed parity: abort its atomic write."""


def _canonical(model: Any) -> Any:
    """A model taking [N, 28, 28, 1] wrapped to take [N, 28, 28]: every export then has the
    one input layout the contract names, and the converters need no special case."""
    if len(model.input_shape) == 3:
        return model
    from edgedigits._tf import import_keras

    keras = import_keras("exporting")
    return keras.Sequential(
        [keras.Input(IMAGE_SHAPE, name=INPUT_NAME), keras.layers.Reshape((*IMAGE_SHAPE, 1)), model],
        name=f"{model.name}_28x28",
    )


def _try_export(
    key: str,
    variant: Variant,
    model: Any,
    ctx: ExportContext,
    meta: dict[str, str],
    tmp: Path,
    log: Callable[[str], None],
) -> None:
    """Convert, fingerprint, embed metadata, write `tmp`; time it and log size.

    Failures become one line.
    """
    from edgedigits.metadata import fingerprint, probe_inputs, probe_labels
    from edgedigits.quiet import silenced
    from edgedigits.runtime import load_classifier

    t0 = time.perf_counter()
    try:
        with silenced():  # the converters print their graphs and captures
            data = variant.fn(model, ctx)
        bare = ctx.scratch / f"bare-{variant.filename}"
        bare.write_bytes(data)
        bare_classifier = load_classifier(bare)
        meta = {
            **meta,
            "fingerprint": fingerprint(bare_classifier.predict_proba(probe_inputs())),
            "probe_labels": probe_labels(bare_classifier.predict),
        }
        data = variant.embed(data, meta)
    except EdgeDigitsError:
        raise
    except Exception as exc:  # converters raise anything from ValueError to ConverterError
        raise EdgeDigitsError(f"{key} export failed: {first_line(exc)}") from exc
    tmp.write_bytes(data)
    log(f"{key:<12} {variant.filename:<18} {len(data) / 1024:8.1f} KB  {time.perf_counter() - t0:5.2f} s")


def _resolve_source(path: Path) -> tuple[Path, Path]:
    """(the .keras file, the folder holding its run's config/metrics)."""
    from edgedigits.errors import ModelError

    if path.is_dir():
        path = path / "model.keras"
        if not path.is_file():
            raise ModelError(
                f"{path.parent}: no model.keras; pass a run directory from "
                "`edgedigits train` or a .keras file"
            )
    elif not path.is_file():
        raise ModelError(f"{path}: no such run directory or .keras file")
    elif path.suffix != ".keras":
        raise ModelError(f"{path}: export takes a run directory or a .keras file")
    return path, path.parent


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        raise OptionError("out", f"{out}: not writable ({exc.strerror or exc})") from exc


def _write_report(out: Path, header: dict[str, Any], rows: list[ParityRow], earlier: list[dict]) -> None:
    """parity.json: this run's rows, and an earlier export's rows for the files this run has not
    (yet) replaced, so the report always describes the files beside it."""
    done = {r.file for r in rows}
    kept = [
        {**r, "from_earlier_export": True}
        for r in earlier
        if r.get("file") not in done and (out / str(r.get("file"))).is_file()
    ]
    atomic.write_json(out / "parity.json", {**header, "rows": [r.as_dict() for r in rows] + kept})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}
