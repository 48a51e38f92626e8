"""Pixels to ink: any frame to gray, the working resolution, and each pixel's darkness against
the paper (a grey closing wider than the strokes, so shadows, vignetting, table edges and the
frame border are paper, not ink), thresholded by the frame's own noise.

Pure functions on arrays (numpy, OpenCV). segment.py is the pipeline that uses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass
class SegmentConfig:
    work_pixels: int = 2_100_000  # frames above this many pixels are segmented shrunk to it
    min_height_px: int = 10  # smallest digit, in working pixels ...
    min_height_strokes: float = 2.5  # ... and in stroke widths (a digit is several strokes tall)
    # a blob with too few letters beside it for a line of print may be this many stroke widths
    # tall: the pen measured on a page of faint digits 12-14 px tall is 5-7 px (their loops
    # fill in), which put them under 2.5 pens; the letters of print are lines of them
    lone_height_strokes: float = 2.0
    max_height_frac: float = 0.8  # taller than this share of the frame: a page or table edge
    max_aspect: float = 1.25  # width / height of one digit; wider blobs are split into digits
    max_digits_per_blob: int = 4  # a blob wider than this many digits is a line or a word
    min_fill: float = 0.06  # ink pixels / box area: rejects outlines and ruled-line fragments
    max_fill: float = 0.85  # rejects solid blobs (shadows, page corners)
    max_ink: float = 0.35  # more of the frame than this reads as ink: noise or texture, no digits
    min_contrast: float = 12.0  # darkest to brightest below this: a flat frame, skip the work
    faint_ratio: float = 0.5  # when the page's blobs are in two inks, one this much fainter than
    # the other: the faint one is print, a pencil ghost or paper texture, not the pen digits
    still: bool = False  # a photo or scan, not a live frame: the splitter's budget is STILL_PIECES


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


def working_scale(shape: tuple[int, ...], config: SegmentConfig | None = None) -> float:
    """Factor (<= 1) that brings a frame of this shape to the working resolution."""
    config = config or SegmentConfig()
    pixels = shape[0] * shape[1]
    return 1.0 if pixels <= config.work_pixels else math.sqrt(config.work_pixels / pixels)


def ink_maps(gray: np.ndarray, config: SegmentConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dark ink on light paper -> (darkness, mask), both uint8 (H, W).

    darkness: how much darker than the paper each pixel is (grey-level ink); the paper is
    a grey closing (max then min filter) wider than the thickest stroke, so anything
    broad and dark (shadow, table, frame border) is paper-level and has no darkness.
    mask: 255 where that is clearly ink. Blank and noise frames give all zeros.
    """
    config = config or SegmentConfig()
    h, w = gray.shape
    # the range, not the spread: one small digit on clean paper barely moves the spread
    low, high = cv2.minMaxLoc(gray)[:2] if min(h, w) >= 8 else (0.0, 0.0)
    if high - low < config.min_contrast:
        return np.zeros_like(gray), np.zeros_like(gray)
    smooth = cv2.GaussianBlur(gray, (3, 3), 0)
    f = 4 if min(h, w) >= 64 else 1  # light varies slowly: the paper is estimated at 1/4 scale
    # plain sampling of the blurred frame: area averaging costs 15x more and the closing
    # below does the smoothing
    small = cv2.resize(smooth, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_LINEAR)
    # widest stroke a digit can have: ~1/6 of the tallest digit (0.6 of the frame height);
    # the pen is measured at half scale, where a first, wide paper is all it needs
    paper = _paper(small, max(5, min(h, w) // 10) // f)
    half = np.ascontiguousarray(smooth[::2, ::2])
    widest = _widest_stroke(cv2.subtract(cv2.resize(paper, half.shape[::-1]), half))
    if 0 < 3 * widest < min(h, w) // 10:  # thin pens only: a tighter paper, blind to soft shadows
        paper = _paper(small, max(5, 3 * widest) // f)
    darkness = cv2.subtract(cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR), smooth)
    mid, low, upper, darkest = _percentiles(darkness[::3, ::3], (50, 70, 80, 99.9))
    # the bar sits well above the paper's own noise (the spread of its darkness), never below 8
    bar = max(8.0, float(mid + 6.0 * max(upper - mid, 1.0)))
    # ... but where lines cover a fifth of the page (squared paper, a form's rules) that spread
    # is theirs, and the bar rises over the fainter pen digits: it stays at half the darkest
    # ink's darkness, though never below the noise as measured under the lines (p70)
    noise = max(8.0, float(mid + 6.0 * max(2.0 * (low - mid), 1.0)))
    bar = min(bar, max(noise, 0.5 * darkest))
    _, mask = cv2.threshold(darkness, bar, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(mask) > config.max_ink * h * w:  # sensor noise, fabric, gravel...
        return np.zeros_like(gray), np.zeros_like(gray)
    # close 1-px gaps inside strokes; specks are dropped by find_boxes
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return darkness, mask


def _paper(small: np.ndarray, width: int) -> np.ndarray:
    """The paper's light level in a shrunk frame: a grey closing over width x width pixels,
    smoothed so its block edges do not print as ink when it is scaled back up."""
    k = max(3, width | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    return cv2.blur(cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE), (3, 3))


def _widest_stroke(darkness: np.ndarray) -> int:
    """Thickest pen stroke in px (0: no ink), from the darkness at 1/2 scale: the number of 3x3
    erosions that remove 98% of the ink is half the stroke width there. Broad dark areas are
    already paper in `darkness`, so they do not count."""
    level = max(12.0, 0.4 * _percentiles(darkness[::2, ::2], (99,))[0])
    _, mask = cv2.threshold(darkness, level, 255, cv2.THRESH_BINARY)
    total = cv2.countNonZero(mask)
    steps, kernel = 0, np.ones((3, 3), np.uint8)
    while total and cv2.countNonZero(mask) > 0.02 * total and steps < 64:
        mask = cv2.erode(mask, kernel)
        steps += 1
    return 4 * steps  # 2 (both sides) x 2 (scale)


def _percentiles(values: np.ndarray, q: tuple[float, ...]) -> list[float]:
    """Percentiles of uint8 values from their histogram (np.percentile sorts: 10x slower)."""
    hist = cv2.calcHist([np.ascontiguousarray(values)], [0], None, [256], [0, 256])
    counts = hist.ravel().astype(np.float64).cumsum()
    return [float(np.searchsorted(counts, p / 100.0 * counts[-1])) for p in q]


def binarize(gray: np.ndarray, config: SegmentConfig | None = None) -> np.ndarray:
    """uint8 mask (H, W), 255 where ink."""
    return ink_maps(gray, config)[1]
