"""The real pages under the conditions another camera, page or hand would bring: blur, light,
tilt, perspective, size, compression, noise, faded ink. No target: it shows where the camera
stops reading real ink, so that a change is measured on conditions no page of
../shared/realdigits shows as it is.

Each condition transforms all three real pages (and their ground-truth boxes) the same way;
each page is read as a still image with the camera's defaults and the bundled model (or
--model), and scored by the rule of ../shared/realdigits/score.py. Prints, per condition,
correctly labelled / all and false detections, and writes benchmarks/results/.

    python benchmarks/real_conditions.py [--model M] [--real DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

from edgedigits.camera.loop import CameraConfig, bundled_model, timed_frame  # noqa: E402
from edgedigits.camera.segment import SegmentConfig  # noqa: E402
from edgedigits.camera.synth import Truth, score_detections  # noqa: E402
from edgedigits.runtime import load_classifier  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdigits"
Page = tuple[np.ndarray, list[Truth]]


def _boxes(truths: list[Truth], warp: Callable[[np.ndarray], np.ndarray]) -> list[Truth]:
    """Truth boxes through a point transform: the box around the four moved corners."""
    out = []
    for t in truths:
        x, y, w, h = t.box
        corners = warp(np.float32([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        out.append(Truth(t.label, (int(x0), int(y0), int(x1 - x0), int(y1 - y0))))
    return out


def rotate(degrees: float) -> Callable[[np.ndarray, list[Truth]], Page]:
    def apply(image: np.ndarray, truths: list[Truth]) -> Page:
        h, w = image.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        moved = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return moved, _boxes(truths, lambda p: p @ m[:, :2].T + m[:, 2])

    return apply


def resize(factor: float) -> Callable[[np.ndarray, list[Truth]], Page]:
    def apply(image: np.ndarray, truths: list[Truth]) -> Page:
        way = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        return cv2.resize(image, None, fx=factor, fy=factor, interpolation=way), _boxes(
            truths, lambda p: p * factor
        )

    return apply


def perspective(share: float) -> Callable[[np.ndarray, list[Truth]], Page]:
    """The page's top edge narrowed by `share` of its width each side: a camera tilted back."""

    def apply(image: np.ndarray, truths: list[Truth]) -> Page:
        h, w = image.shape[:2]
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[share * w, 0], [w - share * w, 0], [w, h], [0, h]])
        m = cv2.getPerspectiveTransform(src, dst)
        moved = cv2.warpPerspective(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return moved, _boxes(truths, lambda p: cv2.perspectiveTransform(p[None], m)[0])

    return apply


def pixels(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, list[Truth]], Page]:
    return lambda image, truths: (np.clip(change(image.astype(np.float32)), 0, 255).astype(np.uint8), truths)


def _jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(image: np.ndarray) -> np.ndarray:
        ok, data = cv2.imencode(".jpg", image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(data, cv2.IMREAD_COLOR).astype(np.float32)

    return apply


def _light(dim: float) -> Callable[[np.ndarray], np.ndarray]:
    """Light falling off across the page: `dim` of it gone at the far corner."""

    def apply(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        ramp = np.linspace(1 - dim, 1, w)[None, :] * np.linspace(1 - dim / 2, 1, h)[:, None]
        return image * ramp[..., None]

    return apply


def _faded(share: float) -> Callable[[np.ndarray], np.ndarray]:
    """Every pixel moved `share` of the way to the page's median colour: pale ink."""
    return lambda image: image * (1 - share) + share * np.median(image.reshape(-1, 3), axis=0)


def _noise(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: image + np.random.default_rng(0).normal(0, sigma, image.shape)


CONDITIONS: dict[str, Callable[[np.ndarray, list[Truth]], Page]] = {
    "as taken": lambda image, truths: (image, truths),
    "rotated 5 deg": rotate(5),
    "rotated -8 deg": rotate(-8),
    "rotated 12 deg": rotate(12),
    "perspective 15%": perspective(0.15),
    "half size": resize(0.5),
    "twice the size": resize(2.0),
    "out of focus 1 px": pixels(lambda im: cv2.GaussianBlur(im, (0, 0), 1.0)),
    "out of focus 1.5 px": pixels(lambda im: cv2.GaussianBlur(im, (0, 0), 1.5)),
    "out of focus 2.5 px": pixels(lambda im: cv2.GaussianBlur(im, (0, 0), 2.5)),
    "light falling off 50%": pixels(_light(0.5)),
    "dim (gamma 2)": pixels(lambda im: 255.0 * (im / 255.0) ** 2.0),
    "faded ink 50%": pixels(_faded(0.5)),
    "faded ink 70%": pixels(_faded(0.7)),
    "noise 12": pixels(_noise(12.0)),
    "JPEG quality 30": pixels(_jpeg(30)),
    "gray": pixels(
        lambda im: cv2.cvtColor(cv2.cvtColor(im.astype(np.uint8), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    ),
}


def load_pages(folder: Path) -> list[tuple[str, np.ndarray, list[Truth]]]:
    pages = []
    for image in sorted(folder.glob("*.png")):
        truth = json.loads(image.with_suffix(".json").read_text())
        pages.append(
            (image.name, cv2.imread(str(image)), [Truth(int(t["label"]), tuple(t["box"])) for t in truth])
        )
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(bundled_model()))
    parser.add_argument("--real", default=str(REAL))
    args = parser.parse_args()
    pages = load_pages(Path(args.real)) if Path(args.real).is_dir() else []
    if not pages:
        print(f"no real pages in {args.real}: nothing to measure")
        return
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    cv2.setNumThreads(1)
    print(machine())
    clf = load_classifier(args.model, threads=1)
    threshold = CameraConfig().min_confidence
    rows = []
    for name, condition in CONDITIONS.items():
        total = right = false = 0
        per_page = {}
        for page, image, truths in pages:
            moved, boxes = condition(image, truths)
            found = timed_frame(moved, clf, None, threshold, seg=SegmentConfig(still=True))["digits"]
            n, r, f = score_detections(boxes, found)
            total, right, false = total + n, right + r, false + f
            per_page[page] = [r, n, f]
        rows.append({"condition": name, "digits": total, "correct": right, "false": false, "pages": per_page})
        print(
            f"{name:24s} {right:3d}/{total} correct   {false} false   "
            + "  ".join(f"{r}/{n}" for r, n, _ in per_page.values())
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "real_conditions.json").write_text(
        json.dumps({"machine": machine(), "model": args.model, "conditions": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
