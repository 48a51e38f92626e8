"""Touching and broken digits: read each blob as the sequence of digits the classifier finds
most convincing (over-segmentation, then the best path through it).

Every unit of the frame becomes a small lattice: nodes are cut positions, edges are
candidate digits (a crop). A lone blob is one edge. Two close blobs whose union still has
the shape of one digit (a stroke broken by the threshold) are three edges: each alone, or
joined. A blob as wide as several digits gets a node at every valley of its ink column
profile and an edge between any two nodes a digit's width apart, so "1636" can be cut
narrow-wide-wide-wide (only when the whole blob's reading is unsure: a second batch; its ink is
sharpened first, as a camera out of focus blurs the gaps between digits shut). Where
that reading is still unsure somewhere, cuts that lean with the writing join the straight ones
(a third batch): slanted digits that overlap come apart along the gap between them, and the
cheapest paths of all part digits that overlap with no valley between them; a straight stroke
as tall as a digit is also read alone, and the digit beside it without it: a 1 written into its
neighbour, where no cut path parts them.
Each edge scores log(top probability) minus a cut cost (fewer digits unless clearly better;
none between two blobs that are apart already), a cost per stroke and per loop its cut path
crosses (two digits that touch meet in a stroke or two; a 1 carved out of a 0 and a 5 cuts
four; a cut through a wide 0 crosses its loop) and a penalty for a piece wider than most
digits of the label it reads as; dynamic programming picks the best path (a reading whose
every digit is read near-certainly and full height pays less per digit: SURE_DIGIT). The pieces
of the straight cuts are read once: the leaning pass reads only what it adds.
The model must give low confidence to what is not one digit (train --outliers).
Print is not reported: lines of it read as letters, words cut into letters (five digits with
a letter among them, or two digits as tall as the page's print) and labels beside a number.
"""

from __future__ import annotations

import bisect
import dataclasses
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
    ious,
    locate,
    normalise_crop,
    similarity,
    union,
)
from edgedigits.camera.text import line_half, line_medians

Classify = Callable[[np.ndarray], np.ndarray]  # float32 [N, 28, 28] -> probabilities [N, 10]

SPLIT_FROM = 0.75  # width / height from which an unsure blob may hold more than one digit
# ... and from which one read as no digit at all (below NO_DIGIT) may: writing squeezed by a page
# seen at an angle, two 1s, a 5 and a 6 written close (the real pages under perspective 15%
# lost "18" and "56", 0.6-0.7 as wide as tall). real_conditions 1,129 -> 1,143 of 1,241 (perspective
# 61 -> 65 of 73, none lower); 60 development pages per kind (seeds 11 and 12): crowded +0.4
# points each, ruled +2 digits each and 2 false detections more (seed 11), small +1 / +2,
# squared +1 each (1 false more, seed 12), a4_scan +1 / +3, dark print 0 / +1, defocused 0 / +2
SPLIT_JUNK = 0.5
# log-score each digit of a reading costs (a split must beat the whole by ~1.5x in
# confidence), each stroke its cut crosses (~1.1x more each) and each loop it cuts through
# (2.7x: a wide 0 stays one 0; two digits that overlap can enclose paper, so it is no ban).
# Set on 100 generated pages of touching digits (not the benchmark's), checked on 60 more and
# the real pages: with the cheapest-path cuts and MIN_INK, 87.9% -> 91.7% and 90.0% -> 93.6%
# correct, false detections 2.1% -> 1.0% and 1.3% -> 0.6% per digit. LOOP_COST 1.5 -> 1.0 later:
# crowded pages' overlapping digits (a 1 across a 9's loop) enclose paper more often; 60
# development pages per kind (seeds 11 and 12): crowded 94.0 -> 94.4% and 93.5 -> 93.9%,
# touching 510 -> 510 and 489 -> 491 of 552 and 529, every other kind the same; the real pages
# under real_conditions 1,143 -> 1,144 of 1,241. At 0.75 dark print's words with an o or an e
# were cut into digits (0.006 -> 0.015 false per digit, seed 11)
CUT_COST = 0.4
STROKE_COST = 0.1
LOOP_COST = 1.0
# ... but a reading whose every digit reads at SURE_DIGIT or more, each at least SURE_TALL of
# the blob's height, pays SURE_COST per digit: at CUT_COST a whole read at 0.67 or more beat
# any split in two, and a "17" read whole as a 7 at 0.89 stayed a 7 though its 1 and its 7
# read 1.00 each (crowded pages' joined numbers, most of them with a 1). A fragment read surely
# seldom comes with its rest read as surely, and full height. 60 development pages per kind
# (seeds 11 and 12): crowded 5,334 -> 5,347 and 5,197 -> 5,220 digits read right, false
# detections the same (0.009); every other kind, the real pages and real_conditions read
# exactly the same. At 0.99 crowded gained 6 / 2 more, and false detections rose on crowded,
# ruled, squared and defocused pages; the cheaper cost for any sure piece, not a whole
# reading of them, gained more on crowded pages (+16 / +44) but cut single digits into
# fragments (a 9's loop read as 0 and its stem as 1): touching pages' false detections
# 0.013 -> 0.016 and 0.009 -> 0.015 per digit
SURE_DIGIT = 0.999
SURE_TALL = 0.8
SURE_COST = 0.2
# ... but two blobs already apart are two digits unless joined they read better: a small 8
# beside a long-tailed 7, each read surely, is no broken 7
PAIR_COST = 0.0
# per label read, the width / height that 99% of MNIST's training digits stay within (their ink
# above 60/255): a "1" as wide as it is tall is more likely two digits than a 0 that is
WIDEST = np.array([1.43, 1.0, 1.67, 1.25, 1.25, 1.67, 1.11, 1.25, 1.25, 1.05])
WIDE_COST = 4.0  # log-score lost per unit of a piece's width/height above WIDEST of its label
CUT_ROWS = 40  # a blob at least twice as tall is cut at 1/2, 1/3... of its size
MOST_CUTS = 14  # valleys tried per blob, the deepest ones: a straight cut down each
MOST_LEAN = 4  # leaning cuts tried beside them (_seams)
DRIFT_COST = 0.3  # ink pixels a cut path's sideways step costs: it leans with the gap, no more
CORE = 0.5  # a stroke's core: ink darker than this share of the blob's darkest (its rim is not)
# a wide blob's ink is sharpened before it is cut (unsharp masking: ink + SHARPEN x (ink - ink
# blurred by SHARPEN_BLUR px, at most SHARPEN_SHARE of a digit's height)): blur fills the gap
# between touching digits and the loops they make, and softens the pieces the model reads. The
# core stays measured against the unsharpened darkest: measured against the sharpened one, thin
# strokes fell out of it, a small 0's loop opened and the 0 was cut into a 5 and a 7. 60
# development pages per kind (seeds 11 and 12): defocused 89.8% -> 95.7% and 87.1% -> 95.6%
# read right, crowded 92.1% -> 93.6% and 93.1%, touching 90.9% -> 92.4% (seed 11; seed 12 the
# same, 92.4%), small 95.7% -> 97.2% and 96.3% -> 97.3%, every other kind within 0.3 points;
# false detections on touching pages 0.005 -> 0.009 per digit. The real pages 70 -> 72 of 73;
# blurred 1.5 px, 57 -> 68 (real_conditions; its conditions without blur: 929 -> 930 of 949)
SHARPEN = 2.0
SHARPEN_BLUR = 2.0
SHARPEN_SHARE = 1 / 15
# a straight stroke that runs on ink for STROKE_TALL of a digit's height, no wider than
# STROKE_THIN of it and leaning STROKE_SLANT columns per row at most, is a 1 that may cross a
# neighbour (a 1 written across a 9's loop, into a 6 or through a 5's hook): the leaning pass
# also reads it alone and the neighbour without it (_stroke_alone, _without_stroke), MOST_STROKES per blob,
# the neighbour at least STROKE_REST of its height (a letter's stem beside its bowl is no 1 and
# digit; on a page with print none is lifted out). 60 development pages per kind (seeds 11 and
# 12): crowded 94.4 -> 95.0% and 93.9 -> 94.7%, touching 510 -> 513 and 491 -> 502 of 552 and
# 529; false detections per digit on crowded pages 0.007 -> 0.009 (both seeds), on touching
# pages 0.009 -> 0.011 and 0.008 -> 0.009; every other kind the same; the real pages and
# real_conditions the same (1,144 of 1,241)
STROKE_TALL = 0.7
STROKE_THIN = 0.25
STROKE_SLANT = 0.4
MOST_STROKES = 3
STROKE_REST = 0.8
MIN_TALL = 0.4  # a cut piece is at least this share of a digit's height: else a stroke's fragment
MIN_INK = 0.25  # ... and holds this share of a digit's ink at least (a 1 holds about half)
SURE = 0.9  # a wide blob read as one digit at least this surely is not split
PRINT_ROW = 6  # a line of this many blobs, half of them read below SURE, is print ...
PRINT_SURE_TALL = 1.5  # ... and of its blobs read surely, those this many times its print's height
# ... but a line that only its reading makes that long, on a page with no print, needs this
# share of its digits read unsure: blurred print cut into letters, 0.56-0.86 on generated
# pages and the tests' (its letters read as no digit); a row of handwritten digits blurred
# into a blob or two, 0.5 on the real pages blurred 2.5 px and at half size. Those read 33 ->
# 37 and 47 -> 53 of 73 digits (real_conditions); 60 development pages per kind (seeds 11 and
# 12): defocused 95.6% -> 95.9% (seed 12), every other kind the same
PRINT_ALONE = 0.6
LABEL_SMALL = 0.5  # a printed label beside digits is at most this share of their height ...
# ... and within this many of their heights of them (_labels), but no closer than LABEL_GAP of
# its own height: a label is set a word space or two before the number it names; a row of
# handwritten digits runs on into a long-tailed 7 written close after it, and a number three
# heights along the page is another number. Both were read as labels once a pair of blobs
# read apart became two blobs (_apart): the real pages under real_conditions' 17 conditions,
# 1,090 -> 1,102 of 1,241 correct with LABEL_GAP; with LABEL_NEAR at 2, not 3, 1,119. The
# labels of the tests sit 0.3-1.5 of the number's height before it
LABEL_NEAR = 2.0
LABEL_GAP = 0.5
NO_DIGIT = 0.5  # ... and holds a letter: a piece read below this (the camera's default cut)
# a blob read as this many digits or more, one of them a letter, is a word of print cut into
# letters ("phone", "received"): generated touching pages hold numbers of 2-4 digits written
# joined, and at 3 or 4 a number with one digit read unsure went whole (91.3% -> 87.3% correct);
# at 5 none of 1,081 development touching digits went, one number of 89 shipped digits did (a
# "3740" whose bold 0 was cut in two); at 6, dark print kept half again as many false digits
WORD_PIECES = 5
# ... and a blob read as this many or more, half of them letters ("phone" read 8 0 0 0, the 8
# and a 0 below 0.5): on 60 development pages per kind (seeds 11 and 12) dark print 0.010 ->
# 0.006 false per digit (seed 11), every other kind read the same, touching included
WORD_HALF = 4
# a blob read as two digits or more, as tall as the page's print within this share of its
# height, is a word of it: on 60 development pages each of dark print (seeds 11 and 12),
# 0.023 -> 0.003 and 0.049 -> 0.005 false detections per digit at 0.25 and at 0.35, 0.006 at
# 0.2 (seed 11); every other kind and the real pages read the same. 0.35 would also spare the
# splitter the words with an ascender and a descender (~1.3x), but take a number written
# joined 1.3x as tall as a form's print, which small handwriting is
PRINT_LIKE = 0.25
# candidate pieces classified per frame after the first call (~65 us each with the crop, one
# core): whatever a frame holds, the splitter's time is bounded; the least sure blobs go first
MOST_PIECES = 256
# ... and finding a blob's cut paths costs about as much as this many pieces (0.3-0.4 ms with
# the leaning ones); when the cuts of every unsure blob would make more pieces than the budget
# holds, each is cut at fewer valleys, FEWEST_CUTS at least (_valleys_for). 20 frames of 14
# numbers written joined (1600x480): 67.4% -> 83.3% read right, no slower on pages of print
BLOB_PIECES = 7
FEWEST_CUTS = 4
# ... and its leaning cuts and straight strokes (the leaning pass) as much as this many: a
# least-squares fit of the read's time over 105 development frames of six kinds (best of 3,
# one core, residual 0.9 ms) gave 44 us per piece, 0.31 ms per blob planned (7.1 pieces, as
# BLOB_PIECES says) and 1.17 ms per blob given leaning cuts (26.4 pieces; they were charged
# 7). A dark-print page (1542x748) whose words are cut before the print rules drop them went
# 37.5 -> 26.9 ms, crowded pages' first live frames (1280x720) 30-36 -> 21-24 ms; touching
# pages (seeds 11 / 12) 513 -> 509 and 502 -> 500 digits, defocused 1,594 -> 1,589 (seed 11)
LEAN_PIECES = 26
# ... and the first call's crops beyond this many count against it: a frame classifies
# MOST_PIECES + FIRST_FREE crops in all (each of its blobs once, when they are more). A page of
# 116 words of print blown up to 1920x853: 32-36 -> 30-33 ms, one core; a dark-print page of
# 105 blobs (1542x748): 28.6 -> 25.3 ms; every development set read the same
FIRST_FREE = 64
# ... and each labelling of the frame's components past the first (ruled lines, a second ink or
# soft rows taken out: blobs.find_blobs) as much as a piece per this many pixels: 0.6-3.3 ms
# a pass at 640x480-1542x748, one core. A crowded page (1280x720) with one pencil mark beside
# its pen digits took a second pass and was the slowest first live frame, 29-31 ms against
# 23-26 for its neighbours; the development pages of every live kind read the same
PASS_PIXELS = 16_000
# ... and so is the first, past the pixels of a 640x480 frame (MOST_PIECES was set on those):
# a 1542x748 page 53 pieces less, 1280x720 38, 1920x1080 110. The benchmark's slowest first
# live frames (best of 3, one core): dark print 25.3 -> 22.3 ms, crowded 25 -> 23.3 ms; 60
# development pages of print and dark print (seeds 11 / 12) read the same
BUDGET_PIXELS = 640 * 480
# ... but a still image (SegmentConfig.still: an image or folder source, read_digits on a file)
# is read whole, not at a frame rate: a 1280x720 photo of ~35 numbers written joined takes
# ~1,200 pieces (camera_real's crowded set: 92.0% read right, the slowest 106 ms; 23.5% within
# MOST_PIECES). This many is ~170 ms of pieces, within the 300 ms an A4 scan may take
STILL_PIECES = 3072
# a live stream's wide blob whose whole input correlates this much with one its last frame cut,
# its box overlapping that one's by SAME_PLACE (IoU), is that blob: its reading is taken, not
# cut again (SplitMemory). A digit changed in a number of three changes the whole more
SAME_BLOB = 0.9
SAME_PLACE = 0.5


@dataclass
class Lattice:
    """Candidate digits of one unit: edge k goes from node starts[k] to node ends[k]. Nodes
    0..end are cut paths, left to right; those after `end` lie between two of them (node)."""

    end: int  # the last node; node 0 is the first
    blob: Blob  # what the lattice reads
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    pieces: list[tuple[Box, np.ndarray]] = field(default_factory=list)  # (box, 28x28 input)
    keys: list[bytes] = field(default_factory=list)  # what each piece is: its two cut paths
    cost: float = 0.0  # log-score each digit of a reading costs: CUT_COST or PAIR_COST
    crossed: list[float] = field(default_factory=list)  # per node: what its cut path crosses (_crossed)
    inner: list[int] = field(default_factory=list)  # nodes after `end`: the node each follows

    def node(self, after: int) -> int:
        """A node between `after` and the next: two digits that overlap (a stroke and the digit it
        crosses, _without_stroke) are two edges through it."""
        self.inner.append(after)
        if self.crossed:
            self.crossed.append(0.0)  # no cut path: the stroke is lifted out whole
        return self.end + len(self.inner)

    def add(self, start: int, end: int, piece: tuple[Box, np.ndarray] | None, key: bytes = b"") -> None:
        if piece is not None:
            self.starts.append(start)
            self.ends.append(end)
            self.pieces.append(piece)
            self.keys.append(key)

    def best(self, proba: np.ndarray) -> list[int]:
        """Edges of the best-scoring path from node 0 to the end (proba: [edges, 10])."""
        if self.end == 1 and not self.inner:  # one blob, one edge: nothing to choose
            return [0] if self.starts else []
        proba = np.asarray(proba)
        w, h = np.array([box[2:] for box, _ in self.pieces], np.float64).T
        top = proba.max(axis=1).astype(np.float64)
        gain = (
            np.log(np.maximum(top, 1e-6))
            - (np.asarray(self.crossed)[self.ends] if self.crossed else 0.0)
            - WIDE_COST * np.maximum(0.0, w / np.maximum(h, 1.0) - WIDEST[proba.argmax(axis=1)])
        )
        order = np.argsort(
            np.array([*range(self.end + 1), *(a + 0.5 for a in self.inner)])[self.starts], kind="stable"
        ).tolist()  # the edges by where they start, inner nodes in their place
        path, score = self._path((gain - self.cost).tolist(), order)
        if self.cost == CUT_COST:  # a cut blob: its readings whose every digit is sure and tall
            sure = (top >= SURE_DIGIT) & (h >= SURE_TALL * self.blob.box[3])
            if sure.any():
                sure_path, sure_score = self._path((gain - SURE_COST).tolist(), [k for k in order if sure[k]])
                if sure_score > score:
                    return sure_path
        return path

    def _path(self, gain: list[float], order: list[int]) -> tuple[list[int], float]:
        """The best path from node 0 to the end through the edges in `order` (sorted by their
        start), each edge scoring its `gain`, and its score (-inf when there is none)."""
        score = [-math.inf] * (self.end + 1 + len(self.inner))
        score[0] = 0.0
        back = [-1] * len(score)
        for k in order:
            start, end = self.starts[k], self.ends[k]
            if score[start] + gain[k] > score[end]:
                score[end] = score[start] + gain[k]
                back[end] = k
        path, node = [], self.end
        while node > 0 and back[node] >= 0:
            path.append(back[node])
            node = self.starts[back[node]]
        return path[::-1], score[self.end]


@dataclass
class _Reading:
    """How a frame read one wide blob: its box (working pixels), whole input, and the pieces of
    its best reading (box, input, probabilities); `final` when no budget cut it short."""

    box: Box
    whole: np.ndarray
    pieces: list[tuple[Box, np.ndarray, np.ndarray]]
    final: bool


class SplitMemory:
    """The readings of a live stream's wide blobs in its last frame. A page held before the
    camera needs the same cuts frame after frame: a blob read before (SAME_BLOB, SAME_PLACE) is
    not cut again, so each frame's piece budget goes to the blobs not read yet, and a page of
    more joined numbers than one frame's budget cuts is read whole over a few frames. A blob
    read within a budget that ran short is cut again when the budget allows."""

    def __init__(self) -> None:
        self.readings: list[_Reading] = []

    def recall(self, box: Box, whole: np.ndarray) -> _Reading | None:
        """The reading of the blob in about this place with about this whole input, if any."""
        if not self.readings:
            return None
        overlap = ious(np.reshape(box, (1, 4)), np.array([r.box for r in self.readings]))[0]
        for i in np.argsort(-overlap, kind="stable").tolist():  # the most overlapping first
            if overlap[i] < SAME_PLACE:
                return None
            if similarity(self.readings[i].whole, whole) >= SAME_BLOB:
                return self.readings[i]
        return None


def detect(
    frame: np.ndarray,
    classify: Classify,
    config: SegmentConfig | None = None,
    timings: dict[str, float] | None = None,
    memory: SplitMemory | None = None,
    reread: Classify | None = None,
) -> list[Detection]:
    """The camera's whole reading of a frame: segment, classify one crop per blob in one
    batched call, and the candidate pieces of unsure wide blobs in a second. Each Detection
    carries its probabilities; boxes are in frame pixels. `timings` receives ms for gray,
    ink, boxes and read (crops + classify). `memory`: a live stream's readings of its last
    frame, used and updated (SplitMemory). `reread`: a second model for a still image's cut
    pieces (read_blobs)."""
    config = config or SegmentConfig()
    located = locate(frame, config, timings, classify)
    t0 = time.perf_counter()
    out = read_blobs(
        located.blobs,
        located.labels,
        located.darkness,
        config,
        classify,
        located.print_height,
        memory,
        located.passes,
        reread,
    )
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
    print_height: float = 0.0,
    memory: SplitMemory | None = None,
    passes: int = 1,
    reread: Classify | None = None,
) -> list[Detection]:
    """Blobs -> detections. With `classify`, two close blobs that together look like one
    digit may be joined and wide blobs whose whole reading is unsure are split: at most three
    batched calls, the first with one crop per unit (plus the joined crop of a pair), the
    second with every candidate piece of the unsure wide blobs, the third with the new pieces
    of the readings still unsure somewhere, cut again with leaning cuts beside the straight ones
    (a piece the second call read is not read again).
    The two later calls classify MOST_PIECES pieces at most (STILL_PIECES for a still image,
    SegmentConfig.still), less the first call's crops beyond FIRST_FREE, the least sure blobs
    first; when every unsure blob's cuts would make more, each is cut at fewer valleys
    (_valleys_for), and less the time the frame's components took to label: every pass past the
    first of its `passes`, and the first past BUDGET_PIXELS (PASS_PIXELS).
    In a still image (SegmentConfig.still), with `reread`, a second model, each cut piece reads
    as the two models' geometric mean (_agreed) for its reading and its path; the rules for
    print and labels (set on `classify`'s readings) count a piece a letter only when neither
    reading is sure, and a digit beside a label sure only when both are.
    Blobs of a line of print (_print_rows), words of print cut into letters (_words, and
    _print_sized on a page whose print is `print_height` tall) and printed labels beside
    digits (_labels) are not reported. Without `classify`, a blob is a digit. With `memory`,
    a wide blob the stream's last frame read is read so again, and cut only when that reading
    was cut short and the budget allows (SplitMemory); `memory` then holds this frame's."""
    if classify is None:
        return [Detection(b.box, _piece(b, labels, darkness)[1]) for b in blobs]
    agree = reread if config.still else None
    # a digit with a long tail (a 7 or 9 reaching into the next line) makes its blob tall: the
    # typical digit height of its line of text (of the page, for a line of under 3 blobs) tells
    # how many digits a blob is wide (the page's alone was the print's, on a page of print)
    typical = _typical_heights(blobs)
    units = _units(blobs)
    lattices = [_lattice(unit, blobs, labels, darkness) for unit in units]
    lattices, probas = _apart(units, blobs, lattices, _classify(lattices, classify))
    wide = []  # (lattice index, the height its digits are measured against)
    words = set()  # wide, unsure and as tall as the page's print: a word of it, not cut
    for k, lat in enumerate(lattices):
        if len(lat.pieces) == 1 and float(probas[k].max()) < SURE:
            blob = lat.blob
            usual = typical.get(blob.line, typical[-1])
            height = usual if blob.box[3] > 1.4 * usual else blob.box[3]  # tall: in typical digits
            if blob.box[2] >= (SPLIT_JUNK if float(probas[k].max()) < NO_DIGIT else SPLIT_FROM) * height:
                if _print_tall(blob, print_height):
                    words.add(k)
                else:
                    wide.append((k, height))
    whole = {k: (lattices[k].pieces[0], probas[k]) for k, _ in wide}
    wide.sort(key=lambda kh: float(whole[kh[0]][1].max()))  # the least sure first
    budget = STILL_PIECES if config.still else MOST_PIECES
    budget -= max(0, sum(len(lat.pieces) for lat in lattices) - FIRST_FREE)  # the first call's crops
    budget -= ((passes - 1) * labels.size + max(0, labels.size - BUDGET_PIXELS)) // PASS_PIXELS
    read: dict[int, dict[bytes, np.ndarray]] = {}  # per blob, its pieces read so far by key
    alone: dict[int, dict[bytes, np.ndarray]] = {}  # ... by `classify` alone, when `agree` reads too
    plain = list(probas)  # each lattice's readings by `classify` alone (the print rules')
    cut_at: dict[int, bool] = {}  # the blobs cut in this frame: whether no budget cut it short
    full_lean: set[int] = set()  # the blobs given every leaning cut
    cache: dict[int, _Plan] = {}
    plans, left = _plans(wide, lattices, labels, darkness, budget, MOST_CUTS, cache)
    short = len(plans) < len(wide) or left < 0  # cannot cut them all
    recalled = _recall(memory, wide, whole, lattices) if memory is not None and short else {}
    again = bool(wide) and all(k in recalled for k, _ in wide)
    if recalled:  # the blobs not read before; when every one was, those a budget cut short,
        # read again at every valley, as many as fit: each frame finishes a few
        wide = [(k, h) for k, h in wide if (k in recalled) == again and not (again and recalled[k].final)]
    valleys = MOST_CUTS
    if short and not again:
        plans, _ = _plans(wide, lattices, labels, darkness, budget, FEWEST_CUTS, cache)
        valleys = _valleys_for(list(plans.values()), budget - BLOB_PIECES * len(plans))
    elif recalled:  # fewer blobs to cut: those that fit at every valley
        plans, _ = _plans(wide, lattices, labels, darkness, budget, MOST_CUTS, cache)
    for lean in (False, True):
        cut, todo = [], []  # (blob, height, lattice); the pieces not read yet
        for n, (k, height) in enumerate(wide):
            if k not in plans or budget <= 0:
                break
            leaning = 0
            if lean:  # its leaning cuts: all that fit, else its share of what is left
                budget -= LEAN_PIECES  # finding them costs about that many pieces' reading
                if budget <= 0:
                    break
                plans[k] = _leaning(plans[k], strokes=print_height <= 0)  # print: letters' stems
                leaning = _leaning_for(plans[k], valleys, budget, len(wide) - n)
                if not leaning:  # no room: it and the rest keep the readings they have
                    break
                if leaning == MOST_LEAN:
                    full_lean.add(k)
                if plans[k].demand(valleys, leaning) > budget // (len(wide) - n):  # no room for strokes
                    plans[k] = dataclasses.replace(plans[k], strokes=[])
            known = read.setdefault(k, {})
            made = dict(zip(lattices[k].keys, lattices[k].pieces, strict=True)) if lean else {}
            lat = _cuts(plans[k], valleys, leaning, made)
            # the pieces not read yet, each once (a stroke is a piece of several edges)
            new = list({key: e for e, key in enumerate(lat.keys) if key not in known}.values())
            if len(new) > budget:  # the rest keep the readings they have: cutting costs too
                break
            budget -= len(new)
            cut.append((k, height, lat))
            todo += [(k, lat.keys[e], lat.pieces[e][1]) for e in new]
        if not cut:
            break
        if todo:
            images = np.stack([img for _, _, img in todo])
            one = np.asarray(classify(images), np.float32)
            proba = one if agree is None else _agreed(one, np.asarray(agree(images), np.float32))
            for (k, key, _), p, q in zip(todo, proba, one, strict=True):
                read[k][key] = p
                if agree is not None:
                    alone.setdefault(k, {})[key] = q
        for k, _, lat in cut:
            keys = list(lat.keys)  # its pieces', before the whole joins them
            proba = np.array([read[k][key] for key in keys], np.float32).reshape(-1, 10)
            lat.add(0, lat.end, whole[k][0])  # the whole stays a candidate
            lattices[k], probas[k] = lat, np.concatenate([proba, whole[k][1]])
            plain[k] = probas[k]
            if agree is not None:  # the print rules': `classify`'s readings alone
                by_one = np.array([alone[k][key] for key in keys], np.float32).reshape(-1, 10)
                plain[k] = np.concatenate([by_one, whole[k][1]])
            sure = _least(probas[k], lat.best(probas[k])) >= SURE
            cut_at[k] = valleys == MOST_CUTS and (k in full_lean if lean else sure)
        # a third call for the readings still unsure somewhere: the same cuts and, beside
        # them, cuts that lean with the writing (only the pieces not read already)
        wide = [(k, height) for k, height, lat in cut if _least(probas[k], lat.best(probas[k])) < SURE]
    for k, reading in recalled.items():
        if k not in cut_at:  # read as the last frame read it
            lattices[k], probas[k] = _recalled(reading, lattices[k].blob, whole[k])
            plain[k] = probas[k]
    paths = [lat.best(proba) for lat, proba in zip(lattices, probas, strict=True)]
    if memory is not None:
        memory.readings = [
            _Reading(
                lattices[k].blob.box,
                whole[k][0][1],
                [(*lattices[k].pieces[e], probas[k][e]) for e in paths[k]],
                cut_at[k] if k in cut_at else recalled[k].final,
            )
            for k in sorted(set(cut_at) | set(recalled))
        ]
    # with two readings, the print rules take a piece for a letter only when neither is sure,
    # and a digit beside a label for sure only when both are
    surest, least = probas, probas
    if agree is not None:
        surest = [np.maximum(p, q) for p, q in zip(probas, plain, strict=True)]
        least = [np.minimum(p, q) for p, q in zip(probas, plain, strict=True)]
    printed = _print_rows(lattices, surest, paths, print_height)
    printed |= _words(surest, paths)
    printed |= _print_sized(lattices, paths, print_height) | words
    printed |= _labels(lattices, surest, paths, printed, least)
    out = []
    for k, (lat, proba, path) in enumerate(zip(lattices, probas, paths, strict=True)):
        if k not in printed:
            out += [Detection(*lat.pieces[e], proba[e]) for e in path]
    return out


def _apart(
    units: list[list[int]], blobs: list[Blob], lattices: list[Lattice], probas: list[np.ndarray]
) -> tuple[list[Lattice], list[np.ndarray]]:
    """Pairs read as their two blobs apart, or whose union reads as no digit (below NO_DIGIT),
    -> a lattice per blob, with the readings the first call made: either blob may be digits
    that touch ("7" beside a joined "56", a long-tailed 9 beside its 8 once the page turns),
    only a lone blob is cut, and a union read as no digit lost the digit read surely beside
    it. A broken digit whose union reads surely stays one."""
    out_lattices, out_probas = [], []
    for unit, lat, proba in zip(units, lattices, probas, strict=True):
        if len(unit) == 2 and (lat.best(proba) == [0, 1] or float(proba[2].max()) < NO_DIGIT):
            for e, i in enumerate(unit):
                alone = Lattice(end=1, blob=blobs[i])
                alone.add(0, 1, lat.pieces[e])
                out_lattices.append(alone)
                out_probas.append(proba[e : e + 1])
        else:
            out_lattices.append(lat)
            out_probas.append(proba)
    return out_lattices, out_probas


def _recall(
    memory: SplitMemory,
    wide: list[tuple[int, float]],
    whole: dict[int, tuple[tuple[Box, np.ndarray], np.ndarray]],
    lattices: list[Lattice],
) -> dict[int, _Reading]:
    """The `wide` blobs (lattice index, height) that `memory` read before, with its reading."""
    found = {k: memory.recall(lattices[k].blob.box, whole[k][0][1]) for k, _ in wide}
    return {k: reading for k, reading in found.items() if reading is not None}


def _recalled(
    reading: _Reading, blob: Blob, whole: tuple[tuple[Box, np.ndarray], np.ndarray]
) -> tuple[Lattice, np.ndarray]:
    """A lattice of a reading from memory: its pieces in a row, moved as the blob moved, and
    this frame's whole blob beside them."""
    dx, dy = blob.box[0] - reading.box[0], blob.box[1] - reading.box[1]
    lat = Lattice(end=len(reading.pieces), blob=blob, cost=CUT_COST)
    for i, ((x, y, w, h), image, _) in enumerate(reading.pieces):
        lat.add(i, i + 1, ((x + dx, y + dy, w, h), image))
    lat.add(0, lat.end, whole[0])
    return lat, np.concatenate([np.stack([p for _, _, p in reading.pieces]), whole[1]])


def _print_rows(
    lattices: list[Lattice], probas: list[np.ndarray], paths: list[list[int]], print_height: float = 0.0
) -> set[int]:
    """Lattices that are print: in a line of text (Blob.line) of PRINT_ROW or more letter-sized
    components, half or more of whose blobs are read less than surely (below SURE) somewhere
    along their best reading (`paths`), and half or more of the digits they are read as too.
    The second count keeps a short line of pen digits whose unsure blobs are one digit of
    several (the real page's "400 8 0 88": 2 of 4 blobs unsure, 2 of 6 digits). Of such a
    line, the blobs read unsure go, and those read surely no taller than PRINT_SURE_TALL times
    the median height of the unsure ones (an o read as 0, an l as 1; a pen digit beside the
    print is taller and stays, however many of them the line holds). Small print's letters and
    bold print's words are digit-sized blobs, and n, e, a read as no digit; a number written
    joined is cut into digits read surely.
    A line's size is its letter-sized components or the digits its blobs are read as, whichever
    is more: blurred print joins a word's letters into one blob ("signed office": two blobs
    read as ten digits). On a page with no print (`print_height` 0: blobs.find_blobs dropped
    none as print), a line that is that long only by its reading is print when PRINT_ALONE of
    its digits read unsure, not half: a row of handwritten digits that a photo out of focus
    blurs into a blob or two is cut into digits of which half read unsure.
    Measured: no line of 6 or more handwritten blobs on the real pages and 20 generated pages
    of each kind had more than 29% read below SURE; the lines of a page of small print 73-86%."""
    lines = np.array([lat.blob.line for lat in lattices], np.int64)
    letters = np.array([lat.blob.line_size for lat in lattices])
    read = np.bincount(lines + 1, weights=[max(1, len(path)) for path in paths])  # [0]: no line
    size = np.maximum(letters, read[lines + 1])
    keep = np.flatnonzero((lines >= 0) & (size >= PRINT_ROW))
    if not len(keep):
        return set()
    h = np.array([lattices[k].blob.box[3] for k in keep])
    # the digits each blob is read as, and how many of them unsure (a blob not read: one, unsure)
    digits = np.array([max(1, len(paths[k])) for k in keep], np.float64)
    unsure_digits = np.array([_below(probas[k], paths[k], SURE) if paths[k] else 1 for k in keep], np.float64)
    unsure = unsure_digits > 0  # the blob is read unsure somewhere
    _, line = np.unique(lines[keep], return_inverse=True)
    n = int(line.max()) + 1
    printed = line_half(line, unsure, n) & line_half(line, unsure_digits, n, digits)
    if print_height <= 0:  # no print on the page: a line as long as print by its reading alone
        by_reading = np.bincount(line, weights=letters[keep] < PRINT_ROW, minlength=n) > 0
        unsure_share = np.bincount(line, weights=unsure_digits, minlength=n) / np.bincount(
            line, weights=digits, minlength=n
        )
        printed &= ~by_reading | (unsure_share >= PRINT_ALONE)
    letter = line_medians(line[unsure], h[unsure], n)  # the print's own height
    drop = printed[line] & (unsure | (h <= PRINT_SURE_TALL * letter[line]))
    return set(keep[drop].tolist())


def _words(probas: list[np.ndarray], paths: list[list[int]]) -> set[int]:
    """Lattices read as WORD_PIECES digits or more, one of them below NO_DIGIT (a letter), or
    as WORD_HALF or more, half of them letters: a word of print whose letters blur into one
    blob, cut into letters that read as digits (o as 0, l as 1) and letters that read as none
    (e, a). A number's digit read unsure is one of several, and its sure digits stay."""
    return {
        k
        for k, (proba, path) in enumerate(zip(probas, paths, strict=True))
        if _with_letter(proba, path, WORD_PIECES)
        or (len(path) >= WORD_HALF and 2 * _below(proba, path, NO_DIGIT) >= len(path))
    }


def _below(proba: np.ndarray, path: list[int], cut: float) -> int:
    """How many digits of a reading (`path`) are read below `cut`."""
    return sum(float(proba[e].max()) < cut for e in path)


def _with_letter(proba: np.ndarray, path: list[int], digits: int) -> bool:
    """Read as `digits` digits or more along `path`, one of them below NO_DIGIT (a letter)."""
    return len(path) >= digits and _least(proba, path) < NO_DIGIT


def _print_sized(lattices: list[Lattice], paths: list[list[int]], print_height: float) -> set[int]:
    """Lattices read as two digits or more whose blob is as tall as the page's print (within
    PRINT_LIKE of `print_height`, the median height of the components blobs.find_blobs dropped
    as print): a word of that print, its letters blurred into one blob ("only", "by", "of"
    read as 0, 1, 1 with no letter among them). read_blobs does not cut a blob of that height
    that reads unsure and is wide: a word, dropped uncut. A number written joined as small as
    the page's print would go too; a lone digit of its height stays."""
    return {k for k, lat in enumerate(lattices) if len(paths[k]) >= 2 and _print_tall(lat.blob, print_height)}


def _print_tall(blob: Blob, print_height: float) -> bool:
    """As tall as the page's print (within PRINT_LIKE of its height; never on a page with none)."""
    return print_height > 0 and abs(blob.box[3] - print_height) <= PRINT_LIKE * print_height


def _labels(
    lattices: list[Lattice],
    probas: list[np.ndarray],
    paths: list[list[int]],
    printed: set[int],
    anchors: list[np.ndarray] | None = None,
) -> set[int]:
    """Lattices that are a printed label beside handwritten digits ("Total", "Date:"): a line
    of text read as two or more digits, one of them below NO_DIGIT (a letter: w, e, a; a small
    handwritten 0 that reads 0.7 is no letter), whose middle lies within the height of a digit
    read surely beside it (within LABEL_NEAR of its height to either side, and LABEL_GAP of the
    line's height at least) at least 1 / LABEL_SMALL times as tall as the line. Its blobs no
    taller than PRINT_SURE_TALL times its median go: the letters read as digits (o as 0, l as
    1) with the rest. A blob of such a line read as two or more digits, one of them a letter,
    is weighed alone too: a word close enough to the digits shares their line, whose median is
    then theirs."""
    lines: dict[int, list[int]] = {}
    for k, lat in enumerate(lattices):
        if k not in printed and lat.blob.line >= 0:
            lines.setdefault(lat.blob.line, []).append(k)
    candidates = []  # lines, and blobs, read as two or more digits, one of them a letter
    for ks in lines.values():
        conf = [float(probas[k][e].max()) for k in ks for e in paths[k]]
        if len(conf) >= 2 and min(conf) < NO_DIGIT:
            candidates.append(ks)
            # a word beside the digits can share their line: the word alone is a label too
            candidates += [[k] for k in ks if _with_letter(probas[k], paths[k], 2)]
    if not candidates:  # most frames: no letter in any line
        return set()
    anchors = probas if anchors is None else anchors  # the readings a sure digit is sure by
    sure = [k for k in range(len(lattices)) if paths[k] and _least(anchors[k], paths[k]) >= SURE]
    if not sure:
        return set()
    dx, dy, dw, dh = np.array([lattices[k].blob.box for k in sure], np.float64).T
    out: set[int] = set()
    for ks in candidates:
        x, y, w, h = np.array([lattices[k].blob.box for k in ks], np.float64).T
        x0, x1, middle, tall = x.min(), (x + w).max(), (y.min() + (y + h).max()) / 2, float(np.median(h))
        apart = np.maximum(dx - x1, x0 - (dx + dw))  # below 0: among the line's blobs
        near = (apart >= LABEL_GAP * tall) & (apart <= LABEL_NEAR * dh)
        if np.any(near & (dy <= middle) & (middle <= dy + dh) & (tall <= LABEL_SMALL * dh)):
            out.update(k for k in ks if lattices[k].blob.box[3] <= PRINT_SURE_TALL * tall)
    return out


def _typical_heights(blobs: list[Blob]) -> dict[int, float]:
    """The median blob height of each line of text of 3 or more blobs, and of the page (-1)."""
    lines: dict[int, list[int]] = {}
    for b in blobs:
        lines.setdefault(b.line, []).append(b.box[3])
    out = {k: float(statistics.median(v)) for k, v in lines.items() if k >= 0 and len(v) >= 3}
    out[-1] = float(statistics.median([b.box[3] for b in blobs])) if blobs else 0.0
    return out


def _least(proba: np.ndarray, path: list[int]) -> float:
    """The lowest confidence along a reading (`path`: edges of the lattice proba belongs to)."""
    return min((float(proba[e].max()) for e in path), default=0.0)


def _agreed(one: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Two models' readings of a batch [N, 10] as their geometric mean (renormalised): a piece
    reads surely only when both read it so. Two digits left in one piece or a fragment of one
    read as a digit are read surely by one model more often than by two trained apart."""
    mean = np.sqrt(np.maximum(one, 1e-9).astype(np.float64) * np.maximum(other, 1e-9))
    return (mean / mean.sum(axis=1, keepdims=True)).astype(np.float32)


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
        joined = Blob(union(a.box, b.box), a.parts + b.parts, a.ink + b.ink, a.line, a.line_size)
        lat = Lattice(end=2, blob=joined, cost=PAIR_COST)
        lat.add(0, 1, _piece(a, labels, darkness))
        lat.add(1, 2, _piece(b, labels, darkness))
        lat.add(0, 2, _piece(joined, labels, darkness))
        return lat
    lat = Lattice(end=1, blob=blobs[unit[0]])
    lat.add(0, 1, _piece(blobs[unit[0]], labels, darkness))
    return lat


@dataclass
class _Plan:
    """A wide blob ready to cut: its ink (at 1/f size), strokes and loops, and its cut paths,
    the straight ones down its valleys (the deepest first) and the leaning ones (_seams)."""

    blob: Blob
    ink: np.ndarray
    f: int  # the ink is at 1/f of working size
    height: float  # a digit's height, at 1/f size
    core: np.ndarray
    loops: np.ndarray
    straight: list[np.ndarray]
    leaning: list[np.ndarray]
    straight_at: list[float] = field(default_factory=list)  # each path's mean column
    leaning_at: list[float] = field(default_factory=list)
    strokes: list[_Stroke] = field(default_factory=list)  # found with the leaning paths

    def __post_init__(self) -> None:
        self.straight_at = [float(p[0]) for p in self.straight]
        self.leaning_at = [float(p.mean()) for p in self.leaning]

    def nodes(self, valleys: int, leaning: int) -> list[np.ndarray]:
        """The blob's two sides and the paths between them, left to right: the `valleys`
        deepest straight cuts and the first `leaning` leaning ones."""
        h, w = self.ink.shape
        inner = sorted(self.straight[:valleys], key=lambda p: int(p[0])) + self.leaning[:leaning]
        return [np.zeros(h, np.intp), *sorted(inner, key=lambda p: float(p.mean())), np.full(h, w, np.intp)]

    def demand(self, valleys: int, leaning: int, strokes: bool = True) -> int:
        """How many pieces cutting at these paths makes at most: pairs of nodes a digit's width
        apart (the blob's two sides too, when it is no wider); with `leaning`, only the pairs
        with a leaning path in them (the straight pass read the others)."""
        where = np.array([0.0, *self.straight_at[:valleys], *self.leaning_at[:leaning], self.ink.shape[1]])
        new = np.zeros(len(where), bool)
        new[1 + min(valleys, len(self.straight_at)) : -1] = leaning > 0
        apart = np.abs(where[None, :] - where[:, None])
        pairs = (apart >= 0.1 * self.height) & (apart <= 1.3 * self.height)
        if leaning:
            pairs &= new[:, None] | new[None, :]
        around = 0
        if leaning and strokes:  # at most: a stroke alone, and beside each neighbour's pieces
            ordered = np.sort(where)
            around = sum(1 + len(_around(ordered, s, self.height)) for s in self.strokes)
        return int(pairs.sum()) // 2 + around


def _plan(blob: Blob, labels: np.ndarray, darkness: np.ndarray, height: float) -> _Plan:
    """A wide blob's ink and straight cut paths (_seams), a digit being about `height` tall."""
    ink = blob_ink(blob.box, blob.parts, labels, darkness)
    f = max(1, ink.shape[0] // CUT_ROWS)  # a tall blob is cut at 1/f size: pieces are read at 20 px
    if f > 1:
        ink = cv2.resize(ink, (max(1, ink.shape[1] // f), ink.shape[0] // f), interpolation=cv2.INTER_AREA)
        height /= f
    top = float(ink.max())
    ink = _sharpened(ink, min(SHARPEN_BLUR, SHARPEN_SHARE * height))
    core, loops = _strokes_and_loops(ink, top)
    straight, _ = _seams(ink, MOST_CUTS, False, (core, loops))
    return _Plan(blob, ink, f, height, core, loops, straight, [])


def _sharpened(ink: np.ndarray, blur: float) -> np.ndarray:
    """uint8 ink with its edges steepened: unsharp masking by SHARPEN over `blur` px."""
    flat = ink.astype(np.float32)
    soft = cv2.GaussianBlur(flat, (0, 0), blur)
    return np.clip(flat + SHARPEN * (flat - soft), 0, 255).astype(np.uint8)


def _leaning(plan: _Plan, strokes: bool = True) -> _Plan:
    """The same plan with its leaning cut paths and, with `strokes`, its straight strokes
    (_strokes) too."""
    straight, leaning = _seams(plan.ink, MOST_CUTS, True, (plan.core, plan.loops))
    strokes = _strokes(plan.core, plan.height) if strokes else []
    return dataclasses.replace(plan, straight=straight, leaning=leaning, strokes=strokes)


def _cuts(
    plan: _Plan, valleys: int, leaning: int, made: dict[bytes, tuple[Box, np.ndarray]] | None = None
) -> Lattice:
    """A node per cut path (_Plan.nodes); an edge between any two nodes a digit's width apart,
    the blob's two sides too when it is no wider (the whole, read from the sharpened ink; the
    caller adds the whole as the first call read it as well). A piece is the ink between its two paths, row by
    row, so two slanted digits whose columns overlap come apart along the gap between them.
    `made`: the pieces an earlier call made of this blob, by key, taken as they are."""
    made = made or {}
    ink, height, blob = plan.ink, plan.height, plan.blob
    w = ink.shape[1]
    nodes = plan.nodes(valleys, leaning)
    where = [float(p.mean()) for p in nodes]
    spans = [(int(p.min()), int(p.max())) for p in nodes]  # the columns each path runs in
    rows = np.arange(ink.shape[0])
    inner = [_crossed(plan.core, plan.loops, rows, np.minimum(p, w - 1)) for p in nodes[1:-1]]
    crossed = [0.0, *inner, 0.0]
    lat = Lattice(end=len(nodes) - 1, blob=blob, cost=CUT_COST, crossed=crossed)
    # a digit's share of the blob's ink, were its digits each 0.7 of their height wide
    least_ink = MIN_INK * float(ink.sum(dtype=np.float64)) * min(1.0, 0.7 * height / w)
    for i in range(len(nodes) - 1):
        for j in range(i + 1, len(nodes)):
            if 0.1 * height <= where[j] - where[i] <= 1.3 * height:
                key = nodes[i].tobytes() + nodes[j].tobytes()
                if key in made:
                    lat.add(i, j, made[key], key)
                    continue
                lo, hi = spans[i][0], spans[j][1]
                piece = ink[:, lo:hi]
                if spans[i][0] < spans[i][1] or spans[j][0] < spans[j][1]:  # a side leans
                    cols = np.arange(lo, hi)[None, :]
                    piece = piece * ((cols >= nodes[i][:, None]) & (cols < nodes[j][:, None]))
                if piece.sum(dtype=np.float64) >= least_ink:  # else a stroke's tip
                    lat.add(i, j, _trim(piece, blob.box, lo, plan.f, MIN_TALL * height), key)
    for stroke in plan.strokes if leaning else []:
        one = _stroke_alone(plan, stroke)  # the same piece beside every neighbour
        if one is None:
            continue
        one_key = b"1" + stroke.path.tobytes()
        for i, j in _around(np.array(where), stroke, height):
            rest = _without_stroke(plan, stroke, nodes[i], nodes[j], least_ink, one[0][3])
            if rest is not None:
                rest_key = b"r" + one_key + nodes[i].tobytes() + nodes[j].tobytes()
                first = one[0][0] < rest[0][0] + rest[0][2] / 2  # the stroke before the digit
                v = lat.node(i)
                lat.add(i, v, one if first else rest, one_key if first else rest_key)
                lat.add(v, j, rest if first else one, rest_key if first else one_key)
    return lat


@dataclass
class _Stroke:
    """A straight stroke in a blob's ink: its column per row, the rows it runs on ink and the
    half of its width that a mask of it takes (its rim included)."""

    path: np.ndarray
    top: int
    bottom: int
    half: int

    @property
    def left(self) -> float:
        return float(self.path[self.top : self.bottom + 1].min() - self.half)

    @property
    def right(self) -> float:
        return float(self.path[self.top : self.bottom + 1].max() + self.half)


def _strokes(core: np.ndarray, height: float) -> list[_Stroke]:
    """Up to MOST_STROKES straight strokes of `core` (bool) that run on ink for STROKE_TALL of
    `height` at least, no wider than STROKE_THIN of it, the longest first (a Hough search over
    lines through each column at mid-height, leaning up to STROKE_SLANT)."""
    h, w = core.shape
    tall = STROKE_TALL * height
    if h < tall or w < 3:
        return []
    rows = np.arange(h)
    step = 2 if h >= 40 else 1  # a tall blob's rows, every other one: half the search
    some = rows[::step]
    # lines through the ink of the middle row (a run that long passes it), a column apart at
    # the blob's top and bottom rows at most
    mid = np.flatnonzero(core[h // 2])
    if not len(mid):
        return []
    slants = np.linspace(-STROKE_SLANT, STROKE_SLANT, 2 * int(STROKE_SLANT * h / 2) + 1)
    cols = np.rint(mid[None, :, None] + slants[:, None, None] * (some - h // 2)).astype(np.int32)
    # the rows searched, paper-padded either side as far as a line can lean: one flat gather
    pad = int(STROKE_SLANT * h) + 2
    padded = np.zeros((len(some), w + 2 * pad), bool)
    padded[:, pad:-pad] = core[some]
    at_row = np.arange(len(some), dtype=np.int32) * np.int32(w + 2 * pad) + np.int32(pad)
    on = padded.reshape(-1)[cols + at_row]  # (slants, lines, rows)
    counting = np.arange(len(some), dtype=np.int32)
    last_off = np.maximum.accumulate(np.where(on, np.int32(-1), counting), axis=2)  # last row off ink
    run = counting - last_off  # rows on ink up to each row
    longest = run.max(axis=2)
    # the lines long enough, the longest first, and each one's mean column, all at once
    order = np.argsort(-longest, axis=None, kind="stable")
    order = order[: int((longest * step >= tall).sum())]
    if not len(order):
        return []
    at_slant, at_mid = np.divmod(order, len(mid))
    paths = np.clip(
        np.rint(mid[at_mid, None] + slants[at_slant, None] * (rows - h // 2)).astype(np.intp), 0, w - 1
    )
    means = paths.mean(axis=1).tolist()
    found: list[tuple[_Stroke, float]] = []  # with its mean column
    tried: list[float] = []  # the lines measured so far, at their mean column
    widths: np.ndarray | None = None  # per pixel, its run of ink along the row (_run_widths)
    for k, at in enumerate(means):
        if len(found) == MOST_STROKES or len(tried) == 3 * MOST_STROKES:
            break  # a blob of thick strokes (bold print) is not searched on and on
        if any(abs(at - t) <= 3 for t in tried):  # the same stroke at another slant
            continue
        tried.append(at)
        s, x, path = int(at_slant[k]), int(at_mid[k]), paths[k]
        bottom = int(some[run[s, x].argmax()])
        top = bottom - (int(longest[s, x]) - 1) * step
        # its own width: where other strokes cross or run beside it, the run of ink is wider
        if widths is None:
            widths = _run_widths(core)
        width = _quartile(widths[rows[top : bottom + 1], path[top : bottom + 1]])
        half = int(math.ceil(width / 2)) + 1
        if width <= STROKE_THIN * height and all(abs(at - f_at) > 2 * max(half, f.half) for f, f_at in found):
            found.append((_Stroke(path, top, bottom, half), at))
    return [f for f, _ in found]


def _quartile(values: np.ndarray) -> float:
    """The 25th percentile of `values` (ints), as np.percentile interpolates it (linearly), at a
    tenth of its cost."""
    ordered = np.sort(values)
    pos = 0.25 * (len(ordered) - 1)
    lo = int(pos)
    if lo + 1 >= len(ordered):
        return float(ordered[lo])
    a, b, t = float(ordered[lo]), float(ordered[lo + 1]), pos - lo
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def _run_widths(core: np.ndarray) -> np.ndarray:
    """(rows, columns) int: the width of the run of True along its row through each pixel of
    `core` (bool), 0 where it is False; all rows at once (a loop over rows cost a crowded live
    frame several ms)."""
    h, w = core.shape
    padded = np.zeros((h, w + 2), bool)
    padded[:, 1:-1] = core
    idx = np.arange(w + 2)
    last_off = np.maximum.accumulate(np.where(padded, 0, idx), axis=1)  # the last False at or before
    next_off = np.minimum.accumulate(np.where(padded, w + 1, idx)[:, ::-1], axis=1)[:, ::-1]
    return np.where(core, (next_off - last_off - 1)[:, 1:-1], 0)


def _around(where: np.ndarray, stroke: _Stroke, height: float) -> list[tuple[int, int]]:
    """Pairs of nodes (at columns `where`, sorted) that hold a stroke and the digit it crosses:
    the digit after it (the first node one of the two before the stroke, the second one of the
    three nearest a digit's width after it) or before it (the same, mirrored)."""
    left, right = stroke.left, stroke.right
    idx = np.arange(len(where))
    pairs = set()
    after = (left + 1, right, -1, left + 0.8 * height)  # the stroke's near edge and far edge, ...
    before = (right - 1, left, 1, right - 0.8 * height)
    for near, far, side, reach in (after, before):
        close = idx[side * (where - near) >= 0]  # nodes on the stroke's near side, the nearest first
        close = close[np.argsort(side * (where[close] - near), kind="stable")][:2]
        beyond = idx[(side * (far - where) >= 0.3 * height) & (np.abs(where - reach) <= 0.5 * height)]
        beyond = beyond[np.argsort(np.abs(where[beyond] - reach), kind="stable")][:3]
        pairs |= {(min(a, b), max(a, b)) for a in close.tolist() for b in beyond.tolist()}
    return sorted(pairs)


def _stroke_mask(stroke: _Stroke, cols: np.ndarray) -> np.ndarray:
    """(rows, columns) bool: the stroke's pixels, its rim and a row beyond its ends at most;
    `cols` (1, columns) are the columns' indices in the blob's ink."""
    mask = np.abs(cols - stroke.path[:, None]) <= stroke.half
    mask[: max(0, stroke.top - 1)] = False
    mask[stroke.bottom + 2 :] = False
    return mask


def _stroke_alone(plan: _Plan, stroke: _Stroke) -> tuple[Box, np.ndarray] | None:
    """The stroke's own ink as a piece (box, input); None when too short to be a digit."""
    first = max(0, int(stroke.path.min()) - stroke.half)  # the columns it runs in
    ink = plan.ink[:, first : int(stroke.path.max()) + stroke.half + 1]
    one = ink * _stroke_mask(stroke, np.arange(first, first + ink.shape[1])[None, :])
    return _trim(one, plan.blob.box, first, plan.f, MIN_TALL * plan.height)


def _without_stroke(
    plan: _Plan, stroke: _Stroke, lo: np.ndarray, hi: np.ndarray, least_ink: float, tall: int
) -> tuple[Box, np.ndarray] | None:
    """The ink between paths lo and hi without the stroke as a piece (box, input); where the
    stroke crossed the other digit's strokes, the gap it leaves is closed. None when too small
    to be a digit, or under STROKE_REST of the stroke's own height, `tall` (a letter's
    ascender beside its bowl, d, b, h, is no 1 beside a digit)."""
    first = max(0, min(int(lo.min()), int(stroke.path.min()) - stroke.half))  # the columns concerned
    ink = plan.ink[:, first : max(int(hi.max()), int(stroke.path.max()) + stroke.half + 1)]
    cols = np.arange(first, first + ink.shape[1])[None, :]
    between = (cols >= lo[:, None]) & (cols < hi[:, None])
    mask = _stroke_mask(stroke, cols)
    rest = ink * (between & ~mask)
    closed = cv2.morphologyEx(rest, cv2.MORPH_CLOSE, np.ones((1, 2 * stroke.half + 3), np.uint8))
    rest = np.where(mask & between, closed, rest)
    if rest.sum(dtype=np.float64) < least_ink:
        return None
    piece = _trim(rest, plan.blob.box, first, plan.f, MIN_TALL * plan.height)
    return None if piece is None or piece[0][3] < STROKE_REST * tall else piece


def _plans(
    wide: list[tuple[int, float]],
    lattices: list[Lattice],
    labels: np.ndarray,
    darkness: np.ndarray,
    budget: int,
    valleys: int,
    cache: dict[int, _Plan],
) -> tuple[dict[int, _Plan], int]:
    """Plans of the `wide` blobs (lattice index, digit height), the least sure first, as many
    as `budget` pieces can cut at `valleys` valleys each (`cache`: the plans made so far), and
    what is left of the budget (below 0: not every blob fits; finding the cuts counted)."""
    plans: dict[int, _Plan] = {}
    for k, height in wide:
        plan = cache[k] = cache[k] if k in cache else _plan(lattices[k].blob, labels, darkness, height)
        budget -= BLOB_PIECES + plan.demand(valleys, 0)
        if budget < 0 and plans:
            break
        plans[k] = plan
    return plans, budget


def _valleys_for(plans: list[_Plan], budget: int) -> int:
    """How many straight cuts every blob gets: MOST_CUTS when the pieces they make fit in
    `budget`, else the most that fit (the shallowest valleys go first), FEWEST_CUTS at least: a
    frame of many numbers written joined has every number cut at fewer places, not a third of
    them at none."""

    def pieces(valleys: int) -> int:
        return sum(plan.demand(valleys, 0) for plan in plans)

    if pieces(MOST_CUTS) <= budget:
        return MOST_CUTS
    lo, hi = FEWEST_CUTS, MOST_CUTS - 1  # bisection: the pieces grow with the valleys
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if pieces(mid) <= budget else (lo, mid - 1)
    return lo


def _leaning_for(plan: _Plan, valleys: int, budget: int, blobs: int) -> int:
    """How many leaning cuts a blob gets: MOST_LEAN when their pieces fit in `budget`, else
    the most that fit in its share of it (`blobs` are left to cut, itself included)."""
    if plan.demand(valleys, MOST_LEAN, strokes=False) <= budget:
        return MOST_LEAN
    leaning = MOST_LEAN
    while leaning and plan.demand(valleys, leaning, strokes=False) > budget // blobs:
        leaning -= 1
    return leaning


def _strokes_and_loops(ink: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    """(the strokes' cores: darker than CORE x `top`; the paper inside loops) of a blob's ink,
    bool masks (_holes)."""
    core = ink > CORE * top
    loops = np.zeros(ink.shape, np.uint8)
    for contour in _holes(core):
        cv2.drawContours(loops, [contour], -1, 1, thickness=cv2.FILLED)
    return core, loops.view(bool) & ~core


def _crossed(core: np.ndarray, loops: np.ndarray, rows: np.ndarray, path: np.ndarray) -> float:
    """What a cut path (a column per row) costs for the strokes and loops it crosses."""

    def runs(line: np.ndarray) -> int:
        return int(np.count_nonzero(line[1:] & ~line[:-1]) + int(line[0]))

    return STROKE_COST * runs(core[rows, path]) + LOOP_COST * runs(loops[rows, path])


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


def _holes(core: np.ndarray) -> list[np.ndarray]:
    """Contours of the loops in a blob's ink: paper enclosed by a stroke, at least a quarter
    of the blob tall (two overlapping digits can enclose a little paper at their junction:
    that is no loop, and the cut must be free to pass it)."""
    mask = core.astype(np.uint8)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    loops = []
    for contour, (_, _, _, parent) in zip(
        contours, hierarchy[0] if hierarchy is not None else [], strict=False
    ):
        _, _, w, h = cv2.boundingRect(contour)
        if parent >= 0 and h >= max(2, core.shape[0] // 4) and w >= 2:  # inside an outer contour
            loops.append(contour)
    return loops


def _seams(
    ink: np.ndarray, most: int, lean: bool, masks: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut paths, each a column per row: (the straight ones, the deepest valley first; the
    leaning ones, in the order below). A straight cut down each of up to
    `most` valleys of the ink column profile and, with `lean`, up to MOST_LEAN paths that
    lean one column per row at most (a path's cost: the ink pixels it crosses plus DRIFT_COST
    per sideways step). The first leaning path ends at the valley where it crosses less ink
    than the straight cut there by most: two slanted digits whose columns overlap come apart
    along the gap between them. The others are the cheapest paths of all, one up from each
    minimum of the bottom row, the cheapest first: where two digits overlap, no valley need
    lie between them.
    Paper enclosed by a loop costs as much as ink: a cut through a 0, 6, 8 or 9 pays for the
    loop's height (_holes). It is not forbidden: two digits that touch can enclose paper
    between them too, and then every cut between them crosses it.
    Ink is counted in the strokes' cores (darker than CORE x the blob's darkest; _plan measures
    that darkest before it sharpens the ink): the soft rims of two digits written close merge
    under the threshold that finds faint ink, and a cut through rims alone is free (counting
    them left no column of such a pair cheaper than a stroke, and no cut between them)."""
    h, w = ink.shape
    # the caller's masks, if it has them
    core, loops = masks if masks is not None else _strokes_and_loops(ink, float(ink.max()))
    cost = (core | loops).astype(np.float32)
    deepest = _valleys(ink > 0, most)
    ends = sorted(deepest)
    crossed = cost[:, ends].sum(axis=0)
    paths = [np.full(h, end, np.intp) for end in ends]
    by_depth = [np.full(h, end, np.intp) for end in deepest]
    if not lean or not ends:
        return by_depth, []
    total = np.full((h, w + 2), np.inf, np.float32)  # the cheapest path's cost to each pixel; inf either side
    total[0, 1:-1] = cost[0]
    for y in range(1, h):
        above = total[y - 1]
        np.minimum(np.minimum(above[:-2], above[2:]) + DRIFT_COST, above[1:-1], out=total[y, 1:-1])
        total[y, 1:-1] += cost[y]
    # the leaning path to the valley where it saves most over the straight cut there: two
    # slanted digits whose columns overlap come apart along the gap between them
    straight = len(paths)
    saved = crossed - total[-1, np.asarray(ends) + 1]
    if saved.max() > 0:
        paths.append(_trace(total, ends[int(saved.argmax())]))
    # ... and the cheapest cuts of all, wherever they end: where two digits overlap, no
    # valley need lie between them (the cheapest path up from each minimum of the bottom row)
    bottom = total[-1, 1:-1]
    lo, hi = max(1, int(0.08 * w)), min(w - 1, int(0.92 * w))
    minima = [x for x in range(lo, hi) if bottom[x - 1] >= bottom[x] <= bottom[x + 1]]
    for end in sorted(minima, key=lambda x: float(bottom[x])):
        if len(paths) - straight >= MOST_LEAN:
            break
        path = _trace(total, end)
        if not paths or np.abs(np.stack(paths) - path).mean(axis=1).min() > 2:  # none tried, nor close
            paths.append(path)
    return by_depth, paths[straight:]


def _trace(total: np.ndarray, end: int) -> np.ndarray:
    """The cheapest path up from column `end` of the bottom row, a column per row, through
    `total` (each pixel's cheapest cost from the top, a column of inf either side)."""
    h = total.shape[0]
    x, path = end + 1, np.empty(h, np.intp)  # x in total's columns
    for y in range(h - 1, -1, -1):
        path[y] = x - 1
        if y:  # the cheapest way up, straight on a tie
            a, b, c = total[y - 1, x - 1] + DRIFT_COST, total[y - 1, x], total[y - 1, x + 1] + DRIFT_COST
            x += 0 if b <= a and b <= c else (-1 if a <= c else 1)
    return path


def _valleys(mask: np.ndarray, most: int) -> list[int]:
    """Up to `most` columns where the ink column profile has a local minimum, the deepest first
    (a flat valley counts once), away from the blob's ends."""
    w = mask.shape[1]
    profile = np.convolve(mask.sum(axis=0).astype(np.float32), np.ones(3) / 3, mode="same")
    lo, hi = max(1, int(0.08 * w)), min(w - 1, int(0.92 * w))
    found = [i for i in range(lo, hi) if profile[i] <= profile[i - 1] and profile[i] <= profile[i + 1]]
    found.sort(key=lambda i: profile[i])
    picked: list[int] = []
    for i in found:
        if all(abs(i - j) > 2 for j in picked):
            picked.append(i)
        if len(picked) == most:
            break
    return picked


def _trim(piece: np.ndarray, box: Box, left: int, f: int, least: float) -> tuple[Box, np.ndarray] | None:
    """A piece's own ink rows and columns (cut at 1/f size, `left` columns into the blob's
    `box`) -> (box in working pixels, 28x28 input); None when fewer than `least` (and 3) rows."""
    c0, r0, cw, rh = cv2.boundingRect(piece)
    if rh < max(3, least):
        return None
    x, y, _, _ = box
    crop = normalise_crop(piece[r0 : r0 + rh, c0 : c0 + cw])
    return (x + (left + c0) * f, y + r0 * f, cw * f, rh * f), crop
