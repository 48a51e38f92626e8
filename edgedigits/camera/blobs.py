"""Ink to blobs: connected components judged alone (too big, too wide, cut by the frame edge,
or in a fainter ink than the page's pen: dropped, never merged), after ruled lines, table
rules and grids that digits are written on have been taken out of the ink (rules.py); the
letters and words of lines of print dropped (text.py finds the lines; a long line whose
letters are a digit's size is told by reading a few of them); then broken strokes joined when
the union still looks like one digit, over a grid index (linear in the blobs).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgedigits.camera.ink import Box, SegmentConfig
from edgedigits.camera.rules import find_rules, slivers
from edgedigits.camera.text import line_half, line_medians, text_lines

# (component labels, [(box, component label)]) -> probabilities [N, 10], each component read
# whole (segment.locate makes one from a classifier)
Read = Callable[[np.ndarray, list[tuple[Box, int]]], np.ndarray]

# a letter or digit of a line of text is at most this many times the page's smallest digit
# height: small print photographed closer (letters 30-40 px over a 10-px smallest digit)
# escaped every print rule at 3 (158 and 4 false detections on two generated pages, now 0);
# no pen digit of the 3,454 on 240 development print pages is lost at 4, since digits the
# frame's edge cuts no longer count as print in _print
LETTER_TALL = 4.0
PRINT_PAGE = 6  # components dropped as print from which the page holds print (find_blobs)
PRINT_OTHERS = 3  # letters and words no digit's size that make a row of them a line of print
PRINT_TALL = 1.8  # its letters and words are at most this many times its median letter height
# a line of text with this many letter-sized components or more is probed: PROBES of them,
# evenly spaced, read whole before anything else is done with them; half or more read below
# PROBE_SURE, the line is print. A page of small print as dark as the pen has 1,470 letters
# in lines of 95-103: reading all of them took ~150 ms, the bound is 30 ms
LONG_LINE = 24
PROBES = 8
PROBE_SURE = 0.9
# a component of a digit's height too wide for max_digits_per_blob digits (a row of them that
# blur joined) is cut to its ink at least this share as dark as the darkest ink within two pen
# widths (_soft_rows_apart). 60 generated photos out of focus (seeds 11 and 12): 83.2% / 84.4%
# -> 89.8% / 87.1% read right; every other development set read exactly the same. Cutting the
# ink of every blob so read 92.3% on both, but changed 8 tests' cases of print and broken
# strokes, and added 0.3-0.8 points of false detections on touching, ruled and dark print pages
SOFT_SHARE = 0.2
# the pen is the median stroke width of the digit-tall components, unless it is under this
# share of the stroke width that holds half of their ink: then most components are hairlines
# (the fragments a faint grid leaves, 1-2 px wide), and the pen is the ink's. On 220
# development pages of every kind and the real pages the two are within 1.6x of each other;
# on a page of squared paper whose grid came apart in 30 fragments they were 2.0 and 8.2 px,
# and the fragments, over 2.5 pens of 2 px tall, read as 11 false 1s (camera_real --seed 2)
HAIRLINES = 0.5


@dataclass
class Blob:
    """One candidate digit at working resolution: its box and the components it is made of."""

    box: Box
    parts: list[int]  # component labels
    ink: int  # ink pixels
    line: int = -1  # the line of text it is in (text_lines over the page's letter-sized ink)
    line_size: int = 0  # how many letter-sized components that line holds, blobs or not


def find_blobs(
    mask: np.ndarray,
    darkness: np.ndarray,
    config: SegmentConfig | None = None,
    read: Read | None = None,
) -> tuple[list[Blob], np.ndarray, float, int]:
    """Ink components judged alone, broken strokes joined -> (digit-sized blobs, labels, the
    height of the page's print: the median height of the components dropped as print, 0 where
    fewer than PRINT_PAGE were, and how many times the frame's components were labelled: 1, and
    once more for each of ruled lines, a second ink and soft rows taken out). With `read`, long
    lines of text are probed for print first (_probe_print).

    Lines the digits are written on (ruled paper, a form's rules, a grid) are taken out
    first, so the digits touching them come apart (_lines). When the page holds two inks
    (faint print and a pen), the faint components are dropped whole and the pen components
    lose their faint pixels, so a pen stroke that touches the print comes apart from it. A
    row of digits that blur joined into one blob too wide for a number comes apart at its
    strokes' cores (_soft_rows_apart)."""
    config = config or SegmentConfig()
    comps = _components(mask, darkness, config)
    passes = 1
    lines = find_rules(mask, comps)
    if lines is not None:  # ruled lines, table rules, a grid: digits sitting on them come free
        mask = cv2.subtract(mask, cv2.bitwise_or(*lines))
        comps = _without_slivers(_components(mask, darkness, config), lines)
        passes += 1
    split = _ink_split(comps.strength, comps.judged, config.faint_ratio, comps.stats[:, 3])
    if split is not None:
        # faint components go whole; pen components lose their faint pixels (print they touch)
        faint_top, pen_mean = split
        mask = _pen_ink(mask, darkness, comps, faint_top, min(2.0 * faint_top, 0.6 * pen_mean))
        comps = _components(mask, darkness, config)
        passes += 1
    apart = _soft_rows_apart(comps, mask, darkness, config, lines)
    passes += apart is not comps
    comps = apart
    line, size = _letter_lines(comps)
    printed = _print(comps, line)  # letters and words of lines of print (as dark as the pen)
    if read is not None:
        printed |= _probe_print(comps, line, size, read, printed)
    comps.sized &= ~printed
    print_height = float(np.median(comps.stats[printed, 3])) if printed.sum() >= PRINT_PAGE else 0.0
    x, y, bw, bh, area = comps.stats.T
    whole: list[Blob] = []
    pieces: list[Blob] = []
    for i in np.flatnonzero(comps.sized).tolist():
        k = int(line[i])
        blob = Blob((int(x[i]), int(y[i]), int(bw[i]), int(bh[i])), [i + 1], int(area[i]), k, int(size[k]))
        (whole if bh[i] >= comps.min_h else pieces).append(blob)
    blobs = _join(whole, pieces, comps.min_h, config)
    lone_h = max(config.min_height_px, config.lone_height_strokes * comps.pen)
    keep = [
        b
        for b in blobs
        if (b.box[3] >= comps.min_h or (b.box[3] >= lone_h and b.line_size < PRINT_OTHERS))
        and _fill(b) >= config.min_fill
        and not _solid(_fill(b), b.box[2], b.box[3], comps.pen, config)
    ]
    blobs = sorted(keep, key=lambda b: (b.box[1] // max(1, b.box[3]), b.box[0]))
    return blobs, comps.labels, print_height, passes


@dataclass
class _Components:
    labels: np.ndarray  # (H, W) component labels
    stats: np.ndarray  # [n, 5] x, y, w, h, area of label i + 1
    strength: np.ndarray  # [n] mean darkness of each component's ink
    min_h: float  # smallest digit height on this page
    pen: float  # the pen's stroke width (median over digit-tall components)
    sized: np.ndarray  # [n] could be a digit or a piece of one: inside the frame, not too big
    inside: np.ndarray  # [n] not cut by the frame's edge
    judged: np.ndarray  # [n] could be a whole digit: used to tell the inks apart


def _components(mask: np.ndarray, darkness: np.ndarray, config: SegmentConfig) -> _Components:
    h, w = mask.shape
    try:  # 16-bit labels: 2x faster; a frame of more than 65535 blobs is noise, but allowed
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
    except cv2.error:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    stats = stats[1:]  # row i is label i + 1: x, y, w, h, area
    # from every other row and column (a ratio or a mean needs no more): each component's
    # stroke width, its area over half its outline, and the mean darkness of its ink (a
    # component too small to be sampled is never called faint)
    sample = mask[::2, ::2] > 0
    small_labels = labels[::2, ::2][sample]
    counted = np.bincount(small_labels, minlength=n)[1:]
    outline = cv2.subtract(mask, cv2.erode(mask, np.ones((3, 3), np.uint8)))[::2, ::2] > 0
    rim = np.bincount(labels[::2, ::2][outline], minlength=n)[1:]  # boolean indexing: 4x a masked calcHist
    stroke = 2.0 * counted / np.maximum(rim, 1)
    total = np.bincount(small_labels, weights=darkness[::2, ::2][sample], minlength=n)[1:]
    strength = np.where(counted > 0, total / np.maximum(counted, 1), np.inf)
    x, y, bw, bh, area = stats.T
    inside = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)  # not cut by the frame edge
    fill = area / np.maximum(bw * bh, 1)
    pen = _pen(
        stroke,
        (bh >= 8) & (rim > 0),
        area,
        inside & (bh <= config.max_height_frac * h) & (fill <= config.max_fill),
    )
    min_h = max(config.min_height_px, config.min_height_strokes * pen)
    widest = config.max_digits_per_blob * config.max_aspect * np.maximum(bh, min_h)
    # page and table edges, ruled lines, words are dropped alone here, never merged
    sized = inside & (area >= 4) & (bh >= 3) & (bh <= config.max_height_frac * h) & (bw <= widest)
    # at least half a digit tall (specks are all rim, so weak) and of a digit's fill
    judged = (
        sized
        & (bh >= min_h / 2)
        & (fill >= config.min_fill)
        & ~_solid(fill, bw, bh, pen, config)
        & np.isfinite(strength)
    )
    return _Components(labels, stats, strength, min_h, pen, sized, inside, judged)


def _pen(stroke: np.ndarray, tall: np.ndarray, area: np.ndarray, plain: np.ndarray) -> float:
    """The pen's stroke width: the median over the `tall` components, or, when that is under
    HAIRLINES of it, the stroke width that holds half the ink of those that are also `plain`
    (inside the frame, not solid, not as tall as it: no edge or shadow outweighs the pen)."""
    if not tall.any():
        return 2.0
    # statistics.median: np.median costs ~40 us whatever the size, and pages have few blobs
    pen = max(2.0, statistics.median(stroke[tall].tolist()))
    weighed = tall & plain
    if not weighed.any():
        return pen
    widths = stroke[weighed]
    order = np.argsort(widths, kind="stable")
    ink = np.cumsum(area[weighed][order])
    inked = float(widths[order][int(np.searchsorted(ink, ink[-1] / 2))])
    return inked if pen < HAIRLINES * inked else pen


def _letters(comps: _Components) -> np.ndarray:
    """[n] components of a letter's or a digit's size: 0.4-LETTER_TALL smallest digits tall."""
    _, _, bw, bh, _ = comps.stats.T
    return (bh >= 0.4 * comps.min_h) & (bh <= LETTER_TALL * comps.min_h) & (bw <= comps.labels.shape[1] // 2)


def _letter_lines(comps: _Components) -> tuple[np.ndarray, np.ndarray]:
    """([n] each component's line of text, -1 where it is no letter's size; [lines + 1] how
    many components each line holds, the last entry 0 for the -1s)."""
    x, y, bw, bh, _ = comps.stats.T
    line = np.full(len(x), -1, np.int64)
    idx = np.flatnonzero(_letters(comps))
    line[idx] = text_lines(x[idx], y[idx], bw[idx], bh[idx])
    return line, np.append(np.bincount(line[idx]), 0)


def _print(comps: _Components, line: np.ndarray) -> np.ndarray:
    """[n] components that are print: the letters and words of a line of printed text
    (_letter_lines) with PRINT_OTHERS or more members too short or too wide to be a digit (a
    handwritten number's digits are each a digit's size), no taller than PRINT_TALL times the
    median height of those members (a pen digit written beside the print is taller, and stays,
    however many of them the line holds). Print that is no digit's size is dropped anyway;
    this takes the rest of its line, its digit-sized words and letters. (A line of print whose
    members are all a digit's size is told by the classifier: split._print_rows.) A member the
    frame's edge cuts is not counted: a pen digit cut by the edge is no digit's size either.

    Print about as dark as the pen defeats the split by ink (faint print goes with it): its
    words, read whole, are no digit, the splitter cut them into letters that read as digits
    at 1.0 (o as 0, l as 1, y as 4)."""
    bh = comps.stats[:, 3]
    # a letter, a short or a long word; what the frame's edge cuts tells nothing
    other = (line >= 0) & comps.inside & ~(comps.sized & (bh >= comps.min_h))
    out = np.zeros(len(bh), bool)
    if other.sum() < PRINT_OTHERS:  # too few for any line of print
        return out
    idx = np.flatnonzero(other)
    lines = int(line.max()) + 1
    printed = np.bincount(line[idx], minlength=lines) >= PRINT_OTHERS
    letter = line_medians(line[idx], bh[idx], lines)  # the print's own height: its non-digits
    members = np.flatnonzero(line >= 0)
    out[members] = printed[line[members]] & (bh[members] <= PRINT_TALL * letter[line[members]])
    return out


def _probe_print(
    comps: _Components,
    line: np.ndarray,
    size: np.ndarray,
    read: Read,
    printed: np.ndarray,
) -> np.ndarray:
    """[n] components of long lines of print: in each line of LONG_LINE letter-sized components
    or more that _print did not find (`printed`), PROBES of its digit-sized members, evenly
    spaced left to right, are read whole in one batch. Half or more read below PROBE_SURE
    (letters: e, a, n; words), the line is print, and its members no taller than PRINT_TALL
    times their median height go before they are joined, cropped or read (a pen digit written
    in the line is taller and stays). The rule of split._print_rows, on a sample: a line of
    handwritten digits reads surely, even one of 24 or more."""
    out = np.zeros(len(line), bool)
    found = np.bincount(line[printed & (line >= 0)], minlength=len(size))
    long = np.flatnonzero((size >= LONG_LINE) & (found == 0))
    if not len(long):
        return out
    x, y, bw, bh, _ = comps.stats.T
    probes: list[int] = []  # components read
    owner: list[int] = []  # the line each probe is from
    letter = np.zeros(len(size))  # per long line, its members' median height
    for k in long.tolist():
        members = np.flatnonzero((line == k) & comps.sized)
        if not len(members):
            continue
        letter[k] = float(np.median(bh[members]))
        members = members[np.argsort(x[members], kind="stable")]
        step = max(1, len(members) // PROBES)
        picked = members[step // 2 :: step][:PROBES].tolist()
        probes += picked
        owner += [k] * len(picked)
    if not probes:
        return out
    boxes = [((int(x[i]), int(y[i]), int(bw[i]), int(bh[i])), i + 1) for i in probes]
    unsure = np.asarray(read(comps.labels, boxes), np.float32).max(axis=1) < PROBE_SURE
    read_in = np.bincount(owner, minlength=len(size))
    is_print = (read_in > 0) & line_half(np.asarray(owner), unsure, len(size))
    members = np.flatnonzero(line >= 0)
    out[members] = is_print[line[members]] & (bh[members] <= PRINT_TALL * letter[line[members]])
    return out


def _ink_split(
    strength: np.ndarray, candidates: np.ndarray, ratio: float, heights: np.ndarray
) -> tuple[float, float] | None:
    """(the faint ink's strongest mean, the pen's mean) or None when the page has one ink: when the
    candidates' mean ink strengths fall into two groups (best two-class split, as Otsu's)
    whose means differ by more than 1/ratio, the fainter group is print, a pencil ghost or
    paper texture, and the pen is the darker, unless the darker group's components are
    shorter than the fainter's (median `heights`): pen digits are no smaller than the print
    among them, and a few dark specks beside digits out of focus, whose soft strokes measure
    faint, are no pen (a blurred photo's 42 digits of 47 dropped as print beside 5 specks)."""
    order = np.argsort(strength[candidates], kind="stable")
    values, tall = strength[candidates][order], heights[candidates][order]
    if len(values) < 2:
        return None
    total, count = np.cumsum(values), np.arange(1, len(values) + 1)
    low_mean = total[:-1] / count[:-1]
    high_mean = (total[-1] - total[:-1]) / (len(values) - count[:-1])
    split = int(np.argmax(count[:-1] * (len(values) - count[:-1]) * (high_mean - low_mean) ** 2))
    if low_mean[split] >= ratio * high_mean[split]:
        return None
    if np.median(tall[split + 1 :]) < np.median(tall[: split + 1]):
        return None
    return float(values[split]), float(high_mean[split])


def _pen_ink(
    mask: np.ndarray, darkness: np.ndarray, comps: _Components, faint_top: float, least: float
) -> np.ndarray:
    """`mask` less the components whose mean ink is `faint_top` or fainter and less every pixel
    of `least` darkness or fainter. Looked up at the ink left, not at every pixel of the frame:
    a crowded 1280x720 page's 1.4 ms -> 0.3."""
    keep = cv2.bitwise_and(mask, cv2.compare(darkness, math.floor(least), cv2.CMP_GT))  # > least
    points = cv2.findNonZero(keep)
    if points is None:
        return keep
    xs, ys = points.reshape(-1, 2).T
    faint = np.concatenate([[True], comps.strength <= faint_top])[comps.labels[ys, xs]]
    keep[ys[faint], xs[faint]] = 0
    return keep


def _without_slivers(comps: _Components, lines: tuple[np.ndarray, np.ndarray]) -> _Components:
    """`comps` less what is left of a removed line beside it (rules.slivers): no digit."""
    beside = slivers(comps, *lines)
    comps.sized &= ~beside
    comps.judged &= ~beside
    return comps


def _soft_rows_apart(
    comps: _Components,
    mask: np.ndarray,
    darkness: np.ndarray,
    config: SegmentConfig,
    lines: tuple[np.ndarray, np.ndarray] | None,
) -> _Components:
    """Components of a digit's height but too wide for max_digits_per_blob digits, their ink
    cut to what is at least SOFT_SHARE as dark as the darkest ink within two pen widths: out
    of focus, a stroke's soft tail lies above the paper's noise and spans the gaps between
    digits written close, so a row of them is one blob, dropped as a line. Cut to their
    strokes' cores and the rims close to them, they come apart. Ruled lines (`lines`, or None)
    went before; what is left of them beside the new components is no digit either."""
    x, y, bw, bh, _ = comps.stats.T
    widest = config.max_digits_per_blob * config.max_aspect * bh
    rows = comps.inside & (bw > widest) & (bh >= comps.min_h) & (bh <= config.max_height_frac * mask.shape[0])
    if not rows.any():
        return comps
    k = 2 * math.ceil(2 * comps.pen) + 1  # from a soft tail, the stroke's darkest middle is in reach
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    in_rows = np.concatenate([[False], rows])
    cut = mask.copy()
    h, w = mask.shape
    for i in np.flatnonzero(rows).tolist():  # each row's box alone: a page's rows cover little of it
        x0, y0, x1, y1 = int(x[i]), int(y[i]), int(x[i] + bw[i]), int(y[i] + bh[i])
        # the darkness around the box as far as the dilation reaches, so its inside is exact
        ax, ay = max(0, x0 - k // 2), max(0, y0 - k // 2)
        near = cv2.dilate(darkness[ay : min(h, y1 + k // 2), ax : min(w, x1 + k // 2)], element)
        near = near[y0 - ay : y1 - ay, x0 - ax : x1 - ax]
        dark = cv2.convertScaleAbs(darkness[y0:y1, x0:x1], alpha=1.0 / SOFT_SHARE)
        core = cv2.compare(dark, near, cv2.CMP_GE)
        inside = in_rows[comps.labels[y0:y1, x0:x1]]
        cut[y0:y1, x0:x1] = np.where(inside, cv2.bitwise_and(mask[y0:y1, x0:x1], core), cut[y0:y1, x0:x1])
    apart = _components(cut, darkness, config)
    return apart if lines is None else _without_slivers(apart, lines)


def _fill(b: Blob) -> float:
    return b.ink / max(1, b.box[2] * b.box[3])


def _solid(fill: Any, width: Any, height: Any, pen: float, config: SegmentConfig) -> Any:
    """A blob that fills its box and is more than two pen strokes wide both ways: a shadow, a
    page corner, a dark object. A bold "1" fills its box too, but it is one stroke wide.
    Works on numbers or on arrays of them."""
    return (fill > config.max_fill) & (np.minimum(width, height) > 2.0 * pen)


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
    cell = max(8, int(statistics.median([max(b.box[2], b.box[3]) for b in out])))
    grid: dict[tuple[int, int], list[int]] = {}

    def cells(box: Box, grow: float = 0.0) -> list[tuple[int, int]]:
        x, y, w, h = box
        return [
            (cx, cy)
            for cx in range(int(x - grow) // cell, int(x + w + grow) // cell + 1)
            for cy in range(int(y - grow) // cell, int(y + h + grow) // cell + 1)
        ]

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
            out[best] = Blob(union(a.box, b.box), b.parts + a.parts, a.ink + b.ink, b.line, b.line_size)
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
