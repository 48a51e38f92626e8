"""One Classifier interface over onnxruntime, LiteRT and Keras.

`load_classifier(path)` -> object with
    predict_proba(x: float32 [N, 28, 28] in [0, 1]) -> float32 [N, 10]
    predict(x) -> int64 [N]
This module must import without TensorFlow: the edge install has numpy,
onnxruntime and OpenCV only. `.keras` files go to keras_io (the TensorFlow side).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from edgedigits.contract import IMAGE_SHAPE, NUM_CLASSES, ClassifierBase, check_batch, input_rank, to_rank
from edgedigits.errors import EdgeDigitsError, MissingExtraError, ModelError, first_line
from edgedigits.formats import BACKENDS, SUFFIX_BACKEND  # noqa: F401  (re-exported: defined once there)


class Classifier(Protocol):
    path: Path
    backend: str  # "onnx", "tflite" or "keras"
    device: str  # e.g. "CPUExecutionProvider"

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def load_classifier(
    path: str | os.PathLike[str],
    backend: str = "auto",
    threads: int | None = None,
    providers: list[str] | None = None,
    low_memory: bool = False,
) -> Classifier:
    """Open a `.onnx`, `.tflite` or `.keras` digit classifier.

    Args:
        path: the model file.
        backend: "auto" (by suffix) or the backend the suffix implies.
        threads: intra-op threads; None lets the runtime choose.
        providers: onnxruntime execution providers in order of preference; None takes
            CUDA first when onnxruntime-gpu offers it, then the CPU.
        low_memory: an ONNX session without onnxruntime's CPU memory arena: ~10 MB less
            resident, batches of hundreds of images up to ~10% slower (the camera's second
            model, which reads only the cut pieces of still images).

    Raises:
        ModelError: missing, unreadable or wrongly shaped model (one-line message).
        MissingExtraError: the backend's package is not installed.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise EdgeDigitsError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; pass a .onnx, .tflite or .keras file")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    implied = SUFFIX_BACKEND.get(path.suffix.lower())
    if implied is None:
        raise ModelError(f"{path}: unknown model type; expected .onnx, .tflite or .keras")
    if backend not in ("auto", implied):
        raise ModelError(f"{path}: a {path.suffix} file cannot run on the {backend} backend")
    if threads is not None and threads < 1:
        raise EdgeDigitsError(f"threads must be at least 1, got {threads}")
    if implied == "keras":  # the one way the edge runtime reaches TensorFlow: a .keras file asked for
        from edgedigits.keras_io import KerasClassifier

        return KerasClassifier(path, threads)
    classifier = (
        OnnxClassifier(path, threads, providers, low_memory)
        if implied == "onnx"
        else TFLiteClassifier(path, threads)
    )
    _self_test(classifier)
    return classifier


PROBABILITY_TOLERANCE = 0.03  # an int8 model's 10 outputs each carry up to half a step (1/512)


def check_probabilities(path: Path, proba: np.ndarray, tolerance: float = PROBABILITY_TOLERANCE) -> None:
    """Refuse outputs that are not probabilities: finite, within [0, 1], each row summing to 1
    (within `tolerance`), whether or not the file carries edgedigits metadata. Files that do
    are held to their recorded fingerprint on top."""
    sums = proba.sum(axis=1) if proba.size else np.ones(1)
    if (
        not np.isfinite(proba).all()
        or proba.min(initial=0.0) < -tolerance
        or proba.max(initial=0.0) > 1 + tolerance
        or np.abs(sums - 1).max() > tolerance
    ):
        raise ModelError(
            f"{path}: its outputs are not probabilities (finite, within 0-1, summing to 1) "
            "on the probe images; end the model with a softmax, or export it again"
        )


def _self_test(classifier: OnnxClassifier | TFLiteClassifier) -> None:
    """Run the probes once: runtime failures surface now (predict_proba raises them as
    ModelError), and corrupted weights are caught against what was recorded at export."""
    from edgedigits.metadata import check_fingerprint, check_probe_labels, probe_inputs

    proba = classifier.predict_proba(probe_inputs())
    if proba.shape != (8, NUM_CLASSES):
        raise ModelError(
            f"{classifier.path}: model output is {list(proba.shape)} for 8 images; "
            "edgedigits needs [batch, 10]"
        )
    check_probabilities(classifier.path, proba)
    meta = classifier.metadata()
    check_fingerprint(classifier.path, meta, proba)
    check_probe_labels(classifier.path, meta, classifier.predict)


class OnnxClassifier(ClassifierBase):
    backend = "onnx"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        low_memory: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.path = path
        self.threads = threads
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = not low_memory
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        wanted = providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [p for p in wanted if p in available]
        if not providers:
            raise EdgeDigitsError(
                f"none of the execution providers {wanted} is available here "
                f"(available: {', '.join(available)})"
            )
        from edgedigits.quiet import silenced

        try:
            with silenced():  # onnxruntime prints an "EP Error" banner before retrying
                self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(
                f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)}"
            )
        self.rank = input_rank(path, inputs[0].shape, outputs[0].shape)
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{path}: model input is {inputs[0].type}; edgedigits feeds float32")
        self.input_name = inputs[0].name
        self.output_names = [outputs[0].name]
        self.device = self.session.get_providers()[0]
        # CPU: bind input and a preallocated output (-25% per batch-1 call vs session.run)
        self._binding = self.session.io_binding() if self.device == "CPUExecutionProvider" else None
        self._out = np.empty((0, NUM_CLASSES), np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Not thread-safe: one classifier per thread."""
        x = check_batch(x)
        try:
            x = to_rank(x, self.rank)
            if self._binding is None:
                return self.session.run(self.output_names, {self.input_name: x})[0]
            if len(self._out) != len(x):
                self._out = np.empty((len(x), NUM_CLASSES), np.float32)
                self._binding.bind_output(
                    self.output_names[0], "cpu", 0, np.float32, list(self._out.shape), self._out.ctypes.data
                )
            self._binding.bind_cpu_input(self.input_name, x)
            self.session.run_with_iobinding(self._binding)
        except Exception as exc:  # onnxruntime's Fail/RuntimeException for corrupt graphs
            raise ModelError(f"{self.path}: inference failed ({first_line(exc)})") from exc
        return self._out.copy()  # the buffer is reused by the next call

    def metadata(self) -> dict[str, str]:
        from edgedigits.metadata import session_metadata

        return session_metadata(self.session, self.path)


class TFLiteClassifier(ClassifierBase):
    backend = "tflite"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise MissingExtraError(f"running {path.name}", extra="tflite") from exc
        self.path = path
        self.threads = threads
        from edgedigits.quiet import silenced

        try:
            with silenced(2):  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with C++ text
            raise ModelError(f"{path}: not a loadable TFLite model ({first_line(exc)})") from exc
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{path}: expected one input and one output, found {len(ins)} and {len(outs)}")
        self.rank = input_rank(path, list(ins[0]["shape"]), list(outs[0]["shape"]))
        self._in, self._out = ins[0], outs[0]
        self._meta: dict[str, str] | None = None
        self._batch = int(ins[0]["shape"][0])
        self.device = "CPU (LiteRT)"

    def metadata(self) -> dict[str, str]:
        if self._meta is None:
            from edgedigits.metadata import read_tflite_metadata

            self._meta = read_tflite_metadata(self.path)
        return self._meta

    def _resize(self, n: int) -> None:
        self.interpreter.resize_tensor_input(self._in["index"], [n, *IMAGE_SHAPE, 1][: self.rank])
        self.interpreter.allocate_tensors()
        self._batch = n

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x)
        dtype = self._in["dtype"]
        if dtype != np.float32:  # full-integer model: quantize the input here
            scale, zero = self._in["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        try:  # a corrupt model can fail in the resize as well as in invoke
            if len(x) != self._batch:
                self._resize(len(x))
            self.interpreter.set_tensor(self._in["index"], to_rank(x, self.rank))
            self.interpreter.invoke()
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{self.path}: inference failed ({first_line(exc)})") from exc
        y = self.interpreter.get_tensor(self._out["index"])
        if self._out["dtype"] != np.float32:
            scale, zero = self._out["quantization"]
            y = (y.astype(np.float32) - zero) * np.float32(scale)
        return y
