"""The digit-model contract, defined once: what every edgedigits model takes and gives.

Input `image`: float32 [batch, 28, 28] (or [batch, 28, 28, 1]: the runtime adds the channel)
in [0, 1], a white digit on black fitted to 20x20 and centred by mass in 28x28 (MNIST).
Output `probabilities`: float32 [batch, 10], softmax over the digits 0-9.
Numpy only: the edge side (runtime, camera) imports it without TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedigits.errors import EdgeDigitsError, ModelError

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
LABELS = [str(d) for d in range(NUM_CLASSES)]
PREPROCESSING = (
    "input 'image' float32 [batch, 28, 28]: white digit on black, pixels/255 in [0, 1], "
    "digit fitted to 20x20 and centred by mass in 28x28 (MNIST)"
)


def input_rank(path: Path, in_shape: Any, out_shape: Any) -> int:
    """Check a model's I/O shapes (lists, None/str/-1 for symbolic dims): [*, 28, 28] or
    [*, 28, 28, 1] in, [*, 10] out. Returns the input's rank (3 or 4).

    Raises:
        ModelError: any other shape (one line naming the file).
    """
    shape = list(in_shape)
    if not (
        (len(shape) == 3 and tuple(shape[1:]) == IMAGE_SHAPE)
        or (len(shape) == 4 and tuple(shape[1:]) == (*IMAGE_SHAPE, 1))
    ):
        raise ModelError(
            f"{path}: model input is {shape}; edgedigits needs [batch, 28, 28] "
            "or [batch, 28, 28, 1] (28x28 grayscale)"
        )
    if len(out_shape) != 2 or out_shape[1] != NUM_CLASSES:
        raise ModelError(f"{path}: model output is {list(out_shape)}; edgedigits needs [batch, 10]")
    return len(shape)


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] (0-255) -> float32 [N, 28, 28] in [0, 1], as the seed did (/255)."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def check_batch(x: np.ndarray) -> np.ndarray:
    """Return x as C-contiguous float32 [N, 28, 28], or raise with what was wrong."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise EdgeDigitsError(f"model input must be [N, 28, 28]; got shape {tuple(x.shape)}")
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    return x


def to_rank(x: np.ndarray, rank: int) -> np.ndarray:
    """[N, 28, 28] -> the model's own layout ([N, 28, 28, 1] for rank 4); no copy."""
    return x if rank == 3 else x[..., None]


class ClassifierBase:
    """What every backend's classifier shares: predict from predict_proba, a readable repr."""

    path: Path
    backend = ""
    device = "CPU"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} on {self.device}>"
