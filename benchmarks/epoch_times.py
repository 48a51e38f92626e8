"""Issue 10: seconds per full-MNIST training epoch with and without `--augment ink` (and the
CNN's outlier pairs), each the second epoch of a fresh two-epoch run (the first compiles), on an idle machine.

    python benchmarks/epoch_times.py [--data mnist.npz]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, full_mnist, machine  # noqa: E402

CONFIGS = {
    "mlp (seed)": [],
    "mlp --augment ink": ["--augment", "ink"],
    "cnn": ["--arch", "cnn", "--optimizer", "adam"],
    "cnn --augment ink --outliers 0.2": [
        "--arch",
        "cnn",
        "--optimizer",
        "adam",
        "--augment",
        "ink",
        "--outliers",
        "0.2",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data")
    args = parser.parse_args()
    data = full_mnist(args.data)
    lines = [
        f"Seconds per full-MNIST epoch (55,000 images, batch 32), the second of two epochs in a fresh "
        f"process, on {machine()}:",
        "",
        "| training | epoch s |",
        "|---|---:|",
    ]
    for name, flags in CONFIGS.items():
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgedigits.cli",
                    "train",
                    "--data",
                    data,
                    "--epochs",
                    "2",
                    "--out",
                    out,
                    *flags,
                ],
                check=True,
                capture_output=True,
            )
            history = next(Path(out).glob("*/history.csv"))
            with open(history, newline="") as fh:
                seconds = [float(row["seconds"]) for row in csv.DictReader(fh)]
        lines.append(f"| {name} | {seconds[-1]:.1f} |")  # the second epoch: compilation is done
        print(lines[-1])
    (RESULTS / "epoch_times.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
