"""Issue 3 targets: int8 ONNX size and accuracy against float32 ONNX, and the wall time of
`edgedigits export RUN --format all` (a fresh process: TensorFlow import included).

    python benchmarks/export_targets.py [--run RUN_DIR] [--data FULL_MNIST.npz]

Without --run, trains the defaults on full MNIST first (about a minute).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import full_mnist, save, target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.run:
        run = Path(args.run)
    else:
        from edgedigits.train import TrainConfig, train

        run = train(
            TrainConfig(data=full_mnist(args.data), out=tempfile.mkdtemp()), log=lambda _: None
        ).run_dir
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgedigits.cli", "export", str(run), "--format", "all"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    print(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"export failed: {proc.stderr.strip()}")
    report = json.loads((run / "export" / "parity.json").read_text())
    rows = {r["file"]: r for r in report["rows"]}
    f32, i8 = rows["model.onnx"], rows["model_int8.onnx"]
    targets = [
        target(
            "model_int8.onnx: times smaller than model.onnx", f32["size_kb"] / i8["size_kb"], ">=", 3.5, "x"
        ),
        target(
            "model_int8.onnx: accuracy drop vs model.onnx (points)",
            100 * (f32["accuracy"] - i8["accuracy"]),
            "<=",
            0.5,
        ),
        target("export --format all: wall time", wall, "<=", 30.0, " s"),
    ]
    save(
        "export_targets",
        {
            "run": str(run),
            "data": report["data"],
            "n_test": report["n_test"],
            "rows": report["rows"],
            "export_seconds": wall,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
