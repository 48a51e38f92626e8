"""Touching and broken digits: read each blob as the sequence of digits the classifier finds
most convincing (over-segmentation, then the best path through it).

Every unit of the frame becomes a small lattice: nodes are cut positions, edges are
candidate digits (a crop). A lone blob is one edge. Two close blobs whose union still has
the shape of one digit (a stroke broken by the threshold) are three edges: each alone, or
joined. A blob as wide as several digits gets a node at every valley of its ink column
profile and an edge between any two nodes a digit's width apart, so "1636" can be cut
narrow-wide-wide-wide (only when the whole blob's reading is unsure: a second batch).
Each edge scores log(top probability) minus a cut cost (fewer digits unless clearly better) and
a penalty for a piece much wider than tall; dynamic programming picks the best path.
The model must give low confidence to what is not one digit (train --outliers).
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgedigits.camera.segment import (
    Blob,
    Box,
    Detection,
    SegmentConfig,
    blob_ink,
    locate,
    normalise_crop,
    union,
)

Classify = Callable[[np.ndarray], np.ndarray]  # float32 [N, 28, 28] -> probabilities [N, 10]

SPLIT_FROM = 0.75  # width / height from which an unsure blob may hold more than one digit
CUT_COST = 0.3  # log-score each digit costs: a split must beat the whole by ~1.35x in confidence
WIDE_COST = 4.0  # log-score lost per unit of a piece's width/height above 1
MOST_CUTS = 10  # valleys tried per blob: the deepest ones
SURE = 0.9  # a wide blob read as one digit at least this surely is not split


@dataclass
class Lattice:
    """Candidate digits of one unit: edge k goes from node starts[k] to node ends[k]."""

    end: int  # the last node; node 0 is the first
    blob: Blob  # what the lattice reads
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    pieces: list[tuple[Box, np.ndarray]] = field(default_factory=list)  # (box, 28x28 input)

    def add(self, start: int, end: int, piece: tuple[Box, np.ndarray] | None) -> None:
        if piece is not None:
            self.starts.append(start)
            self.ends.append(end)
            self.pieces.append(piece)

    def best(self, proba: np.ndarray) -> list[int]:
        """Edges of the best-scoring path from node 0 to the end (proba: [edges, 10])."""
        if self.end == 1:  # one blob, one edge: nothing to choose
            return [0] if self.starts else []
        score = np.full(self.end + 1, -math.inf)
        score[0] = 0.0
        back = [-1] * (self.end + 1)
        for k in sorted(range(len(self.starts)), key=lambda e: self.starts[e]):
            (_, _, w, h), _ = self.pieces[k]
            gain = (
                math.log(max(float(proba[k].max()), 1e-6))
                - CUT_COST
                - WIDE_COST * max(0.0, w / max(h, 1) - 1.0)
            )
            if score[self.starts[k]] + gain > score[self.ends[k]]:
                score[self.ends[k]] = score[self.starts[k]] + gain
                back[self.ends[k]] = k
        path, node = [], self.end
        while node > 0 and back[node] >= 0:
            path.append(back[node])
            node = self.starts[back[node]]
        return path[::-1]


def detect(
    frame: np.ndarray,
    classify: Classify,
    config: SegmentConfig | None = None,
    timings: dict[str, float] | None = None,
) -> list[Detection]:
    """The camera's whole reading of a frame: segment, classify one crop per blob in one
    batched call, and the candidate pieces of unsure wide blobs in a second. Each Detection
    carries its probabilities; boxes are in frame pixels. `timings` receives ms for gray,
    ink, boxes and read (crops + classify)."""
    config = config or SegmentConfig()
    located = locate(frame, config, timings)
    t0 = time.perf_counter()
    out = read_blobs(located.blobs, located.labels, located.darkness, config, classify)
    for det in out:
        det.box = located.to_source(det.box)
    if timings is not None:
        timings["read"] = (time.perf_counter() - t0) * 1e3
    return out


def read_blobs(
    blobs: list[Blob],
    labels: np.ndarray,
    darkness: np.ndarray,
    config: SegmentConfig,
    classify: Classify | None,
) -> list[Detection]:
    """Blobs -> detections. With `classify`, two close blobs that together look like one
    digit may be joined and wide blobs whose whole reading is unsure are split: at most two
    batched calls, the first with one crop per unit (plus the joined crop of a pair), the
    second with every candidate piece of the unsure wide blobs. Without it, a blob is a digit."""
    if classify is None:
        return [Detection(b.box, _piece(b, labels, darkness)[1]) for b in blobs]
    # a digit with a long tail (a 7 or 9 reaching into the next line) makes its blob tall: the
    # page's typical digit height tells how many digits a blob is wide
    typical = float(statistics.median([b.box[3] for b in blobs])) if blobs else 0.0
    lattices = [_lattice(unit, blobs, labels, darkness) for unit in _units(blobs)]
    probas = _classify(lattices, classify)
    wide = []  # (lattice index, the height its digits are measured against)
    for k, lat in enumerate(lattices):
        if len(lat.pieces) == 1 and float(probas[k].max()) < SURE:
            blob = lat.blob
            height = typical if blob.box[3] > 1.4 * typical else blob.box[3]  # tall: in typical digits
            if blob.box[2] >= SPLIT_FROM * height:
                wide.append((k, height))
    if wide:
        more = [_cuts(lattices[k].blob, labels, darkness, height) for k, height in wide]
        for (k, _), lat, proba in zip(wide, more, _classify(more, classify), strict=True):
            lat.add(0, lat.end, lattices[k].pieces[0])  # the whole stays a candidate
            lattices[k], probas[k] = lat, np.concatenate([proba, probas[k]])
    out = []
    for lat, proba in zip(lattices, probas, strict=True):
        out += [Detection(*lat.pieces[k], proba[k]) for k in lat.best(proba)]
    return out


def _classify(lattices: list[Lattice], classify: Classify) -> list[np.ndarray]:
    """Every piece of every lattice in ONE call -> probabilities [pieces, 10] per lattice."""
    images = [img for lat in lattices for _, img in lat.pieces]
    if not images:
        return [np.zeros((0, 10), np.float32) for _ in lattices]
    proba = np.asarray(classify(np.stack(images)), np.float32)  # [N, 10]
    sizes = np.cumsum([len(lat.pieces) for lat in lattices])[:-1]
    return list(np.split(proba, sizes))


def _lattice(unit: list[int], blobs: list[Blob], labels: np.ndarray, darkness: np.ndarray) -> Lattice:
    if len(unit) == 2:  # separate, or one digit broken in two
        a, b = blobs[unit[0]], blobs[unit[1]]
        joined = Blob(union(a.box, b.box), a.parts + b.parts, a.ink + b.ink)
        lat = Lattice(end=2, blob=joined)
        lat.add(0, 1, _piece(a, labels, darkness))
        lat.add(1, 2, _piece(b, labels, darkness))
        lat.add(0, 2, _piece(joined, labels, darkness))
        return lat
    lat = Lattice(end=1, blob=blobs[unit[0]])
    lat.add(0, 1, _piece(blobs[unit[0]], labels, darkness))
    return lat


def _cuts(blob: Blob, labels: np.ndarray, darkness: np.ndarray, height: float) -> Lattice:
    """A node at every valley of the blob's ink column profile; an edge between any two
    nodes a digit's width apart, a digit being about `height` tall (the whole blob is added
    by the caller)."""
    w = blob.box[2]
    ink = blob_ink(blob.box, blob.parts, labels, darkness)
    holes = _holes(ink)
    # a cut between two digits passes their junction, never the paper inside a 0, 6, 8 or 9
    cuts = [0, *(c for c in _valleys(ink, MOST_CUTS) if not any(a < c < b for a, b in holes)), w]
    lat = Lattice(end=len(cuts) - 1, blob=blob)
    for i in range(len(cuts) - 1):
        for j in range(i + 1, len(cuts)):
            if (i, j) != (0, len(cuts) - 1) and 0.1 * height <= cuts[j] - cuts[i] <= 1.3 * height:
                lat.add(i, j, _trim(ink[:, cuts[i] : cuts[j]], blob.box, cuts[i]))
    return lat


def _piece(blob: Blob, labels: np.ndarray, darkness: np.ndarray) -> tuple[Box, np.ndarray]:
    return blob.box, normalise_crop(blob_ink(blob.box, blob.parts, labels, darkness))


def _units(blobs: list[Blob]) -> list[list[int]]:
    """Blob indices alone, or paired with a blob just to the right when the two are close
    side by side and their union still has the shape of one digit (a "5" whose bar broke off).
    Each blob is in one unit; a bisect over left edges finds the neighbours on any row."""
    order = sorted(range(len(blobs)), key=lambda i: blobs[i].box[0])
    lefts = [blobs[i].box[0] for i in order]
    tallest = max((b.box[3] for b in blobs), default=0)
    paired: set[int] = set()
    units = []
    for i in order:
        if i in paired:
            continue
        ax, ay, aw, ah = blobs[i].box
        for k in range(bisect.bisect_left(lefts, ax), bisect.bisect_right(lefts, ax + aw + 0.15 * tallest)):
            j = order[k]
            bx, by, bw, bh = blobs[j].box
            if j == i or j in paired or bx - (ax + aw) > 0.15 * max(ah, bh):
                continue
            overlap_y = min(ay + ah, by + bh) - max(ay, by)
            ux, uy, uw, uh = union(blobs[i].box, blobs[j].box)
            if overlap_y >= 0.6 * min(ah, bh) and uw <= uh and uh <= 1.2 * max(ah, bh):
                paired.update((i, j))
                units.append([i, j])
                break
        else:
            units.append([i])
    return units


def _holes(ink: np.ndarray) -> list[tuple[int, int]]:
    """Column spans (first, last) of the loops in a blob's ink: paper enclosed by a stroke,
    at least a quarter of the blob tall (two overlapping digits can enclose a little paper
    at their junction: that is no loop, and the cut must be free to pass it)."""
    mask = (ink > 0).astype(np.uint8)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    spans = []
    for contour, (_, _, _, parent) in zip(
        contours, hierarchy[0] if hierarchy is not None else [], strict=False
    ):
        x, _, w, h = cv2.boundingRect(contour)
        if parent >= 0 and h >= max(2, ink.shape[0] // 4) and w >= 2:  # inside an outer contour
            spans.append((x, x + w - 1))
    return spans


def _valleys(ink: np.ndarray, most: int) -> list[int]:
    """Up to `most` columns, left to right, where the ink column profile has a local minimum
    (the deepest ones; a flat valley counts once), away from the blob's ends."""
    w = ink.shape[1]
    profile = np.convolve((ink > 0).sum(axis=0).astype(np.float32), np.ones(3) / 3, mode="same")
    lo, hi = max(1, int(0.08 * w)), min(w - 1, int(0.92 * w))
    found = [i for i in range(lo, hi) if profile[i] <= profile[i - 1] and profile[i] <= profile[i + 1]]
    found.sort(key=lambda i: profile[i])
    picked: list[int] = []
    for i in found:
        if all(abs(i - j) > 2 for j in picked):
            picked.append(i)
        if len(picked) == most:
            break
    return sorted(picked)


def _trim(piece: np.ndarray, box: Box, left: int) -> tuple[Box, np.ndarray] | None:
    """A piece's own ink rows and columns -> (box in working pixels, 28x28 input)."""
    rows = np.flatnonzero(piece.any(axis=1))
    cols = np.flatnonzero(piece.any(axis=0))
    if len(rows) < 3 or len(cols) < 1:
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    x, y, _, _ = box
    return (
        (x + left + int(c0), y + int(r0), int(c1 - c0), int(r1 - r0)),
        normalise_crop(piece[r0:r1, c0:c1]),
    )
