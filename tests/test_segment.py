"""Segmentation and MNIST-style normalisation on real MNIST digits (no model, no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from edgedigits.camera.segment import binarize, find_boxes, group_numbers, normalise_crop, segment, to_gray
from edgedigits.camera.synth import demo_digits, ink_digit, paper, scattered_frame, score_detections


@pytest.fixture(scope="module")
def digits():
    return demo_digits()


def test_normalise_reproduces_mnist_geometry(digits):
    """An MNIST digit re-normalised from a big crop lands where MNIST put it."""
    x, _ = digits
    for img in x[:50]:
        big = np.kron(img, np.ones((5, 5), np.uint8))  # 140x140, as a camera crop would be
        out = normalise_crop(big)
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        ys, xs = np.nonzero(out > 0.1)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) <= 21  # fitted into 20x20 (+AA)
        total = out.sum()
        cy = (np.arange(28)[:, None] * out).sum() / total
        cx = (np.arange(28)[None, :] * out).sum() / total
        assert abs(cy - 13.5) < 0.6 and abs(cx - 13.5) < 0.6  # centred by mass


def test_normalised_digits_classify_like_mnist(digits):
    """Paste real MNIST test digits at 20-120 px into frames, segment, classify with the
    bundled model: accuracy within 1 point of classifying the original 28x28 images."""
    from edgedigits.camera.loop import bundled_model
    from edgedigits.runtime import load_classifier

    x, y = digits
    clf = load_classifier(bundled_model())
    original = (clf.predict(x / 255.0) == y).mean()
    rng = np.random.default_rng(11)
    hits = 0
    for img, label in zip(x, y, strict=True):
        height = int(rng.uniform(20, 120))
        canvas = paper(480, 640, rng, uneven=False)
        ink_digit(
            canvas,
            img,
            int(rng.uniform(10, 620 - height * 1.4)),
            int(rng.uniform(10, 470 - height * 1.4)),
            height,
        )
        found = segment(canvas.astype(np.uint8))
        if len(found) == 1:
            hits += int(clf.predict(found[0].image[None])[0] == label)
    assert hits / len(y) >= original - 0.01


def test_small_digits_are_enlarged_smoothly_and_read_surely(digits):
    """A digit the camera sees 10 px tall is enlarged to MNIST's 20 px. Enlarged bicubically,
    96% of the shipped test digits read right at 0.5 or more; with INTER_AREA, which enlarges
    like nearest-neighbour (blocky strokes), 77%."""
    import cv2

    from edgedigits.camera.loop import bundled_model
    from edgedigits.runtime import load_classifier

    x, y = digits
    clf = load_classifier(bundled_model())
    small = [cv2.resize(img, (14, 14), interpolation=cv2.INTER_AREA) for img in x]  # ink ~10 px
    proba = clf.predict_proba(np.stack([normalise_crop(s) for s in small]))
    assert ((proba.argmax(1) == y) & (proba.max(1) >= 0.5)).mean() >= 0.9
    assert normalise_crop(small[0].astype(np.float32)).min() >= 0.0  # float ink: bicubic overshoot cut


def _read_small(clf, frames, config=None):
    """(digits in the truth, correctly labelled, false detections) over `frames`."""
    from edgedigits.camera.loop import process_frame
    from edgedigits.camera.synth import score_detections

    total = np.zeros(3, int)
    for frame, truths in frames:
        total += score_detections(truths, process_frame(frame, clf, None, 0.5, config)["digits"])
    return total


def test_digits_written_12_to_15_px_tall_read_surely_without_their_blurred_rim(digits, monkeypatch):
    """A digit 12-15 px tall, blurred by the camera, is enlarged to 20 px with its faint rim:
    2-3 px wide there, where MNIST's anti-aliased edge is under 1. Its ink below a tenth of its
    darkest goes (segment.HALO): of 300 shipped test digits, the blobs' own crops (the camera's
    first call) read 259 right at 0.5 or more, 241 with the rim. The camera reads 282 either
    way: the splitter reads a small blob read unsure whole again from its sharpened ink, which
    has no such rim, at the cost of a second call (88% and 79% before it did)."""
    from edgedigits.camera import segment as seg
    from edgedigits.camera.loop import bundled_model
    from edgedigits.runtime import load_classifier

    x, y = digits
    clf = load_classifier(bundled_model())
    rng = np.random.default_rng(3)
    picks = [rng.choice(len(y), 10, replace=False) for _ in range(30)]
    frames = [scattered_frame(x[i], y[i], rng, heights=(12, 15)) for i in picks]
    n, right, false = _read_small(clf, frames)
    assert right >= 0.9 * n and false <= 0.01 * n, (right, n, false)

    def first_call() -> int:
        total = 0
        for frame, truths in frames:
            found = seg.segment(frame)
            proba = clf.predict_proba(np.stack([d.image for d in found]))
            read = [
                {"label": int(p.argmax()), "confidence": float(p.max()), "box": list(d.box)}
                for d, p in zip(found, proba, strict=True)
            ]
            total += score_detections(truths, [d for d in read if d["confidence"] >= 0.5])[1]
        return total

    without_rim = first_call()
    monkeypatch.setattr(seg, "HALO", 0.0)
    assert first_call() <= without_rim - 10


def test_small_digits_alone_are_found_beside_bigger_ones(digits):
    """Digits 13 px tall on a page whose bigger digits (26 px) set the pen at 5-7 px: under
    2.5 pen widths, but alone on their line (no line of print), so 2 pen widths suffice
    (SegmentConfig.lone_height_strokes). At 2.5, 11 fewer of them are found."""
    from edgedigits.camera.ink import SegmentConfig
    from edgedigits.camera.loop import bundled_model
    from edgedigits.camera.synth import Truth, film
    from edgedigits.runtime import load_classifier

    x, y = digits
    clf = load_classifier(bundled_model())
    rng = np.random.default_rng(5)
    frames, small = [], []
    for _ in range(20):
        canvas = paper(240, 320, rng)
        truths = []
        for k, i in enumerate(rng.choice(len(y), 8, replace=False)):
            row, col = divmod(k, 4)
            at = (30 + col * 75 + int(rng.integers(-5, 6)), 40 + row * 100 + int(rng.integers(-5, 6)))
            box = ink_digit(canvas, x[i], *at, 26 if row == 0 else 13, darkness=rng.uniform(0.7, 0.9))
            truths.append(Truth(int(y[i]), box))
        frame, truths = film(canvas, rng, truths)
        frames.append((frame, truths))
        small.append((frame, [t for t in truths if t.box[3] < 20]))
    n, right, false = _read_small(clf, small)
    assert n >= 70 and right >= 0.8 * n, (right, n)
    assert _read_small(clf, frames)[2] == 0
    assert _read_small(clf, small, SegmentConfig(lone_height_strokes=2.5))[1] <= right - 8


@pytest.mark.parametrize(
    "crop",
    [
        np.zeros((0, 0)),
        np.zeros((10, 10)),
        np.zeros((5,)),
        np.full((3, 3), np.nan),
        np.ones((1, 1)),
        np.ones((1, 200)),
    ],
)
def test_normalise_guards_degenerate_crops(crop):
    out = normalise_crop(crop)
    assert out.shape == (28, 28) and np.isfinite(out).all()


def test_scattered_digits_are_found_where_they_are(digits):
    x, y = digits
    rng = np.random.default_rng(5)
    frame, truths = scattered_frame(x[:10], y[:10], rng)
    found = segment(frame)
    assert len(found) == 10
    assert _matched(truths, [d.box for d in found]) == 10  # every truth's centre in a found box


def test_thin_one_passes(digits):
    x, y = digits
    one = x[np.flatnonzero(y == 1)[0]]
    canvas = paper(240, 320, np.random.default_rng(0), uneven=False)
    ink_digit(canvas, one, 140, 60, 100)
    boxes = find_boxes(binarize(canvas.astype(np.uint8)))
    assert len(boxes) == 1 and boxes[0][2] < 0.6 * boxes[0][3]


def test_a_bold_one_is_a_digit_and_a_solid_patch_is_not(digits):
    """A "1" drawn with a marker as wide as a third of its height fills its box like a solid
    blob, but it is one stroke wide: it is found. A solid patch more than two pen strokes wide
    (a shadow, a dark object) is not."""
    import cv2

    x, y = digits
    canvas = paper(240, 480, np.random.default_rng(2), uneven=False)
    for i, k in enumerate(np.flatnonzero(y == 3)[:2]):  # ordinary digits set the page's pen
        ink_digit(canvas, x[k], 40 + 120 * i, 60, 80)
    cv2.line(canvas, (300, 70), (300, 140), 40, 13)  # the bold 1: a 13 px wide stroke, 83 px tall
    mask = binarize(np.clip(canvas, 0, 255).astype(np.uint8))
    mask[60:140, 360:440] = 255  # the solid patch, 80x80, in the ink mask itself
    boxes = find_boxes(mask)
    assert any(abs(b[0] + b[2] / 2 - 300) < 5 and b[3] > 70 for b in boxes), boxes
    assert not any(b[0] >= 350 for b in boxes), boxes


def test_text_lines_group_letters_by_row_and_word_spaces():
    """Boxes in two printed rows (x-height letters, ascenders and descenders, word spaces) and
    a row of digits: each printed row is one line, whatever its letters' heights; a gap wider
    than a word space starts another line; the digits are a line of their own."""
    from edgedigits.camera.text import line_medians, text_lines

    boxes = []
    for top in (20, 60):  # two printed rows, letters 8 (x-height) to 12 px (ascenders) tall
        at = 10
        for k in range(30):
            h = (8, 12, 11, 8)[k % 4]
            boxes.append((at, top + 12 - h + (3 if h == 11 else 0), 6, h))  # a descender sits lower
            at += 7 + (10 if k % 5 == 4 else 0)  # a word space after every fifth letter
    boxes.append((900, 20, 6, 8))  # far beyond the first row's end: a line of its own
    for k in range(5):  # a number written below, 40 px tall
        boxes.append((50 + 35 * k, 120, 25, 40))
    x, y, w, h = (np.array(v) for v in zip(*boxes, strict=True))
    line = text_lines(x, y, w, h)
    assert len(set(line[:30].tolist())) == 1 and len(set(line[30:60].tolist())) == 1
    assert len({line[0], line[30], line[60], line[61]}) == 4
    assert set(line[61:].tolist()) == {line[61]}
    medians = line_medians(line, h, int(line.max()) + 1)
    assert medians[line[61]] == 40 and medians[line[0]] == 8


def test_clutter_is_rejected():
    """Ruled lines, a page edge and a dark border give no digits."""
    page = np.full((480, 640), 220, np.uint8)
    page[100::40, :] = 120  # ruled lines across the page
    page[:, :30] = 40  # the dark desk beyond the page edge
    assert find_boxes(binarize(page)) == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640), 255, np.uint8),
        np.zeros((1, 1), np.uint8),
        np.zeros((4096, 4096), np.uint8),
        np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.uint8),
        np.random.default_rng(1).integers(0, 65536, (240, 320)).astype(np.uint16),
        np.random.default_rng(2).random((240, 320, 4)).astype(np.float32),
        np.full((100, 100, 1), 0.5, np.float64),
    ],
)
def test_blank_and_noise_frames_give_no_digits(frame):
    assert segment(frame) == []


def test_to_gray_handles_layouts():
    assert to_gray(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6)
    assert to_gray(np.ones((5, 6), np.float32)).max() == 255
    assert to_gray(np.full((5, 6), 65535, np.uint16)).max() == 255
    with pytest.raises(ValueError):
        to_gray(np.zeros((0, 5), np.uint8))


def test_group_numbers_reads_a_line_left_to_right():
    boxes = [
        (260, 100, 40, 60),
        (100, 100, 40, 60),
        (150, 102, 40, 58),
        (205, 98, 40, 62),
        (120, 300, 40, 60),
    ]
    labels = [6, 2, 0, 2, 7]
    numbers = group_numbers(boxes, labels)
    assert [n["value"] for n in numbers] == ["2026", "7"]
    assert numbers[0]["box"] == [100, 98, 200, 62]


def test_segment_reports_stage_timings(digits):
    x, y = digits
    frame, _ = scattered_frame(x[:4], y[:4], np.random.default_rng(2))
    timings: dict[str, float] = {}
    assert len(segment(frame, timings=timings)) == 4
    assert set(timings) == {"gray", "ink", "boxes", "normalise"}
    assert all(v >= 0 for v in timings.values())


# ----------------------------------------------------------------------------- real-page kinds


def _matched(truths, boxes) -> int:
    hits = 0
    for t in truths:
        cx, cy = t.box[0] + t.box[2] / 2, t.box[1] + t.box[3] / 2
        hits += any(b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3] for b in boxes)
    return hits


@pytest.mark.parametrize(
    "kind,scale",
    [("border_band", 0.6), ("a4_scan", 0.25), ("print_clutter", 0.5), ("ruled", 0.75), ("squared", 1.0)],
)
def test_no_digit_is_swallowed_by_edges_shadows_or_print(digits, kind, scale):
    """Dark table edges, a shadowed page edge, faint print, the ruled lines of a notebook the
    digits sit on and the grid of squared paper crossing them: every digit is still found,
    and the clutter makes (almost) no blobs of its own."""
    from edgedigits.camera import synth_pages

    x, y = digits
    rng = np.random.default_rng(21)
    total = found = extra = 0
    for _ in range(3):
        frame, truths = synth_pages.KINDS[kind](x, y, rng, scale=scale)
        boxes = [d.box for d in segment(frame)]
        total += len(truths)
        found += _matched(truths, boxes)
        extra += len(boxes) - len(truths)
    assert found >= 0.95 * total, (found, total)
    assert extra <= 0.1 * total, (extra, total)


def test_the_grid_of_squared_paper_does_not_lift_the_ink_bar_over_the_pen(digits):
    """A grid covers a fifth of the page: the spread of the page's darkness, which sets the ink
    bar, is then the grid's, and a bar that high dropped the fainter pen digits (these pages:
    56 of 61 found; one frame's bar was 122 against digits whose ink reached 104-164). The bar
    is capped at half the darkness of the page's darkest ink (never below the paper's noise)."""
    from edgedigits.camera import synth_pages

    x, y = digits
    rng = np.random.default_rng(22)
    total = found = 0
    for _ in range(6):
        frame, truths = synth_pages.squared(x, y, rng)
        total += len(truths)
        found += _matched(truths, [d.box for d in segment(frame)])
    assert found >= 0.97 * total, (found, total)


def test_the_pen_is_measured_on_the_ink_not_on_a_grids_hairlines():
    """A faint grid caught by the ink bar only in pieces leaves many hairlines 1 px wide beside a
    few pen digits about 5 px thick. Counted one by one they set the pen to 2 px: the rules'
    search then bridged no gap in the dashed grid, and 2.5 pens made a 10-px hairline digit
    tall (a generated page of squared paper read 11 of them as 1s). Weighed by ink, the pen is
    the digits'; on a page of digits alone both measures agree."""
    import cv2

    from edgedigits.camera import blobs
    from edgedigits.camera.ink import SegmentConfig

    x, _ = demo_digits()
    mask = np.zeros((480, 640), np.uint8)
    for i in range(4):  # digits with 56 px of ink
        big = cv2.resize(x[i], (78, 78), interpolation=cv2.INTER_CUBIC)
        mask[100:178, 120 + 110 * i : 198 + 110 * i] = np.where(big > 100, 255, 0)
    alone = blobs._components(mask, mask // 2, SegmentConfig()).pen
    rng = np.random.default_rng(5)
    for col in range(30, 640, 43):  # the grid's columns, in dashes 10-24 px long
        for top in range(200, 470, 30):
            mask[top : top + int(rng.integers(10, 25)), col] = 255
    comps = blobs._components(mask, mask // 2, SegmentConfig())
    assert len(comps.stats) > 100  # the hairlines are most of the components
    assert 4 <= alone <= 6, alone
    assert comps.pen == pytest.approx(alone, rel=0.1), (comps.pen, alone)


def test_shadow_band_does_not_merge_into_one_blob():
    """A dark band along the page edge with digits beside it: the band is dropped on its own
    and each digit keeps its own box (the old merge of nested boxes swallowed them all)."""
    x, y = demo_digits()
    canvas = paper(300, 400, np.random.default_rng(2), uneven=False)
    boxes = [ink_digit(canvas, x[i], 30 + 62 * i, 120, 50) for i in range(5)]  # ink ends near x=340
    canvas[:, 370:] *= 0.3  # the table beyond the page
    canvas[:, 340:370] *= np.linspace(1.0, 0.5, 30)[None, :]  # the page edge's shadow
    canvas[40:60, :330] *= 0.92  # and a faint shadow band across the page
    found = [d.box for d in segment(canvas.astype(np.uint8))]
    assert _matched([type("T", (), {"box": b})() for b in boxes], found) == 5
    assert len(found) == 5


@pytest.mark.parametrize("height,frame", [(12, (120, 160)), (14, (480, 640)), (288, (480, 640))])
def test_digit_sizes_follow_the_ink_not_the_frame(height, frame):
    """From 12 px tall in a 160x120 frame up to 60% of the frame height."""
    x, y = demo_digits()
    canvas = paper(*frame, np.random.default_rng(height), uneven=False)
    size = int(round(height * 28 / 20))
    box = ink_digit(canvas, x[3], (frame[1] - size) // 2, (frame[0] - size) // 2, height)
    found = [d.box for d in segment(canvas.astype(np.uint8))]
    assert len(found) == 1 and _matched([type("T", (), {"box": box})()], found) == 1


def test_huge_frames_are_segmented_at_a_working_size_and_reported_in_source_pixels():
    """An 8000x6000 photo: boxes come back in its own pixels."""
    from edgedigits.camera.segment import working_scale

    x, y = demo_digits()
    canvas = np.full((6000, 8000), 225, np.float32)
    boxes = [ink_digit(canvas, x[i], 800 + 1400 * i, 2500, 400) for i in range(5)]
    assert working_scale(canvas.shape) < 0.25
    found = [d.box for d in segment(canvas.astype(np.uint8))]
    assert len(found) == 5
    for b, f in zip(sorted(boxes), sorted(found), strict=True):
        assert abs(b[0] - f[0]) < 20 and abs(b[3] - f[3]) < 40  # source pixels, not working ones


def test_a_digit_across_a_ruled_line_stays_whole_and_one_on_it_comes_free(digits):
    """A line as dark as the pen through the middle of one digit and under another: the line
    goes, the crossed digit keeps both halves in one box, the other keeps its own box."""
    x, y = digits
    canvas = paper(240, 480, np.random.default_rng(4), uneven=False)
    crossed = ink_digit(canvas, x[np.flatnonzero(y == 8)[0]], 100, 60, 80)  # ink rows ~76-156
    line = crossed[1] + crossed[3] // 2
    on = ink_digit(canvas, x[np.flatnonzero(y == 3)[0]], 260, line - 80 - 16 + 2, 80)  # bottom on the line
    canvas[line : line + 3, :] *= 0.2
    found = [d.box for d in segment(canvas.astype(np.uint8))]
    assert len(found) == 2, found
    for truth, box in zip(sorted([crossed, on]), sorted(found), strict=True):
        assert abs(box[1] - truth[1]) <= 4 and abs(box[3] - truth[3]) <= 6, (truth, box)


def test_thin_tilted_ruled_lines_go_whole_and_free_the_digits_on_them():
    """Generated notebook pages whose thin lines tilt a few rows across the frame, off the
    coarse Hough segments that found them: each line is fitted onto its own ink and taken out
    along its whole length, so each digit resting on it is a blob of its own (a line left in
    place ties the digits on it into one too-wide blob, which is dropped)."""
    from edgedigits.camera import synth_pages

    x, y = demo_digits()
    found = total = 0
    for seed in (6, 11, 18):  # pages where a straight band around the segment missed a line
        frame, truths = synth_pages.ruled(x, y, np.random.default_rng(seed))
        h, w = frame.shape[:2]
        inside = [
            t
            for t in truths
            if t.box[0] > 0 and t.box[1] > 0 and t.box[0] + t.box[2] < w and t.box[1] + t.box[3] < h
        ]
        boxes = [d.box for d in segment(frame)]
        for t in inside:
            cx, cy = t.box[0] + t.box[2] / 2, t.box[1] + t.box[3] / 2
            found += any(
                b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3] and b[2] <= 1.5 * t.box[2]
                for b in boxes
            )
        total += len(inside)
    assert found >= total - 2, (found, total)


def test_a_line_found_in_part_is_followed_along_its_ink_and_no_further():
    """Hough's random search can give a long line in part only; the fitted line is followed on,
    straight, for as long as its ink goes on (through a gap no wider than two pen strokes),
    and no further: a row of ink past a wider gap is no part of it."""
    from edgedigits.camera.rules import _Rule

    ink = np.zeros((120, 400), np.uint8)
    rows = np.round(40 + 0.05 * np.arange(300)).astype(int)  # a slightly tilted line, x 0-299
    ink[rows, np.arange(300)] = 255
    ink[rows + 1, np.arange(300)] = 255
    ink[rows[150:154], np.arange(150, 154)] = 0  # a 4-px gap, bridged (pen 3: gap 6)
    ink[rows[150:154] + 1, np.arange(150, 154)] = 0
    ink[55:57, 310:400] = 255  # past a 10-px gap, on the same course: not bridged
    rule = _Rule.fit(ink, (100, 45, 140, 47), pen=3, slack=2, found=np.zeros_like(ink))
    assert rule is not None
    cols = np.unique(rule.pixels(None) % 400)
    assert cols.min() == 0 and cols.max() == 299, (cols.min(), cols.max())
    assert len(cols) == 296  # every column of the line but the 4 of its gap


@pytest.mark.parametrize("shape", [(120, 160), (480, 640), (37, 500), (600, 40)])
def test_frames_crossed_by_lines_at_any_angle_are_read_without_error(digits, shape):
    """Rules, tilted lines, digits half out of the frame: the line search copes with any of
    it (no error, every box inside the frame), whatever the frame's shape."""
    import cv2

    x, y = digits
    rng = np.random.default_rng(shape[0])
    h, w = shape
    for _ in range(3):
        canvas = paper(h, w, rng)
        for _ in range(12):
            if rng.random() < 0.5:
                row = int(rng.integers(0, h))
                canvas[row : row + int(rng.integers(1, 5)), :] *= rng.uniform(0.2, 0.9)
            else:
                p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.line(canvas, p0, p1, float(rng.uniform(20, 150)), int(rng.integers(1, 4)))
        for _ in range(4):
            size = int(rng.integers(12, max(13, min(h, w) // 2)))
            ink_digit(
                canvas,
                x[int(rng.integers(0, len(y)))],
                int(rng.integers(-10, w)),
                int(rng.integers(-10, h)),
                size,
            )
        for d in segment(np.clip(canvas, 0, 255).astype(np.uint8)):
            bx, by, bw, bh = d.box
            assert 0 <= bx and 0 <= by and bx + bw <= w and by + bh <= h and d.image.shape == (28, 28)
