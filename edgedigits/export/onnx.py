"""Keras -> ONNX through tf2onnx, and int8 static quantization with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedigits._tf import import_tf
from edgedigits.contract import INPUT_NAME, OUTPUT_NAME

BATCH_DIM = "batch"


def keras_to_onnx(model: Any, opset: int) -> Any:
    """ModelProto with input `image` float32 [batch, 28, 28] and output `probabilities` [batch, 10].

    `tf2onnx.convert.from_keras` fails on Keras 3, so the model is wrapped in a
    tf.function whose signature fixes the names; tf2onnx converts that.
    """
    import onnx
    import tf2onnx

    tf = import_tf("ONNX export")
    spec = (tf.TensorSpec([None, 28, 28], tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def forward(image: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset)
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM  # tf2onnx says "unk__N"
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: Any, ctx: Any) -> bytes:
    return keras_to_onnx(model, ctx.opset).SerializeToString()


class _Calibration:
    """onnxruntime CalibrationDataReader over training images, 32 at a time."""

    def __init__(self, x: np.ndarray) -> None:
        self._batches = iter([{INPUT_NAME: x[i : i + 32]} for i in range(0, len(x), 32)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def export_onnx_int8(model: Any, ctx: Any) -> bytes:
    """Static int8 (QDQ, per-channel weights) calibrated on training images.

    MatMul+Add are first fused into Gemm, so each layer is requantized once after
    its bias (as TFLite's FullyConnected is), not between MatMul and Add. Weights use
    7 bits (reduce_range): x86 CPUs without VNNI (AVX2 only) saturate int16 sums in
    onnxruntime's u8s8 kernels, which cost ~1 point of accuracy here.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_path: Path = ctx.scratch / "float.onnx"
    fused_path: Path = ctx.scratch / "fused.onnx"
    int8_path: Path = ctx.scratch / "int8.onnx"
    float_path.write_bytes(export_onnx(model, ctx))
    quant_pre_process(str(float_path), str(fused_path), skip_symbolic_shape=True)
    quantize_static(
        str(fused_path),
        str(int8_path),
        _Calibration(ctx.x_calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        reduce_range=True,
    )
    return int8_path.read_bytes()


def add_onnx_metadata(model_bytes: bytes, meta: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model_bytes)
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name = "edgedigits"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
