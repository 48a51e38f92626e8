"""Read the digits of a page or frame: the library's one entry point for classifying crops.

    from edgedigits import read_digits
    read_digits("page.png")                      # find the digits, then read them
    read_digits(frame, boxes=[(x, y, w, h), ...])  # read the digits in these boxes

No TensorFlow: numpy, OpenCV and the runtime's Classifier only. The camera loop calls it.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgedigits.camera.segment import Box, Detection, SegmentConfig, ink_maps, normalise_crop, to_gray
from edgedigits.camera.split import SplitMemory, detect
from edgedigits.errors import EdgeDigitsError


@dataclass
class Digit:
    label: int
    confidence: float  # the model's top probability
    box: Box  # x, y, w, h in the image's pixels
    proba: np.ndarray  # [10]
    image: np.ndarray  # the 28x28 model input


def read_digits(
    image: np.ndarray | str | os.PathLike[str],
    boxes: list[Box] | None = None,
    model: Any = None,
    config: SegmentConfig | None = None,
    timings: dict[str, float] | None = None,
    memory: SplitMemory | None = None,
    second: Any = None,
) -> list[Digit]:
    """The digits of an image, each with its label, confidence and box.

    Args:
        image: a frame (H, W[, C], any dtype) or an image file's path.
        boxes: read exactly these boxes (one digit each, in image pixels); None finds the
            digits first, splitting touching ones.
        model: a Classifier (runtime.load_classifier), a model path, or None for the bundled model.
        config: segmentation settings; None: the defaults, with `still` for an image file (a
            frame array is a live frame: its touching digits are cut within a time budget).
        timings: receives milliseconds per stage.
        memory: a live stream's SplitMemory (the camera loop's): blobs its last frame read are
            not cut again.
        second: a still image's cut pieces are read by the model and by this second one (their
            geometric mean): a Classifier or a model path; None: the shipped second model
            (assets.second_model) when `model` is the bundled one, else none; False: none.
            A live frame's are read by the model alone (its time is bounded).

    Raises:
        EdgeDigitsError: an unreadable image or a box outside it; ModelError: a bad model.
    """
    classifier = _classifier(model)
    if config is None and isinstance(image, (str, os.PathLike)):
        config = SegmentConfig(still=True)  # a file is a photo or scan: read whole
    frame = _image(image)
    if boxes is None:
        reread = _second(classifier, second) if config is not None and config.still else None
        found = detect(frame, classifier.predict_proba, config, timings, memory, reread)
    else:
        found = _read_boxes(frame, boxes, classifier, config)
    return [
        Digit(int(d.proba.argmax()), float(d.proba.max()), d.box, d.proba, d.image)
        for d in found
        if d.proba is not None
    ]


def _classifier(model: Any) -> Any:
    if hasattr(model, "predict_proba"):
        return model
    from edgedigits.runtime import load_classifier

    if model is None:
        from edgedigits.assets import bundled_model

        model = bundled_model()
    return load_classifier(model)


def _second(classifier: Any, second: Any) -> Any:
    """The second model's predict_proba (read_digits' `second`), or None."""
    if second is False:
        return None
    if second is not None:
        return _classifier(second).predict_proba
    from edgedigits.assets import is_bundled

    path = getattr(classifier, "path", None)
    if path is None or not is_bundled(path):
        return None

    def shipped(images: np.ndarray) -> np.ndarray:
        """Opened at the first cut piece (a photo with none never opens it), once per
        classifier (one classifier per thread), without a memory arena and SECOND_BATCH
        images a call (a crowded 1280x720 photo: 192.6 -> 238.7 MB resident in all)."""
        if classifier not in _SECONDS:
            from edgedigits.assets import second_model
            from edgedigits.runtime import load_classifier

            threads = getattr(classifier, "threads", None)
            _SECONDS[classifier] = load_classifier(second_model(), threads=threads, low_memory=True)
        model = _SECONDS[classifier]
        return np.concatenate(
            [model.predict_proba(images[i : i + SECOND_BATCH]) for i in range(0, len(images), SECOND_BATCH)]
        )

    return shipped


_SECONDS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
SECOND_BATCH = 128  # the CNN's activations for 128 images: ~13 MB


def _image(image: Any) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        frame = cv2.imread(os.fspath(image), cv2.IMREAD_COLOR)
        if frame is None:
            raise EdgeDigitsError(f"{image}: not a readable image")
        return frame
    return np.asarray(image)


def _read_boxes(
    frame: np.ndarray, boxes: list[Box], classifier: Any, config: SegmentConfig | None
) -> list[Detection]:
    """Each box's own ink (darkness against the paper of the whole frame) -> one batch."""
    gray = to_gray(frame)
    h, w = gray.shape
    darkness, mask = ink_maps(gray, config)
    ink = cv2.bitwise_and(darkness, cv2.dilate(mask, np.ones((3, 3), np.uint8)))
    crops = []
    for box in boxes:
        x, y, bw, bh = (int(v) for v in box)
        if bw <= 0 or bh <= 0 or x < 0 or y < 0 or x + bw > w or y + bh > h:
            raise EdgeDigitsError(f"box {tuple(box)} is not inside the {w}x{h} image")
        crops.append(Detection((x, y, bw, bh), normalise_crop(ink[y : y + bh, x : x + bw])))
    if crops:
        proba = classifier.predict_proba(np.stack([c.image for c in crops]))
        for crop, p in zip(crops, proba, strict=True):
            crop.proba = p
    return crops
