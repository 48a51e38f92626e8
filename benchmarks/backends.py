"""Issue 5 targets, as ratios measured in one run on this machine:

- the edgedigits ONNX classifier at batch 1: p50 >= 1,000x faster than Keras model.predict,
  and within 1.3x of a bare InferenceSession.run on the same file;
- int8 ONNX throughput at batch 1024 >= 1.5x float32 ONNX;
- `edgedigits camera` on one image: process start to classified output <= 1.5 s, and
  peak RSS <= 150 MB (TensorFlow never loaded).

    python benchmarks/backends.py --run RUN_DIR   (a run with export/ from `export --format all`)

Also writes the full `edgedigits bench` table (results/backends_table.md, .json, .png).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save, target  # noqa: E402

from edgedigits.bench import BenchConfig, run_bench, to_markdown, write_outputs  # noqa: E402


def p50(report, backend, batch, threads=1):
    (row,) = [
        r
        for r in report["rows"]
        if r["backend"] == backend and r["batch"] == batch and r["threads"] == threads
    ]
    return row


def peak_rss_of(cmd: list[str]) -> tuple[float, float, int, str]:
    """Run cmd; return (wall s, peak RSS MB from /proc VmHWM polled every ms, rc, stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.001)
    wall = time.perf_counter() - t0
    return wall, peak, proc.returncode, proc.stderr.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    report = run_bench(
        BenchConfig(model_dir=args.run, batch_sizes=[1, 32, 1024], threads=[1, 2], seconds=args.seconds)
    )
    RESULTS.mkdir(exist_ok=True)
    write_outputs(
        report,
        str(RESULTS / "backends_table.json"),
        str(RESULTS / "backends_table.md"),
        str(RESULTS / "backends_table.png"),
    )
    print(to_markdown(report))

    predict = p50(report, "keras.predict", 1)["p50_us"]
    ours = p50(report, "onnx", 1)["p50_us"]
    bare = p50(report, "onnx.bare", 1)["p50_us"]
    f32 = p50(report, "onnx", 1024, threads=2)["images_per_s"]
    i8 = p50(report, "onnx.int8", 1024, threads=2)["images_per_s"]
    targets = [
        target("ONNX classifier vs Keras predict, batch-1 p50 speed-up", predict / ours, ">=", 1000, "x"),
        target("ONNX classifier / bare InferenceSession.run, batch-1 p50", ours / bare, "<=", 1.3, "x"),
        target("int8 / float32 ONNX throughput at batch 1024 (2 threads)", i8 / f32, ">=", 1.5, "x"),
    ]
    from edgedigits.camera.synth import demo_frames

    image = Path(tempfile.mkdtemp()) / "page.png"
    cv2.imwrite(str(image), next(demo_frames(1))[0])
    out = image.with_suffix(".jsonl")
    wall, rss, rc, err = peak_rss_of(
        [
            sys.executable,
            "-m",
            "edgedigits.cli",
            "camera",
            "--source",
            str(image),
            "--headless",
            "--output-jsonl",
            str(out),
        ]
    )
    if rc != 0:
        sys.exit(f"camera failed: {err.strip()}")
    digits = len(json.loads(out.read_text())["digits"])
    print(f"info  camera on one image found {digits} digits")
    targets += [
        target("camera on one image: process start to output", wall, "<=", 1.5, " s"),
        target("camera on one image: peak RSS", rss, "<=", 150, " MB"),
    ]
    save("backends", {"run": args.run, "machine": report["machine"], "targets": targets})


if __name__ == "__main__":
    main()
