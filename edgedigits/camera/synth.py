"""Deterministic synthetic webcam frames: MNIST digits written on paper, filmed badly.

Used by `--source demo`, the tests and the benchmarks, with ground-truth boxes.
Effects: uneven light and a soft shadow, a slight perspective tilt, blur, sensor
noise, and movement from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass
class Truth:
    label: int
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels (after the perspective warp)


def score_detections(truths: list[Truth], digits: list[dict]) -> tuple[int, int, int]:
    """(digits in the truth, correctly labelled, false detections) for one frame, by the rule
    of ../shared/realdigits/score.py: a detection matches a truth when each box's centre lies
    inside the other (the detection grown by 20%, the truth by 50%), one to one, nearest first."""

    def centre(box: Any) -> tuple[float, float]:
        return box[0] + box[2] / 2, box[1] + box[3] / 2

    def inside(pt: tuple[float, float], box: Any, grow: float) -> bool:
        x, y, w, h = box
        return x - w * grow <= pt[0] <= x + w * (1 + grow) and y - h * grow <= pt[1] <= y + h * (1 + grow)

    pairs = []
    for i, t in enumerate(truths):
        for j, d in enumerate(digits):
            ct, cd = centre(t.box), centre(d["box"])
            if inside(ct, d["box"], 0.2) and inside(cd, t.box, 0.5):
                pairs.append(((ct[0] - cd[0]) ** 2 + (ct[1] - cd[1]) ** 2, i, j))
    used_t: set[int] = set()
    used_d: set[int] = set()
    right = 0
    for _, i, j in sorted(pairs):
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            right += int(truths[i].label == int(digits[j]["label"]))
    return len(truths), right, len(digits) - len(used_d)


def demo_digits() -> tuple[np.ndarray, np.ndarray]:
    """300 MNIST *test* digits shipped with the package: uint8 [300, 28, 28], labels [300]."""
    from edgedigits.assets import shipped_digits

    return shipped_digits()


def paper(height: int, width: int, rng: np.random.Generator, uneven: bool = True) -> np.ndarray:
    """float32 paper (H, W): bright, with a light gradient and a soft shadow when uneven."""
    base = np.full((height, width), rng.uniform(205, 235), np.float32)
    if uneven:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height
        base += rng.uniform(25, 55) * (ramp - ramp.mean())
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.3, 0.6) * max(height, width)
        base -= rng.uniform(25, 55) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return base


def ink_digit(
    canvas: np.ndarray, digit: np.ndarray, x: int, y: int, height: int, darkness: float = 0.8
) -> tuple[int, int, int, int]:
    """Write a 28x28 MNIST digit (white on black) as dark ink, `height` px tall; return its box."""
    size = max(2, int(round(height * 28 / 20)))  # MNIST's 20 px of ink inside 28
    big = cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big, 0, 1)
    h, w = canvas.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + size), min(h, y + size)
    if x1 <= x0 or y1 <= y0:
        return (x0, y0, 0, 0)
    patch = big[y0 - y : y1 - y, x0 - x : x1 - x]
    canvas[y0:y1, x0:x1] *= 1.0 - darkness * patch
    ys, xs = np.nonzero(patch > 0.25)
    if len(ys) == 0:
        return (x0, y0, 0, 0)
    return (
        x0 + int(xs.min()),
        y0 + int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    )


def film(
    canvas: np.ndarray,
    rng: np.random.Generator,
    truths: list[Truth],
    tilt: float = 0.03,
    blur: float = 1.0,
    noise: float = 4.0,
) -> tuple[np.ndarray, list[Truth]]:
    """Perspective tilt, blur, noise -> BGR uint8 frame, with the truth boxes warped too. A
    digit the tilt moved onto or past the frame's edge is no truth: the frame does not show
    all of it, and the camera drops what the frame edge cuts."""
    h, w = canvas.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-tilt, tilt, (4, 2)).astype(np.float32) * np.float32([w, h])
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(canvas, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if blur > 0:
        warped = cv2.GaussianBlur(warped, (0, 0), blur)
    warped = warped + rng.normal(0, noise, warped.shape).astype(np.float32)
    frame = np.clip(warped, 0, 255).astype(np.uint8)
    moved = []
    for t in truths:
        x, y, bw, bh = t.box
        corners = np.float32([[[x, y]], [[x + bw, y]], [[x + bw, y + bh]], [[x, y + bh]]])
        pts = cv2.perspectiveTransform(corners, m).reshape(-1, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        if x0 > 0 and y0 > 0 and x1 < w - 1 and y1 < h - 1:
            moved.append(Truth(t.label, (int(x0), int(y0), int(x1 - x0), int(y1 - y0))))
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), moved


def held(
    frame: np.ndarray, truths: list[Truth], rng: np.random.Generator, n_frames: int, shake: int = 2
) -> Any:
    """A still page held before a live camera: `n_frames` (frame, truths), each moved by up to
    `shake` px each way, as a hand-held camera's frames are."""
    h, w = frame.shape[:2]
    for _ in range(n_frames):
        dx, dy = (int(v) for v in rng.integers(-shake, shake + 1, 2))
        moved = cv2.warpAffine(
            frame, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE
        )
        yield moved, [Truth(t.label, (t.box[0] + dx, t.box[1] + dy, t.box[2], t.box[3])) for t in truths]


def scattered_frame(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = (480, 640),
    heights: tuple[int, int] = (40, 90),
    **effects: float,
) -> tuple[np.ndarray, list[Truth]]:
    """Digits on a loose grid (no two touching), random height and jitter each."""
    h, w = size
    canvas = paper(h, w, rng)
    n = len(digits)
    cols = int(np.ceil(np.sqrt(n * w / h)))
    rows = int(np.ceil(n / cols))
    cell_w, cell_h = w // (cols + 1), h // (rows + 1)
    truths = []
    for i, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        r, c = divmod(i, cols)
        height = int(min(rng.uniform(*heights), 0.8 * cell_h, 0.8 * cell_w))
        size_px = int(round(height * 28 / 20))
        cx = (c + 1) * cell_w + rng.integers(-cell_w // 8, cell_w // 8 + 1)
        cy = (r + 1) * cell_h + rng.integers(-cell_h // 8, cell_h // 8 + 1)
        box = ink_digit(
            canvas, digit, cx - size_px // 2, cy - size_px // 2, height, darkness=rng.uniform(0.7, 0.9)
        )
        truths.append(Truth(int(label), box))
    return film(canvas, rng, truths, **effects)


def demo_frames(n_frames: int = 90, size: tuple[int, int] = (480, 640), seed: int = 7):
    """The `--source demo` clip: five loose digits and a 4-digit number drifting across paper.

    Yields (BGR uint8 frame, truths). Deterministic for a given seed. The default seed
    picks legible digits (seed 2026 draws a "2" that reads as a "v"): this clip is a
    showcase; benchmarks/camera_accuracy.py measures on frames nobody chose.
    """
    x, y = demo_digits()
    rng = np.random.default_rng(seed)
    h, w = size
    loose = rng.choice(len(x), 5, replace=False)
    number = [int(rng.choice(np.flatnonzero(y == d))) for d in (2, 0, 2, 6)]  # "2026"
    base = paper(h, w, rng)
    spots = [(0.12, 0.18), (0.45, 0.15), (0.78, 0.2), (0.2, 0.72), (0.8, 0.7)]
    for t in range(n_frames):
        frame_rng = np.random.default_rng(seed * 1000 + t)
        canvas = base.copy()
        drift_x = int(25 * np.sin(2 * np.pi * t / n_frames))
        drift_y = int(15 * np.cos(2 * np.pi * t / n_frames))
        truths = []
        for (fx, fy), i in zip(spots, loose, strict=True):
            box = ink_digit(canvas, x[i], int(fx * w) + drift_x, int(fy * h) + drift_y, 70)
            truths.append(Truth(int(y[i]), box))
        for k, i in enumerate(number):
            box = ink_digit(canvas, x[i], int(0.3 * w) + k * 62 + drift_x, int(0.42 * h) + drift_y, 60)
            truths.append(Truth(int(y[i]), box))
        yield film(canvas, frame_rng, truths, tilt=0.02, blur=0.8, noise=3.0)
