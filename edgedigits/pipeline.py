"""From nothing to verified edge artifacts in one command.

train -> export every format (parity-checked) -> bench -> camera on the demo clip
(headless, annotated video) -> report.md with its pictures, all in the run directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedigits import atomic


@dataclass
class PipelineConfig:
    data: str = "mnist"  # as for train; offline, "mnist" falls back to mnist-5k
    out: str = "runs"  # parent of the run directory
    epochs: int = 30
    seed: int = 0
    bench_seconds: float = 0.2  # per measurement; `edgedigits bench` for the full grid
    demo_frames: int = 90


def run_pipeline(config: PipelineConfig, log: Callable[[str], None] = print) -> Path:
    """Run every stage; return the run directory holding report.md.

    Raises:
        EdgeDigitsError: any stage's error (ParityError when an export disagrees).
    """
    from edgedigits.bench import BenchConfig, run_bench, write_outputs
    from edgedigits.camera.loop import CameraConfig, run_camera
    from edgedigits.export import ExportConfig, export_model
    from edgedigits.train import TrainConfig, train

    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        timings[name] = time.perf_counter()
        log(f"== {name}")

    stage("train")
    result = train(
        TrainConfig(data=config.data, epochs=config.epochs, seed=config.seed, out=config.out), log=log
    )
    run_dir = result.run_dir
    stage("export + parity")
    rows = export_model(ExportConfig(source=str(run_dir)), log=log)
    stage("bench")
    report = run_bench(
        BenchConfig(model_dir=str(run_dir), batch_sizes=[1, 1024], threads=[1], seconds=config.bench_seconds)
    )
    write_outputs(report, str(run_dir / "bench.json"), str(run_dir / "bench.md"), str(run_dir / "bench.png"))
    stage("camera demo")
    camera_dir = run_dir / "camera"
    camera_dir.mkdir(exist_ok=True)
    summary = run_camera(
        CameraConfig(
            model=str(run_dir / "export" / "model.onnx"),
            source="demo",
            headless=True,
            output_jsonl=str(camera_dir / "demo.jsonl"),
            output_video=str(camera_dir / "demo_annotated.mp4"),
            max_frames=config.demo_frames,
        ),
        log=log,
    )
    _save_screenshot(run_dir / "export" / "model.onnx", camera_dir / "demo_frame.png")
    timings["end"] = time.perf_counter()
    seconds = {
        name: round(end - start, 1)
        for (name, start), end in zip(timings.items(), list(timings.values())[1:], strict=False)
    }
    atomic.write_text(
        run_dir / "report.md",
        _report(run_dir, result.metrics, rows, report, summary, seconds, time.perf_counter() - started),
    )
    log(f"report: {run_dir / 'report.md'} ({time.perf_counter() - started:.0f} s in all)")
    return run_dir


def _save_screenshot(model: Path, path: Path, frames: int = 30) -> None:
    """The overlay on a demo frame, as a PNG for the report and README. Its FPS is the
    wall-clock rate over `frames` headless frames (capture included), as the loop shows it."""
    import cv2

    from edgedigits.camera.loop import CameraConfig, Tracker, draw_overlay, timed_frame
    from edgedigits.camera.synth import demo_frames
    from edgedigits.runtime import load_classifier

    classifier, tracker = load_classifier(model), Tracker()
    clip = demo_frames(frames)
    started = time.perf_counter()
    for _ in range(frames):
        t0 = time.perf_counter()
        frame, _ = next(clip)  # the demo renders each frame: its "capture"
        result = timed_frame(frame, classifier, tracker, CameraConfig().min_confidence, started=t0)
    fps = frames / (time.perf_counter() - started)
    ok, png = cv2.imencode(".png", draw_overlay(frame, result, fps=fps))
    if ok:
        atomic.write_bytes(path, png.tobytes())


def _report(
    run_dir: Path,
    metrics: dict[str, Any],
    rows: list,
    bench: dict[str, Any],
    camera: dict[str, Any],
    seconds: dict[str, float],
    total: float,
) -> str:
    from edgedigits.bench import to_markdown
    from edgedigits.export.parity import format_table

    demo = [json.loads(line) for line in (run_dir / "camera" / "demo.jsonl").read_text().splitlines()]
    numbers = [n["value"] for r in demo for n in r["numbers"] if len(n["value"]) > 1]
    common = max(set(numbers), key=numbers.count) if numbers else "-"
    return "\n".join(
        [
            f"# edgedigits pipeline: {run_dir.name}",
            "",
            f"Data: {metrics['data']} {metrics['data_sizes']}; device {metrics['device']}; "
            f"{total:.0f} s in all ({', '.join(f'{k} {v} s' for k, v in seconds.items())}).",
            "",
            "## Training",
            "",
            f"Test accuracy **{metrics['test_accuracy']:.2%}** after {metrics['epochs_run']} epochs "
            f"(best epoch {metrics['best_epoch']}, {metrics['train_seconds']:.1f} s).",
            "",
            "![curves](curves.png) ![confusion](confusion.png)",
            "",
            "## Exports and parity against Keras (whole test split)",
            "",
            "```",
            format_table(rows),
            "```",
            "",
            "## Latency",
            "",
            to_markdown(bench),
            "![bench](bench.png)",
            "",
            "## Camera on the demo clip",
            "",
            f"{camera['frames']} frames, headless; most frequent number read: **{common}** "
            f"({numbers.count(common)} frames). Annotated video: `camera/demo_annotated.mp4`, "
            "per-frame JSON: `camera/demo.jsonl`.",
            "",
            "![demo frame](camera/demo_frame.png)",
            "",
        ]
    )
