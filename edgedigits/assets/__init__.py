"""Files shipped inside the package: the bundled model and the demo digits."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_model() -> Path:
    """The pretrained model.onnx shipped in the package (full MNIST, metadata inside)."""
    return Path(str(resources.files("edgedigits.assets").joinpath("model.onnx")))
