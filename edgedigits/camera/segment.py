"""Find handwritten digits in a frame and turn each into an MNIST-style model input.

Pure functions on arrays: no I/O, no model (split.detect adds the classifier). Any
frame is accepted: 1, 3 or 4 channels, uint8, uint16 or float, from 1x1 to 8000x6000.

Pipeline, at a working resolution (big frames are shrunk to about 2 megapixels):
  gray -> darkness against the paper (a grey closing wider than the strokes, so shadows,
  vignetting and dark table edges are background, not ink) -> threshold from the frame's
  own noise -> ink components, with ruled lines and rules that digits sit on taken out ->
  each component judged alone (too big, too thin, too faint, cut by the frame edge:
  dropped, never merged with others) -> broken strokes joined only
  when the union still looks like one digit -> blobs as wide as several digits split
  (split.py) -> normalise_crop (MNIST's recipe) from each digit's own ink only.
Boxes come back in source pixels. Cost grows n log n with the number of blobs.
ink.py holds the pixel stages, blobs.py the component stages; this module runs them and
makes the MNIST inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgedigits.camera.blobs import Blob, find_blobs, union  # noqa: F401  (re-exported)
from edgedigits.camera.ink import (  # noqa: F401  (re-exported: the pipeline's public names)
    Box,
    SegmentConfig,
    binarize,
    ink_maps,
    to_gray,
    working_scale,
)

MNIST_BOX = 20  # MNIST fitted each digit into 20x20 ...
MNIST_SIZE = 28  # ... then centred it by mass in 28x28
# an enlarged crop loses its ink below this share of its darkest: the blurred rim of a digit
# 12-14 px tall is 2-3 px wide once enlarged to 20 px (MNIST's anti-aliased edge is under 1),
# and the model read such 0s, 3s and 9s below 0.5. Digits written 12-24 px tall, 120
# development frames: 93.9% -> 96.0% read right (with SegmentConfig.lone_height_strokes)
HALO = 0.1


@dataclass
class Detection:
    box: Box  # in source-frame pixels
    image: np.ndarray = field(repr=False)  # float32 [28, 28] in [0, 1], white digit on black
    proba: np.ndarray | None = field(default=None, repr=False)  # [10], when classified here


def normalise_crop(ink: np.ndarray) -> np.ndarray:
    """Ink crop (H, W), white (high) on black, any numeric dtype -> float32 [28, 28] in [0, 1].

    MNIST's recipe: fit into 20x20 keeping the aspect ratio with anti-aliasing, then
    place in 28x28 so the centre of mass sits at the centre (to the whole pixel, as
    MNIST's translation did). A crop under 20 px is enlarged and loses its faint rim (HALO).
    The one function used by the camera, the tests and the
    benchmarks.
    """
    ink = np.asarray(ink)
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    if ink.ndim != 2 or ink.size == 0:
        return out
    if ink.dtype != np.uint8:  # the camera passes uint8; anything else is cleaned first
        ink = np.nan_to_num(ink.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        ink[ink < 0] = 0
    x, y, w, h = cv2.boundingRect(ink if ink.dtype == np.uint8 else (ink > 0).view(np.uint8))
    if w == 0 or h == 0:  # an empty crop
        return out
    scale = MNIST_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # (width, height)
    crop = ink[y : y + h, x : x + w]
    # uint8 ink (the camera's) is shrunk as uint8: 3x cheaper, and MNIST itself is 8-bit.
    # Shrinking averages (MNIST's anti-aliasing); a crop under 20 px is enlarged bicubically:
    # INTER_AREA enlarges like nearest-neighbour, and small 0s came out blocky and unsure
    grow = scale > 1.0
    small = cv2.resize(
        crop if crop.dtype == np.uint8 else crop.astype(np.float32),
        size,
        interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA,
    )
    if grow and small.dtype != np.uint8:  # bicubic overshoots below 0 (uint8 saturates)
        small = np.maximum(small, 0.0)
    m = cv2.moments(small)
    top_value = float(small.max())
    if m["m00"] <= 0 or top_value <= 0:
        return out
    centre = (MNIST_SIZE - 1) / 2
    top = min(max(round(centre - m["m01"] / m["m00"]), 0), MNIST_SIZE - size[1])
    left = min(max(round(centre - m["m10"] / m["m00"]), 0), MNIST_SIZE - size[0])
    placed = out[top : top + size[1], left : left + size[0]]
    placed[:] = small.astype(np.float32) * np.float32(1.0 / top_value)
    if grow:
        np.clip((placed - HALO) * np.float32(1.0 / (1.0 - HALO)), 0.0, 1.0, out=placed)
    return out


def blob_ink(blob_box: Box, parts: list[int], labels: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """Grey-level ink (H, W) of this blob's own components only: a neighbour's tail that
    reaches into the box is left out. The mask is grown by 1 px to keep the anti-aliased rim."""
    x, y, w, h = blob_box
    lab = labels[y : y + h, x : x + w]
    own = (lab == parts[0]) if len(parts) == 1 else np.isin(lab, parts)
    near = cv2.dilate(own.view(np.uint8), np.ones((3, 3), np.uint8))
    return darkness[y : y + h, x : x + w] * near


@dataclass
class Located:
    """A frame's blobs at working resolution, with what is needed to crop them."""

    scale: float  # working pixels per source pixel (<= 1)
    blobs: list[Blob]
    labels: np.ndarray  # component labels (H, W) at working resolution
    darkness: np.ndarray  # grey-level ink (H, W) at working resolution
    print_height: float = 0.0  # the page's print, at working resolution (0: none; find_blobs)
    passes: int = 1  # how many times the frame's components were labelled (find_blobs)

    def to_source(self, box: Box) -> Box:
        if self.scale >= 1.0:
            return box
        x, y, w, h = (int(round(v / self.scale)) for v in box)
        return (x, y, w, h)


def locate(
    frame: np.ndarray,
    config: SegmentConfig | None = None,
    timings: dict[str, float] | None = None,
    classify: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Located:
    """Frame -> digit-sized blobs. `timings` receives ms for the gray, ink and boxes stages.
    With `classify`, long lines of print are found by reading a few of their letters
    (blobs._probe_print)."""
    config = config or SegmentConfig()
    t0 = time.perf_counter()
    gray = to_gray(frame)
    scale = working_scale(gray.shape, config)
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    t1 = time.perf_counter()
    darkness, mask = ink_maps(gray, config)
    t2 = time.perf_counter()
    read = None
    if classify is not None:

        def read(labels: np.ndarray, items: list[tuple[Box, int]]) -> np.ndarray:
            return classify(
                np.stack([normalise_crop(blob_ink(box, [part], labels, darkness)) for box, part in items])
            )

    blobs, labels, print_height, passes = find_blobs(mask, darkness, config, read)
    if timings is not None:
        timings.update(gray=(t1 - t0) * 1e3, ink=(t2 - t1) * 1e3, boxes=(time.perf_counter() - t2) * 1e3)
    return Located(scale, blobs, labels, darkness, print_height, passes)


def segment(
    frame: np.ndarray, config: SegmentConfig | None = None, timings: dict[str, float] | None = None
) -> list[Detection]:
    """All digit candidates of a frame, one per blob (no splitting: split.detect does that),
    each with its 28x28 model input; boxes in frame pixels. `timings` receives ms per stage
    (gray, ink, boxes, normalise)."""
    located = locate(frame, config, timings)
    t0 = time.perf_counter()
    out = [
        Detection(
            located.to_source(b.box),
            normalise_crop(blob_ink(b.box, b.parts, located.labels, located.darkness)),
        )
        for b in located.blobs
    ]
    if timings is not None:
        timings["normalise"] = (time.perf_counter() - t0) * 1e3
    return out


def find_boxes(mask: np.ndarray, config: SegmentConfig | None = None) -> list[Box]:
    """Boxes of the digit-sized blobs of a mask (its own ink as darkness), unsplit."""
    blobs, *_ = find_blobs(mask, mask, config)
    return [b.box for b in blobs]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 28x28 inputs (1: identical shapes)."""
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 0.0


def ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box (x, y, w, h) of `a` [n, 4] with every one of `b`
    [m, 4] -> [n, m] (0 where both are empty)."""
    a = np.asarray(a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(b, np.float64).reshape(1, -1, 4)
    ix = np.maximum(
        0.0, np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    )
    iy = np.maximum(
        0.0, np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    )
    inter = ix * iy
    both = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.divide(inter, both, out=np.zeros_like(inter), where=both > 0)


def group_numbers(boxes: list[Box], labels: list[int]) -> list[dict]:
    """Digits side by side on one line -> numbers, left to right.

    Two digits join when their rows overlap by half the smaller height and the gap
    between them is under 0.8x the taller height. Returns [{"value": "2026", "box": [...]}].
    """
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][0])
    groups: list[list[int]] = []
    for i in order:
        x, y, w, h = boxes[i]
        for group in groups:
            lx, ly, lw, lh = boxes[group[-1]]
            gap = x - (lx + lw)
            if gap < -0.3 * w or gap > 0.8 * (h if h > lh else lh):  # the cheap test first
                continue
            v_overlap = (y + h if y + h < ly + lh else ly + lh) - (y if y > ly else ly)
            if v_overlap >= 0.5 * (h if h < lh else lh):
                group.append(i)
                break
        else:
            groups.append([i])
    numbers = []
    for group in groups:
        xs = [boxes[i][0] for i in group]
        ys = [boxes[i][1] for i in group]
        x1 = max(boxes[i][0] + boxes[i][2] for i in group)
        y1 = max(boxes[i][1] + boxes[i][3] for i in group)
        numbers.append(
            {
                "value": "".join(str(labels[i]) for i in group),
                "box": [min(xs), min(ys), x1 - min(xs), y1 - min(ys)],
            }
        )
    return sorted(numbers, key=lambda n: (n["box"][1], n["box"][0]))
