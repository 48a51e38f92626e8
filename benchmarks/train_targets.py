"""Issue 2 targets: accuracy of the defaults and the Adam preset on full MNIST, epoch time
on this CPU, and mnist-5k with the defaults.

    python benchmarks/train_targets.py [--data PATH_TO_FULL_MNIST.npz]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import full_mnist, save, target  # noqa: E402

from edgedigits.train import TrainConfig, train  # noqa: E402

ADAM_PRESET = dict(optimizer="adam", learning_rate=0.0005, batch_size=128, shift=2, epochs=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="full MNIST .npz (default ../shared/data or download)")
    data = full_mnist(parser.parse_args().data)
    out = tempfile.mkdtemp(prefix="edgedigits-bench-")
    quiet = lambda _: None  # noqa: E731
    results, targets = {}, []

    t0 = time.perf_counter()
    r = train(TrainConfig(data="mnist-5k", out=out), log=quiet)
    results["mnist-5k defaults"] = {**r.metrics, "wall_seconds": time.perf_counter() - t0}
    targets.append(
        target(
            "mnist-5k defaults: wall time (incl. data, report)",
            results["mnist-5k defaults"]["wall_seconds"],
            "<=",
            120,
            " s",
        )
    )
    targets.append(target("mnist-5k defaults: test accuracy", r.metrics["test_accuracy"], ">=", 0.92))

    r = train(TrainConfig(data=data, out=out), log=quiet)
    results["full defaults"] = r.metrics
    targets.append(
        target("full MNIST defaults (SGD): test accuracy", r.metrics["test_accuracy"], ">=", 0.979)
    )
    targets.append(
        target("full MNIST epoch at batch 32 (median)", r.metrics["median_epoch_seconds"], "<=", 2.5, " s")
    )

    r = train(TrainConfig(data=data, out=out, learning_rate=0.01), log=quiet)
    results["full seed lr 0.01"] = r.metrics
    print(f"info  the seed's exact SGD lr 0.01: test accuracy {r.metrics['test_accuracy']:.4f}")

    r = train(TrainConfig(data=data, out=out, **ADAM_PRESET), log=quiet)
    results["full adam preset"] = r.metrics
    targets.append(target("full MNIST Adam preset: test accuracy", r.metrics["test_accuracy"], ">=", 0.982))
    for v in results.values():
        v.pop("confusion_matrix", None)
    save("train_targets", {"data": data, "adam_preset": ADAM_PRESET, "runs": results, "targets": targets})


if __name__ == "__main__":
    main()
