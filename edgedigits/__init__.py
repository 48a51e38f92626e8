"""edgedigits: a handwritten-digit MLP from Keras training to ONNX/TFLite on an edge device."""

__version__ = "0.1.0"
