"""Find handwritten digits in a frame and turn each into an MNIST-style model input.

Pure functions on arrays: no I/O, no model. Any frame is accepted: 1, 3 or 4
channels, uint8, uint16 or float, from 1x1 up.

Pipeline: gray -> blur -> darkness against the local paper level (window scaled to
the frame, so uneven light and shadows do not matter) -> threshold -> morphology ->
ink blobs ->
filters (size, aspect, ink fill, border contact) -> join broken strokes ->
normalise_crop (MNIST's own recipe) -> group digits on a line into numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
MNIST_BOX = 20  # MNIST fitted each digit into 20x20 ...
MNIST_SIZE = 28  # ... then centred it by mass in 28x28


@dataclass
class SegmentConfig:
    min_height_frac: float = 0.04  # a digit is at least this fraction of the frame height
    max_height_frac: float = 0.9
    min_height_px: int = 10  # and at least this many pixels
    max_aspect: float = 1.8  # width / height: a flat "0" reaches ~1.5, a thin "1" ~0.1
    min_fill: float = 0.06  # ink pixels / box area: rejects outlines and ruled-line fragments
    max_fill: float = 0.85  # rejects solid blobs (shadows, page corners)
    max_ink: float = 0.25  # more of the frame than this reads as ink: noise or texture, no digits
    min_contrast: float = 2.0  # gray std below this: a flat frame, skip the work


@dataclass
class Detection:
    box: Box
    image: np.ndarray = field(repr=False)  # float32 [28, 28] in [0, 1], white digit on black


# ----------------------------------------------------------------------------- pixels


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Any frame (H, W[, 1|3|4]) of uint8/uint16/float -> uint8 gray (H, W)."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.dtype == np.uint8 and frame.shape[2] in (3, 4) and min(frame.shape[:2]):
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] in (1, 2):
        frame = frame[:, :, 0]
    elif frame.ndim == 3:
        frame = frame[:, :, :3].astype(np.float32).mean(axis=2)
    if frame.ndim != 2 or frame.size == 0:
        raise ValueError(f"expected an image (H, W[, C]); got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    if np.issubdtype(frame.dtype, np.integer):
        top = max(float(np.iinfo(frame.dtype).max), 1.0)
        return (frame.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    f = np.nan_to_num(frame.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = 255.0 if f.max(initial=0.0) <= 1.0 else 1.0  # float images in [0, 1] or [0, 255]
    return np.clip(f * scale, 0, 255).astype(np.uint8)


def ink_maps(gray: np.ndarray, config: SegmentConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dark ink on light paper -> (darkness, mask), both uint8 (H, W).

    darkness: how much darker than the local paper each pixel is (grey-level ink);
    mask: 255 where that is clearly ink. Blank and noise frames give all zeros.
    """
    config = config or SegmentConfig()
    h, w = gray.shape
    empty = np.zeros_like(gray)
    std = float(cv2.meanStdDev(gray)[1][0, 0]) if min(h, w) >= 8 else 0.0
    if std < config.min_contrast:
        return empty, empty
    smooth = cv2.GaussianBlur(gray, (3, 3), 0)
    # the paper's local light level, over a window wider than most digits (a narrower one
    # lets a big digit's own ink darken its "paper" and thins its dense strokes)
    background = _local_mean(smooth, max(3, min(h, w) // 6))
    darkness = cv2.subtract(background, smooth)
    # ink must be clearly darker than its neighbourhood: the bar rises with the frame's contrast
    _, mask = cv2.threshold(darkness, max(8.0, 0.25 * std), 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(mask) > config.max_ink * h * w:  # sensor noise, fabric, gravel...
        return empty, empty
    # close 1-px gaps inside strokes (a bigger kernel fills the loops of small 6s and 9s);
    # specks need no opening: find_boxes drops blobs that small
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return darkness, mask


def binarize(gray: np.ndarray, config: SegmentConfig | None = None) -> np.ndarray:
    """uint8 mask (H, W), 255 where ink."""
    return ink_maps(gray, config)[1]


def _local_mean(gray: np.ndarray, block: int) -> np.ndarray:
    """Mean over a block x block window, computed at 1/4 scale: light varies slowly, and this
    is 3x cheaper than cv2.adaptiveThreshold's full-resolution box filter."""
    h, w = gray.shape
    f = 4 if min(h, w) >= 64 else 1
    # plain sampling: the box blur below does the averaging (INTER_AREA costs 5x more)
    small = cv2.resize(gray, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_LINEAR)
    k = max(3, (block // f) | 1)
    small = cv2.blur(small, (k, k), borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------- boxes


def find_boxes(mask: np.ndarray, config: SegmentConfig | None = None) -> list[Box]:
    """Ink blobs that look like one handwritten digit each (x, y, w, h)."""
    config = config or SegmentConfig()
    h, w = mask.shape
    # outer contours = 8-connected components, ~10x faster than connectedComponentsWithStats
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_h = max(config.min_height_px, config.min_height_frac * h)
    pieces = [b for b in map(cv2.boundingRect, contours) if b[3] >= 3 and b[2] * b[3] >= 4]
    boxes = _join_broken_strokes(pieces, min_h)
    keep = []
    for x, y, bw, bh in boxes:
        if not min_h <= bh <= config.max_height_frac * h:
            continue
        if bw > config.max_aspect * bh:  # ruled lines, words, page edges
            continue
        if x <= 0 or y <= 0 or x + bw >= w or y + bh >= h:  # cut by the frame edge
            continue
        fill = cv2.countNonZero(mask[y:y + bh, x:x + bw]) / (bw * bh)
        if not config.min_fill <= fill <= config.max_fill:
            continue
        keep.append((x, y, bw, bh))
    return sorted(keep, key=lambda b: (b[1] // max(1, b[3]), b[0]))


def _join_broken_strokes(boxes: list[Box], min_h: float) -> list[Box]:
    """Merge the pieces of one broken digit: a fragment above or below a piece (a "5" whose
    bar came loose: columns overlap, they nearly touch, the fragment is under half the
    other's height), or two pieces whose boxes mostly overlap (the loop and stem of a "6").
    Two whole digits, stacked or side by side, stay apart."""
    boxes = sorted(boxes, key=lambda b: b[0])
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap_x = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
                gap_y = max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3])
                small, big = sorted((a[3], b[3]))
                fragment = small < 0.5 * max(big, min_h)
                overlap_area = max(0, overlap_x) * max(0, -gap_y)  # a negative gap is an overlap
                nested = overlap_area > 0.5 * min(a[2] * a[3], b[2] * b[3])
                if nested or (fragment and overlap_x > 0.5 * min(a[2], b[2])
                              and gap_y < 0.2 * max(big, min_h)):
                    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
                    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
                    boxes[i] = (x0, y0, x1 - x0, y1 - y0)
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


# ----------------------------------------------------------------------------- MNIST inputs


def normalise_crop(ink: np.ndarray) -> np.ndarray:
    """Ink crop (H, W), white (high) on black, any numeric dtype -> float32 [28, 28] in [0, 1].

    MNIST's recipe: fit into 20x20 keeping the aspect ratio with anti-aliasing, then
    place in 28x28 so the centre of mass sits at the centre (to the whole pixel, as
    MNIST's translation did). The one function used by the camera, the tests and the
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
    small = cv2.resize(ink[y:y + h, x:x + w].astype(np.float32), size, interpolation=cv2.INTER_AREA)
    m = cv2.moments(small)
    top_value = float(small.max())
    if m["m00"] <= 0 or top_value <= 0:
        return out
    centre = (MNIST_SIZE - 1) / 2
    top = min(max(round(centre - m["m01"] / m["m00"]), 0), MNIST_SIZE - size[1])
    left = min(max(round(centre - m["m10"] / m["m00"]), 0), MNIST_SIZE - size[0])
    out[top:top + size[1], left:left + size[0]] = small * np.float32(1.0 / top_value)
    return out


def segment(frame: np.ndarray, config: SegmentConfig | None = None,
            timings: dict[str, float] | None = None) -> list[Detection]:
    """All digit candidates of a frame, each with its 28x28 model input.

    `timings`, when given, receives milliseconds per stage (gray, ink, boxes, normalise).
    """
    clock = [time.perf_counter()]
    gray = to_gray(frame)
    clock.append(time.perf_counter())
    darkness, mask = ink_maps(gray, config)
    clock.append(time.perf_counter())
    boxes = find_boxes(mask, config)
    clock.append(time.perf_counter())
    out = []
    for box in boxes:
        x, y, w, h = box
        # grey-level ink (anti-aliased, as MNIST is) inside the slightly grown mask
        near = cv2.dilate(mask[y:y + h, x:x + w], np.ones((3, 3), np.uint8))
        out.append(Detection(box, normalise_crop(cv2.bitwise_and(darkness[y:y + h, x:x + w], near))))
    clock.append(time.perf_counter())
    if timings is not None:
        for name, t0, t1 in zip(("gray", "ink", "boxes", "normalise"), clock[:-1], clock[1:],
                                strict=True):
            timings[name] = (t1 - t0) * 1e3
    return out


# ----------------------------------------------------------------------------- numbers


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
            v_overlap = min(y + h, ly + lh) - max(y, ly)
            gap = x - (lx + lw)
            if v_overlap >= 0.5 * min(h, lh) and -0.3 * w <= gap <= 0.8 * max(h, lh):
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
        numbers.append({"value": "".join(str(labels[i]) for i in group),
                        "box": [min(xs), min(ys), x1 - min(xs), y1 - min(ys)]})
    return sorted(numbers, key=lambda n: (n["box"][1], n["box"][0]))
