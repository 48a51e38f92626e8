"""A Triton Inference Server model repository around a parity-checked ONNX export.

    <out>/triton/edgedigits/config.pbtxt     platform onnxruntime_onnx, dynamic batching
    <out>/triton/edgedigits/labels.txt       "0".."9": Triton's classification output reads it
    <out>/triton/edgedigits/1/model.onnx     the exported file, byte for byte

`tritonserver --model-repository <out>/triton` serves it. The config is protobuf text
format (ModelConfig), written here without a protobuf dependency; the tests parse it with
the ModelConfig message that tritonclient ships. Numpy-free, TensorFlow-free.
"""

from __future__ import annotations

from pathlib import Path

from edgedigits import atomic
from edgedigits.contract import IMAGE_SHAPE, INPUT_NAME, LABELS, NUM_CLASSES, OUTPUT_NAME

MODEL_NAME = "edgedigits"
MAX_BATCH_SIZE = 256  # crops per request; a camera frame holds 1-60
PREFERRED_BATCH_SIZES = (16, 64)  # what dynamic batching tries to assemble ...
MAX_QUEUE_DELAY_US = 200  # ... waiting at most this long for more requests
LABELS_FILE = "labels.txt"


def write_repository(root: Path, onnx_file: Path, metadata: dict[str, str]) -> Path:
    """Write (or refresh) the model repository under `root` for `onnx_file`; returns the
    config's path. Each file is written atomically, the model first: a repository cut short
    still pairs a complete model with a config of the same inputs and outputs."""
    model_dir = root / MODEL_NAME
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(model_dir / "1" / "model.onnx", onnx_file.read_bytes())
    atomic.write_text(model_dir / LABELS_FILE, "\n".join(LABELS) + "\n")
    config = model_dir / "config.pbtxt"
    atomic.write_text(config, model_config(metadata))
    return config


def model_config(metadata: dict[str, str]) -> str:
    """config.pbtxt for the edgedigits contract: [batch, 28, 28] float32 in, [batch, 10] out;
    the model's metadata as string parameters."""
    dims = ", ".join(str(d) for d in IMAGE_SHAPE)
    lines = [
        f"name: {_quote(MODEL_NAME)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {MAX_BATCH_SIZE}",
        "input [",
        f"  {{ name: {_quote(INPUT_NAME)} data_type: TYPE_FP32 dims: [ {dims} ] }}",
        "]",
        "output [",
        f"  {{ name: {_quote(OUTPUT_NAME)} data_type: TYPE_FP32 dims: [ {NUM_CLASSES} ] "
        f"label_filename: {_quote(LABELS_FILE)} }}",
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(str(b) for b in PREFERRED_BATCH_SIZES)} ]",
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}",
        "}",
    ]
    for key in sorted(metadata):
        lines.append(f"parameters {{ key: {_quote(key)} value {{ string_value: {_quote(metadata[key])} }} }}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A protobuf text-format string: printable ASCII as is, every other byte of the UTF-8
    (and the quote and backslash) as a C escape, so any metadata value parses back exactly."""
    out = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
