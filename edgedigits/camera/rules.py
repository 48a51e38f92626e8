"""Ruled lines, table rules and grids that digits are written on, found and taken out of the
ink: Hough segments on the long components a page's lines make, each fitted onto its own ink
(_Rule) and followed along it, and spared where a pen stroke meets it. blobs.find_blobs runs
it before judging the components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

MOST_LINES = 64  # Hough segments fitted per frame, longest first: a page in view has fewer lines


class Components(Protocol):
    """What the line search reads of a frame's ink components (blobs._Components)."""

    labels: np.ndarray  # (H, W) component labels
    stats: np.ndarray  # [n, 5] x, y, w, h, area of label i + 1
    sized: np.ndarray  # [n] could be a digit or a piece of one
    pen: float  # the pen's stroke width


def find_rules(mask: np.ndarray, comps: Components) -> tuple[np.ndarray, np.ndarray] | None:
    """The pixels (255) of ruled lines, table rules and grid lines, as (horizontal-ish,
    vertical-ish), or None when the frame has none.

    Only components dropped for their size (too wide, or cut by the frame edge) and longer
    than a quarter of the frame's shorter side are searched: a line with the digits written
    on it is one such component. Its straight runs at least that long (Hough at a coarse
    scale, any angle: a photographed page is tilted) are the lines; each is as thick as the
    ink across it in most places. Where a stroke meets a line (ink just past it on either
    side: a stroke crossing it, ending on it or running along it) the line's pixels stay, so
    a digit written across a line stays whole and a 2 keeps a base written on it; a digit
    sitting on a line comes free of the rest of it."""
    h, w = mask.shape
    long = max(24, min(h, w) // 4)
    x, y, bw, bh, _ = comps.stats.T
    suspects = np.flatnonzero(~comps.sized & ((bw >= long) | (bh >= long)))
    if not len(suspects):
        return None
    ink = np.zeros_like(mask)  # the suspects' own pixels, box by box
    for i in suspects.tolist():
        box = (slice(y[i], y[i] + bh[i]), slice(x[i], x[i] + bw[i]))
        ink[box][comps.labels[box] == i + 1] = 255
    pen = max(2, int(round(comps.pen)))
    f = max(1, min(h, w) // 240)  # Hough on a shrunk copy (any ink in f x f): lines stay lines
    coarse = cv2.resize(ink, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    _, coarse = cv2.threshold(coarse, 0, 255, cv2.THRESH_BINARY)
    found = cv2.HoughLinesP(
        coarse,
        1,
        np.pi / 180,
        threshold=long // (2 * f),
        minLineLength=long // f,
        maxLineGap=max(2, 2 * pen // f),
    )
    if found is None:
        return None
    # first every line whole, then each line spared where ink that is no line crosses it
    # (two lines crossing, as a margin line and a ruled line, protect nothing)
    bands = np.zeros_like(mask)
    rules = []
    segments = found.reshape(-1, 4) * f
    length = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    # the longest first (the rest mostly repeat them); a page of graph paper has a few hundred
    for seg in segments[np.argsort(-length)][:MOST_LINES].tolist():
        rule = _Rule.fit(ink, tuple(seg), pen, f, bands)
        if rule is not None:  # None: a ragged edge (a shadow, a torn page), or a line already found
            rules.append(rule)
            bands.reshape(-1)[rule.pixels(None)] = 255
    if not rules:
        return None
    strokes = cv2.subtract(ink, bands)
    lines = (np.zeros_like(mask), np.zeros_like(mask))  # horizontal-ish, vertical-ish
    for rule in rules:
        lines[0 if rule.horizontal else 1].reshape(-1)[rule.pixels(strokes)] = 255
    return lines


def slivers(comps: Components, horizontal: np.ndarray, vertical: np.ndarray) -> np.ndarray:
    """[n] components beside a removed line and drawn out along it (4 times longer than
    wide): the uneven rim of an edge or a line, not a digit."""
    x, y, bw, bh, _ = comps.stats.T
    out = np.zeros(len(comps.stats), bool)
    rows, cols = comps.labels.shape
    for band, along in ((horizontal, bh * 4 < bw), (vertical, bw * 4 < bh)):
        # only those that would pass for digits, each looked at in its own box grown 1 px: a
        # few boxes cost far less than the whole frame's labels
        for i in np.flatnonzero(along & comps.sized).tolist():
            box = (
                slice(max(0, y[i] - 1), min(rows, y[i] + bh[i] + 1)),
                slice(max(0, x[i] - 1), min(cols, x[i] + bw[i] + 1)),
            )
            near = band[box]
            if near.any():
                beside = cv2.dilate(near, np.ones((3, 3), np.uint8)) > 0
                out[i] = bool((beside & (comps.labels[box] == i + 1)).any())
    return out


def _straight(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The least-squares straight line through (x, y), evaluated at `at`."""
    x = x.astype(np.float64)
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / max(((x - x.mean()) ** 2).sum(), 1.0))
    return y.mean() + slope * (at - x.mean())


def _run(on: np.ndarray, gap: int) -> int:
    """How far the inked run at the start of `on` goes, through gaps of at most `gap`."""
    idx = np.flatnonzero(on)
    if not len(idx) or idx[0] > gap:
        return 0
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)
    return int(idx[breaks[0]] if len(breaks) else idx[-1]) + 1


def _median_count(values: np.ndarray) -> int:
    """The (lower) median of small non-negative ints, from their counts (np.median sorts)."""
    return int(np.searchsorted(np.cumsum(np.bincount(values)), (len(values) + 1) // 2))


@dataclass
class _Rule:
    """One straight line's band, worked as if horizontal (columns along it, rows across)."""

    horizontal: bool
    c: np.ndarray  # [k] columns along the line
    centre: np.ndarray  # [k] its centre row in each
    flat: np.ndarray  # [n] the line's ink pixels, as indices into the flattened frame
    at: np.ndarray  # [n] the index into c of each one's column
    edge: int  # rows from the centre to the first row past the band, either side (it is fitted symmetric)
    steps: tuple[int, int]  # flat index = row * steps[0] + column * steps[1] (as if horizontal)

    @classmethod
    def fit(
        cls, ink: np.ndarray, segment: tuple[int, int, int, int], pen: int, slack: int, found: np.ndarray
    ) -> _Rule | None:
        """The line near `segment` (found `slack` px coarse), or None when the ink along it is
        no even line (a ruled line is inked along nearly all its length and about as thick
        everywhere) or is mostly in `found` already (Hough gives a long line in pieces)."""
        x0, y0, x1, y1 = segment
        horizontal = abs(x1 - x0) >= abs(y1 - y0)
        rows, cols = ink.shape if horizontal else ink.shape[::-1]  # as if horizontal
        if not horizontal:
            x0, y0, x1, y1 = y0, x0, y1, x1
        # (row, column) as if horizontal -> index into the flattened frame: a flat gather is
        # 2.4x a 2-D one, and needs no transposed copy
        row_step, col_step = (ink.shape[1], 1) if horizontal else (1, ink.shape[1])
        ink, found = ink.reshape(-1), found.reshape(-1)
        slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
        c = np.arange(max(0, min(x0, x1)), min(cols, max(x0, x1) + 1))
        if len(c) < 2:
            return None
        centre = np.round(y0 + slope * (c - x0)).astype(int)
        shifts = np.arange(-slack, slack + 1)
        # every 4th column tells whether it is found already and where its ink lies (Hough
        # gives most lines several times over: its two ends and middle found already tell first)
        ends = np.clip(centre[[0, len(c) // 2, -1]][None, :] + shifts[:, None], 0, rows - 1)
        if (found[ends * row_step + c[[0, len(c) // 2, -1]][None, :] * col_step] > 0).any(axis=0).all():
            return None
        window = (
            np.clip(centre[None, ::4] + shifts[:, None], 0, rows - 1) * row_step + c[None, ::4] * col_step
        )
        if (found[window] > 0).any(axis=0).mean() > 0.5:
            return None
        near = ink[window] > 0  # move the coarse segment onto the ink
        centre = centre + int(shifts[int(np.argmax(near.mean(axis=1)))])
        side = pen + 2  # a rule is no thicker than the pen: look a pen width and a bit either side
        offsets = np.arange(-side, side + 1)
        for again in (False, True):
            r = centre[:, None] + offsets[None, :]  # (columns, offsets)
            if centre.min() < side or centre.max() + side >= rows:
                r = np.clip(r, 0, rows - 1)
            across = ink[r * row_step + c[:, None] * col_step] > 0  # the ink across the line, by column
            # the line's half-thickness: the inked run through its centre in most columns
            ups = np.argmin(across[:, : side + 1][:, ::-1], axis=1)
            downs = np.argmin(across[:, side:], axis=1)
            half_up, half_down = _median_count(ups), _median_count(downs)
            even = np.abs(ups + downs - (half_up + half_down)) <= 1
            if across[:, side].mean() >= 0.8 and even.mean() >= 0.6:
                break
            counts = across.sum(axis=1)
            if again or (counts > 0).sum() < 2:
                return None
            # a thin line tilted a few rows off the coarse segment leaves its centre row along
            # much of it: once, the centre moves onto the middle of the ink across it, fitted
            # straight where that ink is about as thick as usual (not where a digit crosses)
            thin = (counts > 0) & (counts <= 2 * _median_count(counts[counts > 0]))
            if thin.sum() < 2:
                return None
            centroid = (across * offsets[None, :]).sum(axis=1) / np.maximum(counts, 1)
            centre = centre + np.round(_straight(c[thin], centroid[thin], c)).astype(int)
        # the middle of the inked run, fitted straight along the columns where the line has its
        # usual thickness: the coarse segment can drift a row or two off a slightly tilted line
        middle = (downs - ups) / 2.0  # the run is offsets -(ups - 1) .. downs - 1
        fitted = _straight(c[even], middle[even], c)
        half = (half_up + half_down - 1) / 2.0  # half the line's usual thickness
        band = (offsets[None, :] >= fitted[:, None] - half - 1) & (
            offsets[None, :] <= fitted[:, None] + half + 1
        )
        at, k = np.nonzero(band & across)
        flat = r[at, k] * row_step + c[at] * col_step
        centre = centre + np.round(fitted).astype(int)
        edge = int(np.ceil(half)) + 2
        rule = cls(horizontal, c, centre, flat, at, edge, (row_step, col_step))
        return rule.follow(ink, rows, cols, gap=2 * pen)

    def follow(self, ink: np.ndarray, rows: int, cols: int, gap: int) -> _Rule:
        """This line followed past its segment's ends, straight on, for as long as its ink goes
        on with no gap wider than `gap` columns: Hough's random search can find a long line in
        part only (it lost the stretch under a row of digits), and the rest of the line then
        tied those digits into one blob too wide to be read. `ink`: the flattened frame."""
        first, last = int(self.c[0]), int(self.c[-1])
        if first == 0 and last == cols - 1:  # the segment spans the frame already
            return self
        # the columns outside the segment, outward from either end
        along = np.concatenate([np.arange(first - 1, -1, -1), np.arange(last + 1, cols)])
        row = np.round(_straight(self.c, self.centre.astype(np.float64), along)).astype(int)
        at_row = np.clip(row, 1, rows - 2) * self.steps[0] + along * self.steps[1]
        on = ((row >= 1) & (row < rows - 1)) & (
            (ink[at_row] > 0) | (ink[at_row - self.steps[0]] > 0) | (ink[at_row + self.steps[0]] > 0)
        )
        before = _run(on[:first], gap)
        after = _run(on[first:], gap)
        if not before and not after:
            return self
        pick = np.concatenate([np.arange(before)[::-1], first + np.arange(after)])  # left to right
        new, new_row = along[pick], row[pick]
        offsets = np.arange(-(self.edge - 1), self.edge)  # the band, as wide as fitted
        band = np.clip(new_row[:, None] + offsets[None, :], 0, rows - 1) * self.steps[0]
        band += new[:, None] * self.steps[1]  # (new columns, offsets), flat indices
        k, j = np.nonzero(ink[band] > 0)
        flat = band[k, j]
        c = np.concatenate([new[:before], self.c, new[before:]])
        centre = np.concatenate([new_row[:before], self.centre, new_row[before:]])
        at = np.concatenate([self.at + before, np.where(k < before, k, k + len(self.c))])
        return _Rule(self.horizontal, c, centre, np.concatenate([self.flat, flat]), at, self.edge, self.steps)

    def pixels(self, strokes: np.ndarray | None) -> np.ndarray:
        """The line's ink pixels, as indices into the flattened frame; given `strokes` (the ink
        that is no line), not in the columns where a stroke meets the line: ink just past its
        band on either side. A stroke that crosses the line, ends on it or runs along it (a 2's
        base written on the line) makes it thicker there than its own width: those pixels stay
        with the digit, and the rest of the line still goes, so a digit resting on it comes free
        with its whole foot. (Ink a stroke width past both sides, the crossings alone, kept 2s
        whose base lay on a line as 7s: ruled pages read 94.9% with 3.5% false detections per
        digit against 97.2% and 0.7%, on 100 generated pages.)"""
        if strokes is None:
            return self.flat
        other = strokes.reshape(-1)
        rows = strokes.shape[0] if self.horizontal else strokes.shape[1]  # as if horizontal
        along = self.c * self.steps[1]
        above = other[np.clip(self.centre - self.edge, 0, rows - 1) * self.steps[0] + along] > 0
        below = other[np.clip(self.centre + self.edge, 0, rows - 1) * self.steps[0] + along] > 0
        return self.flat[~(above | below)[self.at]]
