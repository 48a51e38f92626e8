"""Deterministic synthetic pages of each way real pages broke the camera, with ground truth.

Each generator takes MNIST digits (uint8 [N, 28, 28]) and labels, a numpy Generator and a
`scale` (1.0 = the real size; tests use smaller pages), and returns (BGR uint8 frame,
truths). Kinds:
  a4_scan       300-dpi A4 scan, pen digits 44-100 px, a shadowed page edge and the dark
                scanner lid beyond it
  border_band   webcam frame with a dark table edge along two sides, digits close to it
  print_clutter a page of faint printed text lines with pen digits among them
  dark_print    the same with print 45-70% darker than the paper, about as dark as the pen
  touching      numbers whose digits touch ("2026" written joined)
  ruled         a notebook page: digits written on ruled lines (faint to pen-dark, some
                digits crossing them) and a margin line
  squared       squared (graph) paper: digits 1-1.6 squares tall written over a grid of
                faint to mid-grey lines, which cross most digits
  crowded       a photo of 4 rows of numbers, every number written joined
  defocused     a phone photo out of focus of numbers written close, digits apart
  scene_video   a video whose digits change in place every few frames
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from edgedigits.camera.synth import Truth, film, ink_digit, paper

WORDS = (
    "the",
    "form",
    "name",
    "date",
    "signed",
    "please",
    "write",
    "below",
    "amount",
    "total",
    "office",
    "use",
    "only",
    "account",
    "number",
    "phone",
    "address",
    "received",
    "by",
    "of",
)


def _pick(labels: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(len(labels), n, replace=len(labels) < n)


def _pen(
    canvas: np.ndarray, digit: np.ndarray, x: int, y: int, height: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    return ink_digit(canvas, digit, x, y, height, darkness=float(rng.uniform(0.75, 0.92)))


def _row_width(digits: np.ndarray, height: int, gap: float) -> int:
    """Width in px of a row that _row_of_digits would write."""
    size = height * 28 / 20
    inked = [np.flatnonzero(d.max(axis=0) > 64) for d in digits]
    ink = sum((c[-1] - c[0] + 1) * size / 28 for c in inked if len(c))
    return int(ink + gap * height * (len(digits) - 1))


def _print(text: np.ndarray, words: str, at: tuple[int, int], font_scale: float, scale: float) -> int:
    """Print `words` into the text layer at `at` (baseline left); return their width in pixels."""
    cv2.putText(
        text, words, at, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 255, max(1, round(2 * scale)), cv2.LINE_AA
    )
    return cv2.getTextSize(words, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0]


def _row_of_digits(
    canvas: np.ndarray,
    digits: np.ndarray,
    labels: np.ndarray,
    x: int,
    y: int,
    height: int,
    gap: float,
    rng: np.random.Generator,
) -> tuple[list[Truth], int]:
    """Write digits left to right from (x, y); `gap` is the space between ink boxes as a
    fraction of the height (negative: they overlap and touch). Returns truths and the end x."""
    truths = []
    size = int(round(height * 28 / 20))
    for digit, label in zip(digits, labels, strict=True):
        cols = np.flatnonzero(digit.max(axis=0) > 64)
        left = int(cols[0] * size / 28) if len(cols) else 0
        box = _pen(canvas, digit, x - left, y, height, rng)
        if box[2] == 0:
            continue
        truths.append(Truth(int(label), box))
        x = box[0] + box[2] + int(round(gap * height))
    return truths, x


def a4_scan(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A 300-dpi A4 scan (3507 x 2481 at scale 1) of pen numbers, 44-100 px tall, with a soft
    shadow band along the page edge and the dark lid beyond it."""
    h, w = int(3507 * scale), int(2481 * scale)
    canvas = paper(h, w, rng, uneven=False) + 20.0
    truths: list[Truth] = []
    y = int(rng.uniform(0.05, 0.08) * h)
    k = 0
    while y < 0.9 * h:
        height = int(rng.uniform(44, 100) * scale)
        n = int(rng.integers(3, 8))
        idx = _pick(labels, rng, n)
        x = int(rng.uniform(0.1, 0.5) * w)
        if x + n * 1.1 * height < 0.9 * w:
            row, _ = _row_of_digits(
                canvas, digits[idx], labels[idx], x, y, height, float(rng.uniform(0.15, 0.5)), rng
            )
            truths += row
        y += int(height * rng.uniform(1.6, 2.6))
        k += 1
    # the page edge: a soft shadow over the last ~3% of the page, then the lid
    side = int(rng.integers(0, 2))
    edge = int(rng.uniform(0.94, 0.97) * (w if side == 0 else h))
    ramp = np.arange(w if side == 0 else h, dtype=np.float32)
    shadow = np.clip((ramp - (edge - 0.04 * len(ramp))) / (0.04 * len(ramp)), 0, 1) ** 2
    depth = rng.uniform(60, 110)
    profile = 1.0 - shadow * depth / 255.0
    profile[edge:] = rng.uniform(0.12, 0.25)  # the lid
    canvas *= profile[None, :] if side == 0 else profile[:, None]
    noisy = canvas + rng.normal(0, 2.0, canvas.shape).astype(np.float32)
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    inside = [t for t in truths if (t.box[0] + t.box[2] if side == 0 else t.box[1] + t.box[3]) < edge]
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), inside


def border_band(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A webcam frame (640 x 480 at scale 1) whose paper ends in a dark table along two
    sides (an L-shaped band, 8-20% of the frame), with digits close to the paper's edge."""
    h, w = int(480 * scale), int(640 * scale)
    canvas = paper(h, w, rng)
    band_x, band_y = int(rng.uniform(0.08, 0.2) * w), int(rng.uniform(0.08, 0.2) * h)
    right, bottom = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
    x0, x1 = (0, w - band_x) if right else (band_x, w)
    y0, y1 = (0, h - band_y) if bottom else (band_y, h)
    truths = []
    n_rows = 2
    for r in range(n_rows):
        height = int(rng.uniform(45, 80) * scale)
        y = y0 + int((r + 0.5) * (y1 - y0) / n_rows - 0.7 * height)
        idx = _pick(labels, rng, 4)
        margin = int(rng.uniform(4, 25) * scale)  # close to the table edge
        x = (x1 - margin - _row_width(digits[idx], height, 0.25)) if right else (x0 + margin)
        row, _ = _row_of_digits(canvas, digits[idx], labels[idx], x, y, height, 0.25, rng)
        truths += row
    table = rng.uniform(25, 60)
    grain = rng.normal(0, 6, canvas.shape).astype(np.float32)
    outside = np.ones_like(canvas, dtype=bool)
    outside[y0:y1, x0:x1] = False
    canvas[outside] = table + grain[outside]
    return film(canvas, rng, truths, tilt=0.015, blur=0.8, noise=3.0)


def print_clutter(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    scale: float = 1.0,
    ink: tuple[float, float] = (0.25, 0.4),
) -> tuple[np.ndarray, list[Truth]]:
    """A page (1542 x 748 at scale 1) of printed text lines, pen digits among them; the print
    darkens the paper by a share drawn from `ink` (faint grey by default)."""
    h, w = int(748 * scale), int(1542 * scale)
    canvas = paper(h, w, rng, uneven=False)
    text = np.zeros((h, w), np.uint8)  # OpenCV 5 draws text on 8-bit images only
    line_h = max(8, int(rng.uniform(20, 30) * scale))
    font_scale = line_h / 30.0
    truths: list[Truth] = []
    y = int(40 * scale)
    while y + 2 * line_h < h:  # every line, and the digits on it, well inside the page
        x = int(rng.uniform(20, 60) * scale)
        if rng.uniform() < 0.35:  # a line with handwritten digits in a gap after some words
            words = " ".join(rng.choice(WORDS, int(rng.integers(1, 4))))
            tw = _print(text, words, (x, y + line_h), font_scale, scale)
            height = int(rng.uniform(40, 75) * scale)
            y += max(0, height - line_h)  # the digits rise above this line's text, not into the last
            if y + line_h + 10 * scale >= h:
                break  # no room left for a row of digits
            idx = _pick(labels, rng, int(rng.integers(2, 6)))
            row, _ = _row_of_digits(
                canvas,
                digits[idx],
                labels[idx],
                x + tw + int(30 * scale),
                y + line_h - height,
                height,
                float(rng.uniform(0.15, 0.4)),
                rng,
            )
            truths += row
            y += line_h + int(line_h * 1.2)
            continue
        while x < w - 100 * scale:
            word = str(rng.choice(WORDS))
            tw = _print(text, word, (x, y + line_h), font_scale, scale)
            x += tw + int(line_h * 0.6)
        y += int(line_h * 1.8)
    grey = rng.uniform(*ink)  # the default: printed grey, far lighter than the pen
    canvas *= 1.0 - grey * (text.astype(np.float32) / 255.0)
    return film(canvas, rng, truths, tilt=0.0, blur=0.6, noise=2.5)


def dark_print(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """print_clutter with dark print (a form printed black): as dark as the pen, so ink
    darkness cannot tell print from handwriting."""
    return print_clutter(digits, labels, rng, scale, ink=(0.45, 0.7))


def touching(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A webcam frame (640 x 480 at scale 1) of 3 numbers, 2-4 digits each, written joined."""
    h, w = int(480 * scale), int(640 * scale)
    canvas = paper(h, w, rng)
    truths = []
    for r in range(3):
        height = int(rng.uniform(45, 75) * scale)
        y = int((r + 0.6) * h / 3.4)
        n = int(rng.integers(2, 5))
        idx = _pick(labels, rng, n)
        x = int(rng.uniform(0.08, 0.25) * w)
        row, _ = _row_of_digits(
            canvas, digits[idx], labels[idx], x, y, height, float(rng.uniform(-0.12, -0.04)), rng
        )
        truths += row
    return film(canvas, rng, truths, tilt=0.02, blur=0.8, noise=3.0)


def crowded(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A 1280 x 720 frame (at scale 1) of 4 rows of numbers, 2-3 digits each, every number
    written joined, as on a list of prices or phone numbers: more joined numbers than the
    splitter's piece budget cuts at every valley."""
    h, w = int(720 * scale), int(1280 * scale)
    canvas = paper(h, w, rng)
    truths: list[Truth] = []
    for r in range(4):
        height = int(rng.uniform(40, 60) * scale)
        y = int((r + 0.5) * h / 4.4)
        x = int(rng.uniform(0.02, 0.06) * w)
        while x < 0.88 * w:
            idx = _pick(labels, rng, int(rng.integers(2, 4)))
            row, end = _row_of_digits(
                canvas, digits[idx], labels[idx], x, y, height, float(rng.uniform(-0.12, -0.04)), rng
            )
            if end > 0.98 * w:  # it ran past the page: no truth (the frame edge cuts it)
                break
            truths += row
            x = end + int(rng.uniform(0.6, 1.0) * height)
    return film(canvas, rng, truths, tilt=0.02, blur=0.8, noise=3.0)


def defocused(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A phone photo out of focus (640 x 480 at scale 1, blurred 1.3-2.2 px): 4 rows of
    numbers of 5-9 digits, 20-45 px tall, written apart but close (gaps of 8-30% of their
    height), as on a list of phone numbers. The blur spreads each stroke's soft tail over the
    gaps between the digits."""
    h, w = int(480 * scale), int(640 * scale)
    canvas = paper(h, w, rng)
    truths: list[Truth] = []
    for r in range(4):
        height = int(rng.uniform(20, 45) * scale)
        y = int((r + 0.5) * h / 4.3)
        idx = _pick(labels, rng, int(rng.integers(5, 10)))
        x = int(rng.uniform(0.04, 0.2) * w)
        gap = float(rng.uniform(0.08, 0.3))
        if x + _row_width(digits[idx], height, gap) <= 0.95 * w:
            truths += _row_of_digits(canvas, digits[idx], labels[idx], x, y, height, gap, rng)[0]
    return film(canvas, rng, truths, tilt=0.03, blur=float(rng.uniform(1.3, 2.2)) * scale, noise=3.0)


def scene_video(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    n_frames: int = 60,
    hold: int = 8,
    scale: float = 1.0,
) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """A webcam video (640 x 480 at scale 1): six digits in fixed places, each replaced by a
    different digit every `hold` frames (out of step with each other), slight camera shake."""
    h, w = int(480 * scale), int(640 * scale)
    base = paper(h, w, rng)
    spots = [(0.1 + 0.3 * (i % 3), 0.15 + 0.45 * (i // 3)) for i in range(6)]
    offset = rng.integers(0, hold, 6)
    current = _pick(labels, rng, 6)
    for t in range(n_frames):
        for i in range(6):
            if t and (t + offset[i]) % hold == 0:  # a new digit here, never the same label
                choices = np.flatnonzero(labels != labels[current[i]])
                current[i] = int(rng.choice(choices))
        canvas = base.copy()
        truths = []
        for (fx, fy), k in zip(spots, current, strict=True):
            box = ink_digit(canvas, digits[k], int(fx * w), int(fy * h), int(80 * scale), 0.85)
            truths.append(Truth(int(labels[k]), box))
        frame_rng = np.random.default_rng(int(rng.integers(1 << 31)))
        yield film(canvas, frame_rng, truths, tilt=0.005, blur=0.8, noise=3.0)


def ruled(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A webcam frame (640 x 480 at scale 1) of a notebook page: ruled lines 40-60 px apart,
    1-3 px thick, from faint to as dark as the pen, a vertical margin line, and rows of digits
    written on the lines (resting on them or crossing them by up to 3 px)."""
    h, w = int(480 * scale), int(640 * scale)
    canvas = paper(h, w, rng)
    spacing = rng.uniform(40, 60) * scale
    lines = np.arange(rng.uniform(0.3, 1.0) * spacing, h, spacing).astype(int)
    margin = int(rng.uniform(0.08, 0.15) * w)
    truths = []
    for line in lines[1::2]:  # digits on every other line
        height = int(rng.uniform(0.6, 0.85) * spacing)
        idx = _pick(labels, rng, int(rng.integers(2, 5)))
        x = int(rng.uniform(margin + 10 * scale, 0.5 * w))
        # MNIST's ink ends 4/20 of the height above its 28-px cell's bottom; then 0-3 px lower
        y = line - int(round(height * 24 / 20)) + int(rng.integers(0, 4))
        row, _ = _row_of_digits(canvas, digits[idx], labels[idx], x, y, height, 0.3, rng)
        truths += row
    thick = max(1, int(round(rng.uniform(1, 3) * scale)))
    darkness = float(rng.uniform(0.15, 0.75))
    for line in lines:
        canvas[line : line + thick, :] *= 1.0 - darkness
    canvas[:, margin : margin + thick] *= 1.0 - float(rng.uniform(0.2, 0.6))
    return film(canvas, rng, truths, tilt=0.02, blur=0.8, noise=3.0)


def squared(
    digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[np.ndarray, list[Truth]]:
    """A webcam frame (640 x 480 at scale 1) of squared paper: a grid 28-45 px, 1-2 px lines
    from faint to mid-grey (darkening the paper by 10-50%), rows of digits 1-1.6 squares tall
    written over it, so that grid lines cross most of them."""
    h, w = int(480 * scale), int(640 * scale)
    canvas = paper(h, w, rng)
    spacing = rng.uniform(28, 45) * scale
    rows = np.arange(rng.uniform(0.2, 1.0) * spacing, h, spacing).astype(int)
    cols = np.arange(rng.uniform(0.2, 1.0) * spacing, w, spacing).astype(int)
    truths = []
    for r in range(2, len(rows) - 2, 3):
        height = int(rng.uniform(1.0, 1.6) * spacing)
        idx = _pick(labels, rng, int(rng.integers(2, 5)))
        x = int(rng.uniform(0.1, 0.5) * w)
        row, _ = _row_of_digits(
            canvas, digits[idx], labels[idx], x, rows[r] - int(0.2 * height), height, 0.3, rng
        )
        truths += row
    thick = max(1, int(round(rng.uniform(1, 2) * scale)))
    darkness = float(rng.uniform(0.1, 0.5))
    for line in rows:
        canvas[line : line + thick, :] *= 1.0 - darkness
    for line in cols:
        canvas[:, line : line + thick] *= 1.0 - darkness
    return film(canvas, rng, truths, tilt=0.02, blur=0.8, noise=3.0)


KINDS = {
    "a4_scan": a4_scan,
    "border_band": border_band,
    "print_clutter": print_clutter,
    "touching": touching,
    "ruled": ruled,
    "squared": squared,
    "dark_print": dark_print,
}
