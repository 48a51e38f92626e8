"""Keras -> TFLite (float32, fp16 weights, full-integer int8) with tf.lite.TFLiteConverter."""

from __future__ import annotations

from typing import Any

from edgedigits._tf import import_tf


def _converter(model: Any) -> Any:
    tf = import_tf("TFLite export")
    return tf.lite.TFLiteConverter.from_keras_model(model)


def export_tflite(model: Any, ctx: Any) -> bytes:
    return _converter(model).convert()


def export_tflite_fp16(model: Any, ctx: Any) -> bytes:
    tf = import_tf("TFLite export")
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def export_tflite_int8(model: Any, ctx: Any) -> bytes:
    """Full-integer: int8 weights, activations, input and output (scales in the file)."""
    tf = import_tf("TFLite export")
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    x = ctx.x_calibration
    conv.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()
