"""Issue 9: the camera on real pages, and on synthetic pages of every way real pages broke it.

Sets (each run with the camera's defaults: CameraConfig(), the bundled model unless --model):
  real          ../shared/realdigits/*.png through `edgedigits camera --output-jsonl`, scored
                by ../shared/realdigits/score.py (a prediction matches a truth box when each
                box's centre lies inside the other, grown 20% / 50%, one to one)
  webcam        640x480 frames, 10 scattered digits, light, shadow, tilt, blur, noise
  a4_scan       300-dpi A4 scans (3507x2481), shadowed page edge and dark lid; read as still
                images, as an image source reads a scan (SegmentConfig.still)
  border_band   640x480 frames with a dark table edge along two sides
  print_clutter 1542x748 pages of faint printed text with pen digits among it
  touching      640x480 frames of numbers written joined
  ruled         640x480 notebook pages: digits written on ruled lines, a margin line
  squared       640x480 squared (graph) paper, grid lines faint to mid-grey crossing the digits
  dark_print    print_clutter with print as dark as the pen (a form printed black)
  scene_video   a 60-frame video whose digits change in place every 8 frames (tracker on)
  small         640x480 frames, 10 scattered digits written 12-24 px tall (issue 9: "digits from
                12 px tall"); its own seed, so the other sets' pages stay what they were
  crowded       1280x720 photos of 4 rows of numbers written joined (~35 numbers), read as
                stills; its own seed
  crowded_live  the same pages each held before the live camera for 8 frames (moved up to 2 px
                each way): the splitter's piece budget holds the frame rate, and a blob read in
                one frame is not cut again in the next; every frame scored; no target
  defocused     640x480 phone photos out of focus (blur 1.3-2.2 px) of 4 rows of numbers of
                5-9 digits 20-45 px tall, written apart but close; its own seed
Synthetic digits are MNIST *test* digits (--data, default ../shared/data/mnist.npz, else the
300 the package ships). Prints per set: correctly labelled / all, false detections per digit
and the slowest frame (segment + classify, one core). Then the time bounds.

    python benchmarks/camera_real.py [--model M] [--pages 40] [--real DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, save, target  # noqa: E402

from edgedigits.camera import synth_pages  # noqa: E402
from edgedigits.camera.loop import CameraConfig, Tracker, bundled_model, run_camera, timed_frame  # noqa: E402
from edgedigits.camera.segment import SegmentConfig  # noqa: E402
from edgedigits.camera.synth import held, scattered_frame, score_detections  # noqa: E402
from edgedigits.runtime import load_classifier  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdigits"
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
SLOW_KEPT = 3  # each live set's slowest frames (one run each), timed again for the time bound
HELD = 8  # frames each crowded page is held before the live camera


def run_synthetic(name, frames, clf, video=False, still=False, slow=None) -> dict:
    """Every frame read once with no confidence cut (the cut is the camera's last step), then
    scored at each threshold. `still`: read as an image source reads a photo or scan. `slow`
    (a list), for a live set: gets (ms, name, frame) of its SLOW_KEPT slowest frames."""
    cfg = CameraConfig()
    seg = SegmentConfig(still=True) if still else None
    tracker = Tracker(alpha=cfg.smoothing)
    scored = []  # (truths, digits) per frame
    slowest, shape = 0.0, None
    slowest_frames: list[tuple[float, str, np.ndarray]] = []
    for frame, truths in frames:
        if not video:
            tracker = Tracker(alpha=cfg.smoothing)  # each still is its own camera run
        result = timed_frame(frame, clf, tracker, 0.0, seg=seg)
        ms = result["ms"]["total"]
        if ms > slowest:
            slowest, shape = ms, frame.shape[1::-1]
        if not still and frame.shape[0] * frame.shape[1] <= 1920 * 1080:
            slowest_frames = sorted([*slowest_frames, (ms, name, frame)], key=lambda s: -s[0])[:SLOW_KEPT]
        scored.append((truths, result["digits"]))
    if slow is not None:
        slow.extend(slowest_frames)
    curve = {t: _totals(scored, t) for t in THRESHOLDS}
    return _report(name, curve, slowest, shape)


def _totals(scored, threshold) -> tuple[int, int, int, int]:
    """(digits, correctly labelled, false detections, shown) at one confidence cut: a shown
    digit that is neither right nor false matched a digit under another label (wrong)."""
    total = right = false = shown = 0
    for truths, digits in scored:
        kept = [d for d in digits if d["confidence"] >= threshold]
        n, r, f = score_detections(truths, kept)
        total, right, false, shown = total + n, right + r, false + f, shown + len(kept)
    return total, right, false, shown


def _report(name, curve, slowest, shape) -> dict:
    total, right, false, _ = curve[CameraConfig().min_confidence]
    row = {
        "set": name,
        "digits": total,
        "correct": right,
        "correct_rate": right / max(total, 1),
        "false_per_digit": false / max(total, 1),
        "slowest_ms": slowest,
        "slowest_frame": f"{shape[0]}x{shape[1]}" if shape else "",
        "curve": {
            str(t): {
                "correct_rate": r / max(n, 1),
                "false_per_digit": f / max(n, 1),
                "wrong_per_digit": (shown - r - f) / max(n, 1),
            }
            for t, (n, r, f, shown) in curve.items()
        },
    }
    print(
        f"{name:14s} correctly labelled {right}/{total} = {row['correct_rate']:.3f}  "
        f"false/digit {row['false_per_digit']:.3f}  slowest {slowest:.1f} ms ({row['slowest_frame']})"
    )
    return row


def run_real(folder: Path, model: str) -> dict | None:
    """Each real photo through the camera command's own code path, then score.py at each
    confidence threshold (the JSONL of a run with no cut, filtered)."""
    pages = sorted(p for p in folder.glob("*.png") if p.with_suffix(".json").is_file())
    if not pages or not (folder / "score.py").is_file():
        print(f"real           skipped: no pages with ground truth in {folder}")
        return None
    curve = {t: [0, 0, 0, 0] for t in THRESHOLDS}
    slowest, shape = 0.0, None
    with tempfile.TemporaryDirectory() as tmp:
        for page in pages:
            out = Path(tmp) / f"{page.stem}.jsonl"
            run_camera(
                CameraConfig(
                    model=model, source=str(page), headless=True, output_jsonl=str(out), min_confidence=0.0
                ),
                log=lambda _: None,
            )
            records = [json.loads(line) for line in out.read_text().splitlines()]
            for t in THRESHOLDS:
                cut = Path(tmp) / "cut.jsonl"
                cut.write_text(
                    "".join(
                        json.dumps({**r, "digits": [d for d in r["digits"] if d["confidence"] >= t]}) + "\n"
                        for r in records
                    )
                )
                n, r, f = _score_py(folder, page, cut)
                shown = sum(d["confidence"] >= t for rec in records for d in rec["digits"])
                curve[t] = [curve[t][0] + n, curve[t][1] + r, curve[t][2] + f, curve[t][3] + shown]
                if t == CameraConfig().min_confidence:
                    print(f"  {page.name:28s} {r}/{n}  false/digit {f / max(n, 1):.3f}")
            for rec in records:
                ms = rec["ms"]["segment"] + rec["ms"]["classify"]
                if ms > slowest:
                    slowest, shape = ms, cv2.imread(str(page)).shape[1::-1]
    return _report("real", {t: tuple(v) for t, v in curve.items()}, slowest, shape)


def _score_py(folder: Path, page: Path, jsonl: Path) -> tuple[int, int, int]:
    """(digits, correctly labelled, false detections) as ../shared/realdigits/score.py says."""
    proc = subprocess.run(
        [sys.executable, str(folder / "score.py"), str(page.with_suffix(".json")), str(jsonl)],
        capture_output=True,
        text=True,
        check=False,
    )
    got = re.search(
        r"correctly labelled (\d+)/(\d+) = [\d.]+ \(need [^)]*\), false/digit ([\d.]+)", proc.stdout
    )
    if not got:
        raise SystemExit(f"score.py said something unexpected: {proc.stdout}{proc.stderr}")
    return int(got[2]), int(got[1]), round(float(got[3]) * int(got[2]))


def slowest_ms(frames, clf, repeats=3, seg=None) -> tuple[float, str]:
    """Slowest of the frames, each the best of `repeats` runs (segment + classify, one core)."""
    worst, shape = 0.0, ""
    for frame in frames:
        best = min(_timed(frame, clf, seg) for _ in range(repeats))
        if best > worst:
            worst, shape = best, f"{frame.shape[1]}x{frame.shape[0]}"
    return worst, shape


def _timed(frame, clf, seg=None) -> float:
    return timed_frame(frame, clf, None, 0.8, seg=seg)["ms"]["total"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(bundled_model()))
    parser.add_argument("--data", default=str(SHARED_MNIST) if SHARED_MNIST.exists() else None)
    parser.add_argument("--pages", type=int, default=40, help="synthetic pages per kind (default 40)")
    parser.add_argument("--real", default=str(REAL))
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="0 (default): the benchmark's pages; any other: development pages of the same kinds, "
        "written to camera_real_seedN.* (set constants on those, not on the benchmark's)",
    )
    args = parser.parse_args()
    if args.data:
        with np.load(args.data, allow_pickle=False) as d:
            x, y = d["x_test"][:9000], d["y_test"][:9000]
    else:
        from edgedigits.assets import shipped_digits

        x, y = shipped_digits()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    cv2.setNumThreads(1)
    print(machine())
    clf = load_classifier(args.model, threads=1)
    rows = []
    slow: list[tuple[float, str, np.ndarray]] = []  # each live set's slowest frames, for the time bound
    real = run_real(Path(args.real), args.model)
    if real:
        rows.append(real)
    rng = _rng(2026, args.seed)
    rows.append(
        run_synthetic(
            "webcam", (scattered_frame(*_pick(x, y, rng, 10), rng) for _ in range(args.pages)), clf, slow=slow
        )
    )
    for kind, make in synth_pages.KINDS.items():
        pages = (make(x, y, rng) for _ in range(args.pages))
        rows.append(run_synthetic(kind, pages, clf, still=kind == "a4_scan", slow=slow))
    rows.append(
        run_synthetic(
            "scene_video", synth_pages.scene_video(x, y, rng, n_frames=60), clf, video=True, slow=slow
        )
    )
    small = _rng(2027, args.seed)
    frames = (scattered_frame(*_pick(x, y, small, 10), small, heights=(12, 24)) for _ in range(args.pages))
    rows.append(run_synthetic("small", frames, clf, slow=slow))
    crowded = _rng(2028, args.seed)
    pages = [synth_pages.crowded(x, y, crowded) for _ in range(args.pages // 2)]
    rows.append(run_synthetic("crowded", pages, clf, still=True))
    video = (frame for page, truths in pages for frame in held(page, truths, crowded, HELD))
    rows.append(run_synthetic("crowded_live", video, clf, video=True, slow=slow))
    blurred = _rng(2029, args.seed)
    pages = (synth_pages.defocused(x, y, blurred) for _ in range(args.pages))
    rows.append(run_synthetic("defocused", pages, clf, slow=slow))
    targets = []
    if real:
        targets += [
            target("real pages: correctly labelled", real["correct_rate"], ">=", 0.90),
            target("real pages: false detections per digit", real["false_per_digit"], "<=", 0.03),
        ]
    for row in rows:
        if row["set"] not in ("real", "crowded_live"):
            name = row["set"]
            targets += [
                target(f"{name}: correctly labelled", row["correct_rate"], ">=", 0.95),
                target(f"{name}: false detections per digit", row["false_per_digit"], "<=", 0.02),
            ]
    targets += time_bounds(x, y, clf, rng, slow)
    print_curve(rows)
    name = "camera_real" if args.seed == 0 else f"camera_real_seed{args.seed}"
    save(
        name,
        {
            "machine": machine(),
            "model": args.model,
            "pages_per_kind": args.pages,
            "seed": args.seed,
            "sets": rows,
            "targets": targets,
        },
    )
    (RESULTS / f"{name}_table.md").write_text(tables(rows, args.pages))


def _rng(base: int, seed: int) -> np.random.Generator:
    """The generator of one set's pages: the benchmark's (seed 0) or development pages."""
    return np.random.default_rng(base if seed == 0 else [base, seed])


def tables(rows, pages) -> str:
    """The README's tables: each set at the default --min-confidence, then the curve."""
    default = CameraConfig().min_confidence
    lines = [
        f"Measured on {machine()}; {pages} synthetic pages per kind; segment + classify on one core.",
        "",
        "| set | digits | correctly labelled | false detections per digit | slowest frame |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['digits']} | {r['correct_rate']:.1%} | {r['false_per_digit']:.3f} | "
            f"{r['slowest_ms']:.1f} ms ({r['slowest_frame']}) |"
        )
    lines += [
        "",
        f"`--min-confidence` (default {default}): correctly labelled / wrong labels / false detections,"
        " per digit (a wrong label: a digit found but read as another)",
        "",
        "| set | " + " | ".join(str(t) for t in THRESHOLDS) + " |",
        "|---|" + "---:|" * len(THRESHOLDS),
    ]
    for r in rows:
        cells = [_cell(r["curve"][str(t)], " / ") for t in THRESHOLDS]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def print_curve(rows) -> None:
    """Correctly labelled and false detections per digit at each --min-confidence."""
    print("\n--min-confidence: correctly labelled / wrong labels / false detections per digit")
    print(f"{'set':14s} " + " ".join(f"{t:>17}" for t in THRESHOLDS))
    for row in rows:
        cells = [_cell(row["curve"][str(t)], "/") for t in THRESHOLDS]
        print(f"{row['set']:14s} " + " ".join(f"{c:>17}" for c in cells))


def _cell(point: dict, sep: str) -> str:
    return sep.join(f"{point[k]:.3f}" for k in ("correct_rate", "wrong_per_digit", "false_per_digit"))


def _pick(x, y, rng, n):
    idx = rng.choice(len(y), n, replace=False)
    return x[idx], y[idx]


def time_bounds(x, y, clf, rng, slow=()) -> list[dict]:
    """Point 4 of the issue: 1920x1080 worst cases (6 HD pages) <= 30 ms, an A4 scan <= 300 ms, the
    640x480 frame with 10 digits <= 3 ms (median), all segment + classify on one core."""
    hd = [
        synth_pages.print_clutter(x, y, rng, scale=1920 / 1542)[0][:1080],
        synth_pages.touching(x, y, rng, scale=2.25)[0],
        synth_pages.border_band(x, y, rng, scale=2.25)[0],
        synth_pages.ruled(x, y, rng, scale=2.25)[0],
        scattered_frame(*_pick(x, y, rng, 40), rng, size=(1080, 1920))[0],
        # a photo of ~35 numbers written joined taken at 1920x1080: the most pieces to cut
        cv2.resize(synth_pages.crowded(x, y, rng)[0], (1920, 1080), interpolation=cv2.INTER_CUBIC),
    ]
    # ... and every live set's slowest frames, read as the first frame a camera sees (no
    # tracker, so no reading remembered from a frame before): whatever a frame holds
    named = [("HD page", frame) for frame in hd] + [(name, frame) for _, name, frame in slow]
    # best of 3 passes over all of them, not 3 runs in a row: this machine's slow spells last
    # seconds, and three runs in a row fall in the same one
    passes = [[_timed(frame, clf) for _, frame in named] for _ in range(3)]
    times = np.min(passes, axis=0).tolist()
    per_set: dict[str, float] = {}
    for (which, _), ms in zip(named, times, strict=True):
        per_set[which] = max(ms, per_set.get(which, 0.0))
    print(
        "slowest frame read live, per set (best of 3 passes): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in per_set.items())
    )
    worst = int(np.argmax(times))
    worst_hd, (which, frame) = times[worst], named[worst]
    shape_hd = f"{which}, {frame.shape[1]}x{frame.shape[0]}"
    scans = [synth_pages.a4_scan(x, y, rng)[0] for _ in range(3)]
    a4, shape_a4 = slowest_ms(scans, clf, seg=SegmentConfig(still=True))  # a scan: read whole
    # many frames, not one: a frame whose wide digit the splitter must try costs a second batch
    frames = [scattered_frame(*_pick(x, y, rng, 10), rng)[0] for _ in range(50)]
    median = float(np.median([min(_timed(frame, clf) for _ in range(5)) for frame in frames]))
    return [
        target(
            f"slowest frame up to 1920x1080 read live, of 6 HD pages and each live set's"
            f" {SLOW_KEPT} slowest ({shape_hd})",
            worst_hd,
            "<=",
            30.0,
            " ms",
        ),
        target(f"300-dpi A4 scan ({shape_a4})", a4, "<=", 300.0, " ms"),
        target("640x480 frame with 10 digits: median of 50 frames", median, "<=", 3.0, " ms"),
    ]


if __name__ == "__main__":
    main()
