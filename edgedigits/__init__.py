"""edgedigits: a handwritten-digit MLP from Keras training to ONNX/TFLite on an edge device."""

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202  (lazy: `import edgedigits` stays light for the CLI)
    if name == "read_digits":
        from edgedigits.camera.read import read_digits

        return read_digits
    raise AttributeError(f"module 'edgedigits' has no attribute {name!r}")
