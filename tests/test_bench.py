"""bench measures real backends on real files; pipeline is covered by its pieces' tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedigits.bench import BenchConfig, find_models, numpy_forward, run_bench, to_markdown
from edgedigits.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported_run(trained_run, tmp_path_factory):
    """A run folder of its own (model.keras + export/ with two formats): other test modules
    export more variants into the shared run, which would change what bench finds."""
    import shutil

    from edgedigits.export import ExportConfig, export_model

    run = tmp_path_factory.mktemp("bench-run")
    shutil.copy(trained_run / "model.keras", run / "model.keras")
    export_model(
        ExportConfig(source=str(run), variants=["onnx", "tflite"], data="mnist-5k"), log=lambda _: None
    )
    return run


def test_numpy_forward_matches_keras(trained_run, mnist5k):
    from edgedigits.keras_io import load_keras_model

    model = load_keras_model(trained_run / "model.keras")
    np.testing.assert_allclose(
        numpy_forward(model.get_weights())(mnist5k.x_test[:64]),
        np.asarray(model(mnist5k.x_test[:64])),
        atol=1e-5,
    )


def test_bench_report_covers_every_backend(exported_run, tmp_path):
    assert set(find_models(exported_run)) >= {"keras", "onnx", "tflite"}
    report = run_bench(
        BenchConfig(
            model_dir=str(exported_run),
            batch_sizes=[1, 64],
            threads=[1],
            seconds=0.05,
            cold_start=True,
            camera=True,
        )
    )
    backends = {r["backend"] for r in report["rows"]}
    assert backends == {"keras.predict", "keras.call", "numpy", "tflite", "onnx", "onnx.bare"}
    for r in report["rows"]:
        assert r["p50_us"] > 0 and r["p50_us"] <= r["p90_us"] <= r["p99_us"]
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["p50_us"] * 1e-6))
    # the cold start ran a real fresh process to a real prediction
    onnx_cold = report["cold_start"]["onnx"]
    assert 0 < onnx_cold["in_process_seconds"] < onnx_cold["seconds"]
    assert 10 < onnx_cold["peak_rss_mb"] < report["cold_start"]["keras"]["peak_rss_mb"]
    assert report["camera_ms"]["total"] > 0
    assert "| onnx.bare | 1 | 1 |" in to_markdown(report)


def test_bench_cli_writes_outputs(exported_run, tmp_path, capsys):
    paths = [tmp_path / n for n in ("b.json", "b.md", "b.png")]
    assert (
        main(
            [
                "bench",
                "--model-dir",
                str(exported_run / "export"),
                "--batch-sizes",
                "1",
                "--threads",
                "1",
                "--seconds",
                "0.05",
                "--no-cold-start",
                "--json",
                str(paths[0]),
                "--markdown",
                str(paths[1]),
                "--plot",
                str(paths[2]),
            ]
        )
        == 0
    )
    assert json.loads(paths[0].read_text())["rows"]
    assert paths[1].read_text().startswith("Machine:")
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    assert "| onnx | 1 | 1 |" in capsys.readouterr().out


def test_bench_of_empty_folder_is_an_error(tmp_path, capsys):
    assert main(["bench", "--model-dir", str(tmp_path)]) == 1
    assert "no model.keras or exported models" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--batch-sizes", "--threads"])
def test_bad_lists_are_usage_errors(flag):
    with pytest.raises(SystemExit) as info:
        main(["bench", flag, "1,x"])
    assert info.value.code == 2


@pytest.mark.slow
def test_bench_measures_the_cnn_from_its_own_layers(trained_cnn_run, tmp_path):
    """The CNN's rows count its own multiply-adds; the MLP-only numpy forward is skipped, saying why."""
    import shutil

    from edgedigits.export import ExportConfig, export_model

    run = tmp_path / "cnn-run"  # its own copy: other modules export more variants into the shared run
    run.mkdir()
    for name in ("model.keras", "config.json", "metrics.json"):
        shutil.copy(trained_cnn_run / name, run / name)
    export_model(ExportConfig(source=str(run), variants=["onnx", "onnx_int8"]), log=lambda _: None)
    report = run_bench(
        BenchConfig(
            model_dir=str(run), batch_sizes=[1, 32], threads=[1], seconds=0.05, cold_start=False, camera=False
        )
    )
    assert report["macs_per_image"] == 1_994_240  # 3 convolutions + 2 dense layers, per image
    names = {r["backend"] for r in report["rows"]}
    assert {"onnx", "onnx.int8", "keras.call"} <= names and "numpy" not in names
    assert "seed MLP" in report["skipped"]["numpy"]
    onnx = next(r for r in report["rows"] if r["backend"] == "onnx" and r["batch"] == 32)
    assert onnx["gflops"] == pytest.approx(2 * 1_994_240 * onnx["images_per_s"] / 1e9)


def test_rates_are_labelled_and_compared_with_the_peak_of_their_thread_count():
    from edgedigits.bench import _rate, to_markdown

    def row(backend, threads, gflops):
        return {
            "backend": backend,
            "threads": threads,
            "batch": 1024,
            "p50_us": 1.0,
            "p90_us": 1.0,
            "p99_us": 1.0,
            "images_per_s": 1.0,
            "gflops": gflops,
        }

    assert _rate(row("onnx.int8", 1, 120.0), 100.0) == "120.00 GOP/s*"
    assert _rate(row("onnx", 1, 80.0), 100.0) == "80.00"
    assert _rate(row("onnx", 1, float("nan")), 100.0) == "n/a"
    report = {
        "machine": {},
        "peak_gflops": {"1": 100.0, "2": 190.0},
        "files_kb": {},
        "macs_per_image": 1,
        "rows": [row("onnx", 1, 150.0), row("onnx", 2, 150.0)],
    }
    table = to_markdown(report)
    assert "| 150.00* |" in table and "| 150.00 |" in table and "above the float32 matmul peak" in table
