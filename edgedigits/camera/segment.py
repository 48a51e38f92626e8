"""Find handwritten digits in a frame and turn each into an MNIST-style model input.

Pure functions on arrays: no I/O, no model (split.detect adds the classifier). Any
frame is accepted: 1, 3 or 4 channels, uint8, uint16 or float, from 1x1 to 8000x6000.

Pipeline, at a working resolution (big frames are shrunk to about 2 megapixels):
  gray -> darkness against the paper (a grey closing wider than the strokes, so shadows,
  vignetting and dark table edges are background, not ink) -> threshold from the frame's
  own noise -> ink components -> each component judged alone (too big, too thin, too faint,
  cut by the frame edge: dropped, never merged with others) -> broken strokes joined only
  when the union still looks like one digit -> blobs as wide as several digits split
  (split.py) -> normalise_crop (MNIST's recipe) from each digit's own ink only.
Boxes come back in source pixels. Cost grows n log n with the number of blobs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
MNIST_BOX = 20  # MNIST fitted each digit into 20x20 ...
MNIST_SIZE = 28  # ... then centred it by mass in 28x28


@dataclass
class SegmentConfig:
    work_pixels: int = 2_100_000  # frames above this many pixels are segmented shrunk to it
    min_height_px: int = 10  # smallest digit, in working pixels ...
    min_height_strokes: float = 2.5  # ... and in stroke widths (a digit is several strokes tall)
    max_height_frac: float = 0.8  # taller than this share of the frame: a page or table edge
    max_aspect: float = 1.25  # width / height of one digit; wider blobs are split into digits
    max_digits_per_blob: int = 4  # a blob wider than this many digits is a line or a word
    min_fill: float = 0.06  # ink pixels / box area: rejects outlines and ruled-line fragments
    max_fill: float = 0.85  # rejects solid blobs (shadows, page corners)
    max_ink: float = 0.35  # more of the frame than this reads as ink: noise or texture, no digits
    min_contrast: float = 12.0  # darkest to brightest below this: a flat frame, skip the work
    faint_ratio: float = 0.5  # when the page's blobs are in two inks, one this much fainter than
    # the other: the faint one is print, a pencil ghost or paper texture, not the pen digits


@dataclass
class Detection:
    box: Box  # in source-frame pixels
    image: np.ndarray = field(repr=False)  # float32 [28, 28] in [0, 1], white digit on black
    proba: np.ndarray | None = field(default=None, repr=False)  # [10], when classified here


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
    empty = np.zeros_like(gray)
    # the range, not the spread: one small digit on clean paper barely moves the spread
    low, high = cv2.minMaxLoc(gray)[:2] if min(h, w) >= 8 else (0.0, 0.0)
    if high - low < config.min_contrast:
        return empty, empty
    smooth = cv2.GaussianBlur(gray, (3, 3), 0)
    f = 4 if min(h, w) >= 64 else 1  # light varies slowly: the paper is estimated at 1/4 scale
    # plain sampling of the blurred frame: area averaging costs 15x more and the closing
    # below does the smoothing
    small = cv2.resize(smooth, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_LINEAR)
    # widest stroke a digit can have: ~1/6 of the tallest digit (0.6 of the frame height)
    darkness = cv2.subtract(_paper(small, max(5, min(h, w) // 10) // f, (w, h)), smooth)
    widest = _widest_stroke(darkness)
    if 0 < 3 * widest < min(h, w) // 10:  # thin pens only: a tighter paper, blind to soft shadows
        darkness = cv2.subtract(_paper(small, max(5, 3 * widest) // f, (w, h)), smooth)
    mid, upper = _percentiles(darkness[::3, ::3], (50, 80))
    # the bar sits well above the paper's own noise (the spread of its darkness), never below 8
    bar = max(8.0, float(mid + 6.0 * max(upper - mid, 1.0)))
    _, mask = cv2.threshold(darkness, bar, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(mask) > config.max_ink * h * w:  # sensor noise, fabric, gravel...
        return empty, empty
    # close 1-px gaps inside strokes; specks are dropped by find_boxes
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return darkness, mask


def _paper(small: np.ndarray, width: int, size: tuple[int, int]) -> np.ndarray:
    """The paper's light level at full `size` (w, h) from a shrunk frame: a grey closing over
    width x width (in shrunk pixels), smoothed so its block edges do not print as ink."""
    k = max(3, width | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(cv2.blur(paper, (3, 3)), size, interpolation=cv2.INTER_LINEAR)


def _widest_stroke(darkness: np.ndarray) -> int:
    """Thickest pen stroke in px (0: no ink), from a coarse mask at 1/2 scale: the number of
    3x3 erosions that remove 98% of the ink is half the stroke width there. Broad dark areas
    are already paper in `darkness`, so they do not count."""
    small = np.ascontiguousarray(darkness[::2, ::2])
    level = max(12.0, 0.4 * _percentiles(small[::2, ::2], (99,))[0])
    _, mask = cv2.threshold(small, level, 255, cv2.THRESH_BINARY)
    total = cv2.countNonZero(mask)
    steps, kernel = 0, np.ones((3, 3), np.uint8)
    while total and cv2.countNonZero(mask) > 0.02 * total and steps < 64:
        mask = cv2.erode(mask, kernel)
        steps += 1
    return 4 * steps  # 2 (both sides) x 2 (scale)


def _percentiles(values: np.ndarray, q: tuple[float, ...]) -> list[float]:
    """Percentiles of uint8 values from their histogram (np.percentile sorts: 10x slower)."""
    counts = np.bincount(values.ravel(), minlength=256).cumsum()
    return [float(np.searchsorted(counts, p / 100.0 * counts[-1])) for p in q]


def binarize(gray: np.ndarray, config: SegmentConfig | None = None) -> np.ndarray:
    """uint8 mask (H, W), 255 where ink."""
    return ink_maps(gray, config)[1]


# ----------------------------------------------------------------------------- blobs


@dataclass
class Blob:
    """One candidate digit at working resolution: its box and the components it is made of."""

    box: Box
    parts: list[int]  # component labels
    ink: int  # ink pixels


def find_blobs(mask: np.ndarray, darkness: np.ndarray,
               config: SegmentConfig | None = None) -> tuple[list[Blob], np.ndarray]:
    """Ink components judged alone, broken strokes joined -> (digit-sized blobs, labels).

    When the page holds two inks (faint print and a pen), the faint components are dropped
    whole and the pen components lose their faint pixels, so a pen stroke that touches the
    print comes apart from it."""
    config = config or SegmentConfig()
    comps = _components(mask, darkness, config)
    split = _ink_split(comps.strength, comps.judged, config.faint_ratio)
    if split is not None:
        # faint components go whole; pen components lose their faint pixels (print they touch)
        faint_top, pen_mean = split
        keep = np.concatenate([[False], comps.strength > faint_top])[comps.labels]
        pen = np.where(keep & (darkness > min(2.0 * faint_top, 0.6 * pen_mean)), mask, 0).astype(np.uint8)
        comps = _components(pen, darkness, config)
    x, y, bw, bh, area = comps.stats.T
    whole: list[Blob] = []
    pieces: list[Blob] = []
    for i in np.flatnonzero(comps.sized).tolist():
        blob = Blob((int(x[i]), int(y[i]), int(bw[i]), int(bh[i])), [i + 1], int(area[i]))
        (whole if bh[i] >= comps.min_h else pieces).append(blob)
    blobs = _join(whole, pieces, comps.min_h, config)
    keep = [b for b in blobs if b.box[3] >= comps.min_h and config.min_fill <= _fill(b) <= config.max_fill]
    return sorted(keep, key=lambda b: (b.box[1] // max(1, b.box[3]), b.box[0])), comps.labels


@dataclass
class _Components:
    labels: np.ndarray  # (H, W) component labels
    stats: np.ndarray  # [n, 5] x, y, w, h, area of label i + 1
    strength: np.ndarray  # [n] mean darkness of each component's ink
    min_h: float  # smallest digit height on this page
    sized: np.ndarray  # [n] could be a digit or a piece of one: inside the frame, not too big
    judged: np.ndarray  # [n] could be a whole digit: used to tell the inks apart


def _components(mask: np.ndarray, darkness: np.ndarray, config: SegmentConfig) -> _Components:
    h, w = mask.shape
    try:  # 16-bit labels: 2x faster; a frame of more than 65535 blobs is noise, but allowed
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
    except cv2.error:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    stats = stats[1:]  # row i is label i + 1: x, y, w, h, area
    edge = cv2.subtract(mask, cv2.erode(mask, np.ones((3, 3), np.uint8)))
    rim = _per_label_count(labels, edge, n)
    stroke = 2.0 * stats[:, 4] / np.maximum(rim, 1)  # area / half the outline = stroke width
    # mean darkness of each component's ink, from every other row and column (a mean needs
    # no more); a component too small to be sampled is never called faint
    sample = np.flatnonzero(mask[::2, ::2])
    small_labels = labels[::2, ::2].ravel()[sample]
    total = np.bincount(small_labels, weights=darkness[::2, ::2].ravel()[sample].astype(np.float64),
                        minlength=n)[1:]
    counted = np.bincount(small_labels, minlength=n)[1:]
    strength = np.where(counted > 0, total / np.maximum(counted, 1), np.inf)
    x, y, bw, bh, area = stats.T
    tall = bh >= 8
    pen = max(2.0, float(np.median(stroke[tall]))) if tall.any() else 2.0
    min_h = max(config.min_height_px, config.min_height_strokes * pen)
    widest = config.max_digits_per_blob * config.max_aspect * np.maximum(bh, min_h)
    inside = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)  # not cut by the frame edge
    # page and table edges, ruled lines, words are dropped alone here, never merged
    sized = inside & (area >= 4) & (bh >= 3) & (bh <= config.max_height_frac * h) & (bw <= widest)
    fill = area / np.maximum(bw * bh, 1)
    # at least half a digit tall (specks are all rim, so weak) and of a digit's fill
    judged = (sized & (bh >= min_h / 2) & (fill >= config.min_fill) & (fill <= config.max_fill)
              & np.isfinite(strength))
    return _Components(labels, stats, strength, min_h, sized, judged)


def _per_label_count(labels: np.ndarray, where: np.ndarray, n: int) -> np.ndarray:
    """Pixels of `where` (uint8 mask) under each label 1..n-1: a histogram of 16-bit labels
    (4x faster than indexing), else a bincount."""
    if labels.dtype == np.uint16:
        return cv2.calcHist([labels], [0], where, [n], [0, n]).ravel()[1:].astype(np.int64)
    return np.bincount(labels[where > 0], minlength=n)[1:]


def _ink_split(strength: np.ndarray, candidates: np.ndarray, ratio: float) -> tuple[float, float] | None:
    """(the faint ink's strongest mean, the pen's mean) or None when the page has one ink: when the
    candidates' mean ink strengths fall into two groups (best two-class split, as Otsu's)
    whose means differ by more than 1/ratio, the fainter group is print, a pencil ghost or
    paper texture, and the pen is the darker."""
    values = np.sort(strength[candidates])
    if len(values) < 2:
        return None
    total, count = np.cumsum(values), np.arange(1, len(values) + 1)
    low_mean = total[:-1] / count[:-1]
    high_mean = (total[-1] - total[:-1]) / (len(values) - count[:-1])
    split = int(np.argmax(count[:-1] * (len(values) - count[:-1]) * (high_mean - low_mean) ** 2))
    if low_mean[split] >= ratio * high_mean[split]:
        return None
    return float(values[split]), float(high_mean[split])


def _fill(b: Blob) -> float:
    return b.ink / max(1, b.box[2] * b.box[3])


def union(a: Box, b: Box) -> Box:
    """The smallest box holding both."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def _join(whole: list[Blob], pieces: list[Blob], min_h: float, config: SegmentConfig) -> list[Blob]:
    """Join each piece too small to be a digit to the nearest blob it touches when grown a
    little, and two blobs whose boxes mostly overlap (a "6" whose loop came loose), but only
    when the union still looks like one digit. One pass over a grid of cells about a blob in
    size: each blob looks only at its neighbours, so the cost grows with n, not n^2."""
    out = whole + pieces
    if not out:
        return []
    cell = max(8, int(np.median([max(b.box[2], b.box[3]) for b in out])))
    grid: dict[tuple[int, int], list[int]] = {}

    def cells(box: Box, grow: float = 0.0) -> list[tuple[int, int]]:
        x, y, w, h = box
        return [(cx, cy) for cx in range(int(x - grow) // cell, int(x + w + grow) // cell + 1)
                for cy in range(int(y - grow) // cell, int(y + h + grow) // cell + 1)]

    for k, b in enumerate(out):
        for c in cells(b.box):
            grid.setdefault(c, []).append(k)
    alive = [True] * len(out)
    for i in sorted(range(len(out)), key=lambda k: out[k].box[3]):  # smallest first
        a = out[i]
        ax, ay, aw, ah = a.box
        reach = 0.3 * max(ah, min_h)
        near = {j for c in cells(a.box, reach) for j in grid.get(c, ())}
        best, best_d = -1, math.inf
        for j in near:
            if j == i or not alive[j] or not _belongs(a, out[j], reach, min_h, config):
                continue
            b = out[j]
            d = abs(ax + aw / 2 - b.box[0] - b.box[2] / 2) + abs(ay + ah / 2 - b.box[1] - b.box[3] / 2)
            if d < best_d:
                best, best_d = j, d
        if best >= 0:
            b = out[best]
            out[best] = Blob(union(a.box, b.box), b.parts + a.parts, a.ink + b.ink)
            alive[i] = False
            for c in cells(out[best].box):  # the grown blob is found from its new cells too
                grid.setdefault(c, []).append(best)
    return [b for b, ok in zip(out, alive, strict=True) if ok]


def _belongs(a: Blob, b: Blob, reach: float, min_h: float, config: SegmentConfig) -> bool:
    """May blob `a` (the smaller) join blob `b`?"""
    ax, ay, aw, ah = a.box
    bx, by, bw, bh = b.box
    gap_x = max(bx - (ax + aw), ax - (bx + bw))
    gap_y = max(by - (ay + ah), ay - (by + bh))
    if gap_x > reach or gap_y > reach:
        return False
    ux, uy, uw, uh = union(a.box, b.box)
    if uw > config.max_aspect * uh or uh > 2.2 * max(bh, min_h):
        return False  # the union would not look like one digit
    small = ah < min_h
    overlap_x = min(ax + aw, bx + bw) - max(ax, bx)
    overlap_y = min(ay + ah, by + bh) - max(ay, by)
    if small:  # a loose bar or tail: above/below sharing columns (a bar may be wider than its
        # stem), or beside sharing rows
        return overlap_x >= 0.5 * min(aw, bw) or overlap_y >= 0.5 * min(ah, bh)
    nested = max(0, overlap_x) * max(0, overlap_y) > 0.5 * min(aw * ah, bw * bh)
    return nested


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
    crop = ink[y:y + h, x:x + w]
    # uint8 ink (the camera's) is shrunk as uint8: 3x cheaper, and MNIST itself is 8-bit
    small = cv2.resize(crop if crop.dtype == np.uint8 else crop.astype(np.float32), size,
                       interpolation=cv2.INTER_AREA)
    m = cv2.moments(small)
    top_value = float(small.max())
    if m["m00"] <= 0 or top_value <= 0:
        return out
    centre = (MNIST_SIZE - 1) / 2
    top = min(max(round(centre - m["m01"] / m["m00"]), 0), MNIST_SIZE - size[1])
    left = min(max(round(centre - m["m10"] / m["m00"]), 0), MNIST_SIZE - size[0])
    out[top:top + size[1], left:left + size[0]] = small.astype(np.float32) * np.float32(1.0 / top_value)
    return out


def blob_ink(blob_box: Box, parts: list[int], labels: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """Grey-level ink (H, W) of this blob's own components only: a neighbour's tail that
    reaches into the box is left out. The mask is grown by 1 px to keep the anti-aliased rim."""
    x, y, w, h = blob_box
    lab = labels[y:y + h, x:x + w]
    own = (lab == parts[0]) if len(parts) == 1 else np.isin(lab, parts)
    near = cv2.dilate(own.view(np.uint8), np.ones((3, 3), np.uint8))
    return darkness[y:y + h, x:x + w] * near


@dataclass
class Located:
    """A frame's blobs at working resolution, with what is needed to crop them."""

    scale: float  # working pixels per source pixel (<= 1)
    blobs: list[Blob]
    labels: np.ndarray  # component labels (H, W) at working resolution
    darkness: np.ndarray  # grey-level ink (H, W) at working resolution

    def to_source(self, box: Box) -> Box:
        if self.scale >= 1.0:
            return box
        x, y, w, h = (int(round(v / self.scale)) for v in box)
        return (x, y, w, h)


def locate(frame: np.ndarray, config: SegmentConfig | None = None,
           timings: dict[str, float] | None = None) -> Located:
    """Frame -> digit-sized blobs. `timings` receives ms for the gray, ink and boxes stages."""
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
    blobs, labels = find_blobs(mask, darkness, config)
    if timings is not None:
        timings.update(gray=(t1 - t0) * 1e3, ink=(t2 - t1) * 1e3, boxes=(time.perf_counter() - t2) * 1e3)
    return Located(scale, blobs, labels, darkness)


def segment(frame: np.ndarray, config: SegmentConfig | None = None,
            timings: dict[str, float] | None = None) -> list[Detection]:
    """All digit candidates of a frame, one per blob (no splitting: split.detect does that),
    each with its 28x28 model input; boxes in frame pixels. `timings` receives ms per stage
    (gray, ink, boxes, normalise)."""
    located = locate(frame, config, timings)
    t0 = time.perf_counter()
    out = [Detection(located.to_source(b.box), normalise_crop(blob_ink(b.box, b.parts, located.labels,
                                                                         located.darkness)))
           for b in located.blobs]
    if timings is not None:
        timings["normalise"] = (time.perf_counter() - t0) * 1e3
    return out


def find_boxes(mask: np.ndarray, config: SegmentConfig | None = None) -> list[Box]:
    """Boxes of the digit-sized blobs of a mask (its own ink as darkness), unsplit."""
    blobs, _ = find_blobs(mask, mask, config)
    return [b.box for b in blobs]


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
