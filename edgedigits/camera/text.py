"""Lines of text in boxes: which letters (or digits) sit side by side in one line, and each
line's median height. Pure numpy on (x, y, w, h) arrays; blobs.py and split.py use it to find
lines of print.
"""

from __future__ import annotations

import numpy as np


def text_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """[n] the line of text each box (x, y, w, h) is in, numbered from 0: rows by the boxes'
    middles (a new row where they jump by half the median height), lines within a row where
    the gap between two boxes is wider than a word space (twice the smaller's height: most
    letters are x-height, and a space is up to an em). n log n on the boxes, no image work."""
    if not len(x):
        return np.zeros(0, np.int64)
    middle = y + h / 2.0
    order = np.argsort(middle, kind="stable")
    row = np.concatenate([[0], np.cumsum(np.diff(middle[order]) > 0.5 * float(np.median(h)))])
    members = order[np.lexsort((x[order], row))]  # row by row, left to right
    row = np.sort(row)
    left, right, tall = x[members], x[members] + w[members], h[members]
    space = 2.0 * np.minimum(tall[1:], tall[:-1])
    new = np.concatenate([[True], (row[1:] != row[:-1]) | (left[1:] - right[:-1] > space)])
    out = np.empty(len(x), np.int64)
    out[members] = np.cumsum(new) - 1
    return out


def line_medians(line: np.ndarray, h: np.ndarray, lines: int) -> np.ndarray:
    """[lines] the (lower) median of `h` within each line (ids from text_lines; 0 for a line
    with no entry here)."""
    out = np.zeros(lines, h.dtype)
    if not len(line):
        return out
    order = np.lexsort((h, line))
    counts = np.bincount(line, minlength=lines)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    out[has] = h[order][starts[has] + (counts[has] - 1) // 2]
    return out


def line_half(line: np.ndarray, part: np.ndarray, lines: int, whole: np.ndarray | None = None) -> np.ndarray:
    """[lines] whether `part` sums to half or more of `whole` within each line (`whole`: one per
    entry when None), e.g. half or more of a line's members read unsure."""
    total = np.bincount(line, weights=whole, minlength=lines)
    return 2 * np.bincount(line, weights=part, minlength=lines) >= total
