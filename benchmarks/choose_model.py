"""Issue 10: choose the bundled model by measurement.

Trains each candidate on full MNIST (or reuses a run: --reuse NAME=RUN_DIR), exports it to
ONNX with the parity check, then measures, all on this machine in one run:
  t10k        accuracy on the official MNIST test set (10,000)
  real boxes  real handwritten digits of ../shared/realdigits/ read from their ground-truth
              boxes (edgedigits.read_digits(page, boxes=...)): the classifier alone
  camera      the camera with its defaults on the synthetic pages of benchmarks/camera_real.py
              (webcam, touching, print_clutter, border_band): correctly labelled / all
  latency     batch-1 p50 through onnxruntime, one thread
The best candidate (real boxes, then camera, then t10k) is the one to bundle: --bundle
copies its model.onnx to edgedigits/assets/model.onnx with these figures added to its metadata
("chosen_by", shown by `edgedigits info`).

    python benchmarks/choose_model.py [--data mnist.npz] [--only cnn+ink] [--reuse cnn+ink=runs/X]
                                      [--bundle]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, full_mnist, machine, save, target  # noqa: E402
from camera_real import REAL, _pick, run_synthetic  # noqa: E402

from edgedigits.camera import synth_pages  # noqa: E402
from edgedigits.camera.synth import scattered_frame  # noqa: E402
from edgedigits.train import TrainConfig  # noqa: E402

BASE = TrainConfig(optimizer="adam", lr_schedule="cosine")
CANDIDATES = {
    "mlp": TrainConfig(),  # the seed's defaults
    "mlp+ink": replace(BASE, arch="mlp", augment="ink", epochs=40, patience=40),
    "cnn": replace(BASE, arch="cnn", epochs=16, patience=16),
    "cnn+ink+outliers": replace(BASE, arch="cnn", augment="ink", outliers=0.2, epochs=48, patience=48),
}


def train_and_export(name: str, config: TrainConfig, data: str, out: Path, reuse: str | None) -> Path:
    from edgedigits.export import ExportConfig, export_model
    from edgedigits.train import train

    if reuse:
        run = Path(reuse)
    else:
        run = train(replace(config, data=data, out=str(out / name)), log=lambda _: None).run_dir
    if not (run / "export" / "model.onnx").is_file():
        export_model(ExportConfig(source=str(run), variants=["onnx"], data=data), log=lambda _: None)
    return run


def real_boxes(clf) -> tuple[int, int]:
    """(correct, all) over the real pages' ground-truth boxes."""
    import cv2

    from edgedigits import read_digits

    right = total = 0
    for page in sorted(REAL.glob("*.png")):
        truth = json.loads(page.with_suffix(".json").read_text())
        digits = read_digits(cv2.imread(str(page)), boxes=[t["box"] for t in truth], model=clf)
        right += sum(d.label == t["label"] for d, t in zip(digits, truth, strict=True))
        total += len(truth)
    return right, total


def camera_pages(clf, x, y, pages: int) -> float:
    rng = np.random.default_rng(11)
    rows = [run_synthetic("webcam", (scattered_frame(*_pick(x, y, rng, 10), rng) for _ in range(pages)), clf)]
    for kind in ("touching", "print_clutter", "border_band"):
        rows.append(run_synthetic(kind, (synth_pages.KINDS[kind](x, y, rng) for _ in range(pages)), clf))
    return sum(r["correct"] for r in rows) / sum(r["digits"] for r in rows)


def latency_us(clf) -> float:
    one = np.zeros((1, 28, 28), np.float32)
    for _ in range(50):
        clf.predict_proba(one)
    times = []
    for _ in range(500):
        t0 = time.perf_counter()
        clf.predict_proba(one)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data")
    parser.add_argument("--out", default="runs/choose_model")
    parser.add_argument("--only", action="append", choices=list(CANDIDATES))
    parser.add_argument("--reuse", action="append", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--bundle", action="store_true", help="bundle the best candidate")
    args = parser.parse_args()
    reuse = dict(r.split("=", 1) for r in args.reuse)
    data = full_mnist(args.data)
    from edgedigits.runtime import load_classifier

    with np.load(data, allow_pickle=False) as d:
        x_test, y_test = d["x_test"], d["y_test"]
    print(machine())
    rows = []
    for name in args.only or list(CANDIDATES):
        run = train_and_export(name, CANDIDATES[name], data, Path(args.out), reuse.get(name))
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # measure on one core
        clf = load_classifier(run / "export" / "model.onnx", threads=1)
        t10k = float((clf.predict(x_test / np.float32(255)) == y_test).mean())
        right, total = real_boxes(clf) if REAL.is_dir() else (0, 0)
        pages = camera_pages(clf, x_test[:9000], y_test[:9000], args.pages)
        row = {
            "name": name,
            "run": str(run),
            "t10k": t10k,
            "real_boxes": right / max(total, 1),
            "real_boxes_n": total,
            "camera_pages": pages,
            "latency_us": latency_us(clf),
            "params": _params(run),
        }
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        print(
            f"{name:18s} t10k {t10k:.4f}  real boxes {right}/{total}  camera pages "
            f"{row['camera_pages']:.3f}  batch-1 {row['latency_us']:.1f} us"
        )
        rows.append(row)
    best = max(rows, key=lambda r: (r["real_boxes"], r["camera_pages"], r["t10k"]))
    print(f"best: {best['name']} ({best['run']})")
    targets = []
    for row in rows:
        if row["name"] == best["name"]:
            targets += [
                target(f"bundled ({row['name']}): MNIST t10k", row["t10k"], ">=", 0.993),
                target(
                    f"bundled ({row['name']}): real digits from their boxes", row["real_boxes"], ">=", 0.98
                ),
            ]
        if row["name"] == "mlp+ink":
            targets.append(target("ink-augmented seed MLP: MNIST t10k", row["t10k"], ">=", 0.985))
    mlp = next((r for r in rows if r["name"] == "mlp"), None)
    cnn = next((r for r in rows if r["name"].startswith("cnn")), None)
    if mlp and cnn:
        targets.append(
            target(
                "CNN / MLP batch-1 latency (onnxruntime, one thread)",
                cnn["latency_us"] / mlp["latency_us"],
                "<=",
                3.0,
                "x",
            )
        )
    save(
        "choose_model",
        {"machine": machine(), "data": data, "rows": rows, "best": best["name"], "targets": targets},
    )
    (RESULTS / "choose_model_table.md").write_text(table(rows, best["name"], args.pages))
    if args.bundle:
        bundle(best, rows)


def bundle(best: dict, rows: list[dict]) -> None:
    """The best candidate's model.onnx into the package, its metadata extended by the figures
    it was chosen by (every candidate's, so `edgedigits info` shows what it beat)."""
    import onnx

    from edgedigits.assets import bundled_model
    from edgedigits.atomic import write_bytes
    from edgedigits.export.onnx import add_onnx_metadata

    data = (Path(best["run"]) / "export" / "model.onnx").read_bytes()
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    meta["chosen_by"] = json.dumps(
        {
            "script": "benchmarks/choose_model.py",
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
            "candidates": {
                r["name"]: {
                    "t10k": round(r["t10k"], 4),
                    "real_boxes": f"{round(r['real_boxes'] * r['real_boxes_n'])}/{r['real_boxes_n']}",
                    "camera_pages": round(r["camera_pages"], 4),
                }
                for r in rows
            },
        },
        sort_keys=True,
    )
    write_bytes(bundled_model(), add_onnx_metadata(data, meta))
    print(f"bundled {best['name']} as {bundled_model()}")


def table(rows, best, pages) -> str:
    """The README's table: every candidate on every measure, the bundled one marked."""
    lines = [
        f"Measured on {machine()}; camera pages: {pages} synthetic pages of each of 4 kinds.",
        "",
        "| candidate | parameters | MNIST t10k | real digits from their boxes | camera pages | "
        "batch-1 latency |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mark = " (bundled)" if r["name"] == best else ""
        lines.append(
            f"| {r['name']}{mark} | {r['params']:,} | {r['t10k']:.2%} | {r['real_boxes']:.1%} "
            f"({round(r['real_boxes'] * r['real_boxes_n'])}/{r['real_boxes_n']}) | "
            f"{r['camera_pages']:.1%} | {r['latency_us']:.0f} us |"
        )
    return "\n".join(lines) + "\n"


def _params(run: Path) -> int:
    from edgedigits.model import CNN_PARAM_COUNT, PARAM_COUNT

    arch = json.loads((run / "config.json").read_text()).get("arch", "mlp")
    return CNN_PARAM_COUNT if arch == "cnn" else PARAM_COUNT


if __name__ == "__main__":
    main()
