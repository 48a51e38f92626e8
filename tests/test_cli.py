"""Exit codes and messages: 0 success, 1 error (one line, no traceback), 2 usage."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgedigits.cli import main

from .conftest import assert_one_line_error, run_cli


def test_help_and_version(capsys):
    from edgedigits import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "eval", "export", "info", "camera", "bench", "pipeline"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["camera", "--help"])
    assert "--min-confidence" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "0"],
        ["train", "--optimizer", "rmsprop"],
        ["train", "--bogus"],
        ["train", "--batch-size", "many"],
        ["nosuchcommand"],
        [],
        ["export", "runs/x", "--format", "coreml"],
        ["export", "runs/x", "--quantize", "int4"],
        ["camera", "--backend", "keras"],
        ["camera", "--max-frames", "0"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_missing_data_file_is_one_line():
    proc = run_cli("train", "--data", "/nope/mnist.npz", "--out", "/tmp/edgedigits-test-runs")
    assert_one_line_error(proc, "/nope/mnist.npz", "no such file")


def test_corrupt_data_file_is_one_line(tmp_path):
    """A real model and a data file missing its arrays: the error names the data file
    (with a missing model the test never reached the data)."""
    from edgedigits.assets import bundled_model

    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 28, 28), np.uint8))
    proc = run_cli("eval", str(bundled_model()), "--data", str(bad))
    assert_one_line_error(proc, "bad.npz")


def test_resume_without_checkpoint(tmp_path):
    proc = run_cli("train", "--resume", str(tmp_path))
    assert_one_line_error(proc, "no checkpoint.keras", "edgedigits train")


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("train", "--data", "mnist-5k", "--out", str(blocker / "runs"))
    assert_one_line_error(proc, "--out")


@pytest.mark.slow
def test_eval_of_trained_model(trained_run, capsys):
    assert main(["eval", str(trained_run / "model.keras"), "--data", "mnist-5k"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion" in out


def test_eval_is_the_library_evaluate(tmp_path, mnist5k):
    """`eval --json` writes what metrics.evaluate returns; the bundled CNN reads real MNIST digits."""
    from edgedigits.assets import bundled_model
    from edgedigits.metrics import evaluate

    report = evaluate(bundled_model(), "mnist-5k")
    assert report["accuracy"] >= 0.98 and sum(map(sum, report["confusion_matrix"])) == len(mnist5k.y_test)
    assert main(["eval", str(bundled_model()), "--data", "mnist-5k", "--json", str(tmp_path / "r.json")]) == 0
    written = json.loads((tmp_path / "r.json").read_text())
    assert (
        written["accuracy"] == report["accuracy"]
        and written["confusion_matrix"] == report["confusion_matrix"]
    )


def test_output_into_a_closed_pipe_is_quiet():
    from edgedigits.camera.loop import bundled_model

    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedigits.cli", "info", str(bundled_model())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # as `| head -0` would
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_info_without_a_path_describes_the_bundled_model(capsys):
    from edgedigits.assets import bundled_model

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(bundled_model())) and "architecture" in out and "test_accuracy" in out


def test_a_full_disk_is_one_line_naming_the_path(tmp_path):
    """ENOSPC (simulated at the write) ends in one line with the path and the cause."""
    from edgedigits.assets import bundled_model

    script = "\n".join(
        [
            "import errno, edgedigits.atomic as a, edgedigits.cli as c",
            "def full(path, data):",
            "    raise OSError(errno.ENOSPC, 'No space left on device', str(path))",
            "a.write_bytes = full",
            f"raise SystemExit(c.main(['eval', {str(bundled_model())!r}, '--data', 'mnist-5k', "
            f"'--json', {str(tmp_path / 'r.json')!r}]))",
        ]
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "r.json: No space left on device" in line


def _with_a_full_disk(patch: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process where `patch` (Python) makes a write fail with ENOSPC."""
    script = "\n".join(
        ["import errno, pathlib, edgedigits.cli as c", patch, f"raise SystemExit(c.main({argv!r}))"]
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line(tmp_path):
    """The disk fills when the first checkpoint is saved: one line naming the file and the cause."""
    patch = "\n".join(
        [
            "from edgedigits._tf import import_keras",
            "keras = import_keras('the test')",
            "def full(self, path, *a, **k):",
            "    raise OSError(errno.ENOSPC, 'No space left on device', str(path))",
            "keras.Model.save = full",
        ]
    )
    proc = _with_a_full_disk(patch, ["train", "--data", "mnist-5k", "--epochs", "2", "--out", str(tmp_path)])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.endswith(
        "checkpoint.keras: No space left on device; free space or choose another output "
        "path (files written before are intact)"
    )
    assert f"{tmp_path}/" in line and ".tmp-" not in line


@pytest.mark.slow
def test_a_full_disk_during_export_keeps_the_previous_exports(trained_run, tmp_path):
    out = tmp_path / "exports"
    assert main(["export", str(trained_run), "--format", "onnx", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    patch = "\n".join(
        [
            "real = pathlib.Path.write_bytes",
            "def full(self, data):",
            "    if self.suffix == '.onnx' and self.name.startswith('.tmp-'):",
            "        raise OSError(errno.ENOSPC, 'No space left on device', str(self))",
            "    return real(self, data)",
            "pathlib.Path.write_bytes = full",
        ]
    )
    proc = _with_a_full_disk(patch, ["export", str(trained_run), "--format", "onnx", "--out", str(out)])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "No space left on device" in line and "model.onnx" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # parity.json included


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["eval", "__MODEL__", "--data", "mnist-5k", "--json", "__BLOCKED__/r.json"], "--json"),
        (["bench", "--markdown", "__BLOCKED__/b.md", "--batch-sizes", "1"], "--markdown"),
        (
            ["camera", "--source", "demo", "--headless", "--output-jsonl", "__BLOCKED__/c.jsonl"],
            "--output-jsonl",
        ),
    ],
)
def test_output_paths_are_checked_before_the_work(tmp_path, argv, flag):
    """An output under a path that cannot be a folder fails at once, in one line naming the flag."""
    from edgedigits.assets import bundled_model

    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    argv = [
        str(bundled_model()) if a == "__MODEL__" else a.replace("__BLOCKED__", str(blocker)) for a in argv
    ]
    proc = run_cli(*argv, timeout=30)
    assert_one_line_error(proc, flag)


def test_library_errors_name_settings_and_the_cli_names_flags():
    """The library speaks of its own keyword (`learning_rate`); the CLI of the flag typed."""
    from edgedigits.errors import OptionError
    from edgedigits.train import TrainConfig

    with pytest.raises(OptionError, match=r"^shift must be 0-8 pixels, got 9$"):
        TrainConfig(shift=9).validate()
    proc = run_cli("train", "--data", "mnist-5k", "--shift", "9")
    assert_one_line_error(proc, "--shift must be 0-8 pixels, got 9")


def test_slivers_must_be_a_share_of_the_batch():
    from edgedigits.errors import OptionError
    from edgedigits.train import TrainConfig

    with pytest.raises(OptionError, match=r"^slivers must be within 0-1, got 1.5$"):
        TrainConfig(slivers=1.5).validate()
    proc = run_cli("train", "--data", "mnist-5k", "--slivers", "1.5")
    assert_one_line_error(proc, "--slivers must be within 0-1, got 1.5")


def test_option_errors_keep_braces_that_are_not_placeholders():
    """A path or a JSON example in the message stays as written; only {0}, {1}... are names."""
    from edgedigits.errors import OptionError

    error = OptionError("out", '/tmp/{a}: see {0} and {"task": 1}', "data_dir")
    assert str(error) == 'out /tmp/{a}: see data_dir and {"task": 1}'
    assert error.for_cli() == '--out /tmp/{a}: see --data-dir and {"task": 1}'
