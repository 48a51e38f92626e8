"""The pipeline end to end on the embedded digits (short training)."""

from __future__ import annotations

import json

import pytest

from edgedigits.pipeline import PipelineConfig, run_pipeline

pytestmark = pytest.mark.slow


def test_pipeline_leaves_verified_artifacts_and_a_report(tmp_path):
    lines = []
    run = run_pipeline(
        PipelineConfig(data="mnist-5k", out=str(tmp_path), epochs=3, bench_seconds=0.05, demo_frames=20),
        log=lines.append,
    )
    parity = json.loads((run / "export" / "parity.json").read_text())
    assert len(parity["rows"]) == 5 and all(r["passed"] for r in parity["rows"])
    bench = json.loads((run / "bench.json").read_text())
    assert {"onnx", "tflite", "keras.predict"} <= {r["backend"] for r in bench["rows"]}
    demo = (run / "camera" / "demo.jsonl").read_text().splitlines()
    assert len(demo) == 20 and json.loads(demo[0])["digits"]
    for name in ("demo_annotated.mp4", "demo_frame.png"):
        assert (run / "camera" / name).stat().st_size > 0
    report = (run / "report.md").read_text()
    for needle in ("## Training", "model_int8.onnx", "| onnx.bare |", "![demo frame]", "20 frames"):
        assert needle in report
    for picture in ("curves.png", "confusion.png", "bench.png"):
        assert f"]({picture})" in report and (run / picture).exists()
    assert any(line.startswith("report: ") for line in lines)
