"""Files shipped inside the package: the bundled model, its second opinion and the demo digits."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np


def bundled_model() -> Path:
    """The pretrained model.onnx shipped in the package (full MNIST, metadata inside)."""
    return Path(str(resources.files("edgedigits.assets").joinpath("model.onnx")))


def is_bundled(path: str | Path) -> bool:
    """Whether `path` is the bundled model.onnx (whose second opinion is second_model)."""
    return Path(path).resolve() == bundled_model().resolve()


def second_model() -> Path:
    """A second pretrained model.onnx, trained differently (the CNN recipe of the bundled model
    for 24 epochs, without its long-tail stretch: the model bundled before it, 99.37% on t10k).
    The camera reads the cut pieces of a still image with both (camera.read.read_digits)."""
    return Path(str(resources.files("edgedigits.assets").joinpath("second.onnx")))


def shipped_digits() -> tuple[np.ndarray, np.ndarray]:
    """300 MNIST *test* digits shipped in the package: uint8 [300, 28, 28], labels [300].

    The demo clip is drawn from them, and every export records its labels on them.
    """
    with (
        resources.files("edgedigits.assets").joinpath("demo_digits.npz").open("rb") as fh,
        np.load(fh, allow_pickle=False) as npz,
    ):
        return npz["x"], npz["y"]
