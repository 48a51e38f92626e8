"""Real (short) training runs on the embedded mnist-5k digits."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgedigits.keras_io import load_keras_model
from edgedigits.train import TrainConfig, train

pytestmark = pytest.mark.slow

RUN_FILES = {
    "model.keras",
    "checkpoint.keras",
    "config.json",
    "history.csv",
    "curves.png",
    "metrics.json",
    "confusion.png",
    "logs",
}


def _history(run_dir):
    with open(run_dir / "history.csv") as fh:
        return list(csv.DictReader(fh))


def test_run_directory_holds_every_artifact(trained_run):
    assert RUN_FILES <= {p.name for p in trained_run.iterdir()}
    assert not [p for p in trained_run.iterdir() if p.name.startswith(".tmp-")]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "test_loss",
        "per_class_accuracy",
        "confusion_matrix",
        "data",
        "epochs_run",
        "train_seconds",
        "device",
    ):
        assert key in metrics
    assert metrics["data"] == "mnist-5k" and metrics["device"].startswith("CPU")
    assert np.sum(metrics["confusion_matrix"]) == 500
    assert (trained_run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert any((trained_run / "logs").rglob("events.out.tfevents*"))
    config = json.loads((trained_run / "config.json").read_text())
    assert config["optimizer"] == "sgd" and config["batch_size"] == 32


def test_short_run_beats_80_percent_on_real_digits(trained_run, mnist5k):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.80
    # the saved model really is that good, measured independently of the training code
    model = load_keras_model(trained_run / "model.keras")
    acc = (np.asarray(model(mnist5k.x_test)).argmax(1) == mnist5k.y_test).mean()
    assert acc == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_model_is_the_best_checkpoint(trained_run, mnist5k):
    rows = _history(trained_run)
    best = min(rows, key=lambda r: float(r["val_loss"]))
    model = load_keras_model(trained_run / "model.keras")
    proba = np.asarray(model(mnist5k.x_valid))
    val_loss = -np.log(np.clip(proba[np.arange(500), mnist5k.y_valid], 1e-7, 1)).mean()
    assert val_loss == pytest.approx(float(best["val_loss"]), rel=1e-3)


def test_resume_continues_and_extends_history(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = _history(run)
    result = train(TrainConfig(epochs=2), resume=run, log=lambda _: None)
    after = _history(run)
    assert result.run_dir == run
    assert len(after) == len(before) + 2
    assert [int(r["epoch"]) for r in after] == list(range(1, len(after) + 1))
    assert after[: len(before)] == before
    # resuming starts from the checkpoint, so the first new epoch is already well trained
    assert float(after[len(before)]["val_accuracy"]) > 0.8
    assert result.metrics["epochs_run"] == len(after)


def test_same_seed_same_weights_on_cpu(tmp_path):
    weights = []
    for name in ("a", "b"):
        result = train(
            TrainConfig(data="mnist-5k", epochs=2, seed=7, out=str(tmp_path / name)), log=lambda _: None
        )
        weights.append(load_keras_model(result.run_dir / "model.keras").get_weights())
    for w1, w2 in zip(*weights, strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_ctrl_c_leaves_a_usable_run(tmp_path):
    seen = []

    def log(line):
        seen.append(line)
        if line.startswith("epoch   3"):
            raise KeyboardInterrupt

    result = train(TrainConfig(data="mnist-5k", epochs=30, out=str(tmp_path)), log=log)
    assert result.interrupted
    assert len(_history(result.run_dir)) == 3
    assert RUN_FILES <= {p.name for p in result.run_dir.iterdir()}
    assert result.metrics["test_accuracy"] > 0.5
    load_keras_model(result.run_dir / "model.keras")


def test_gpu_requested_without_gpu_is_a_clear_error(tmp_path):
    from edgedigits.errors import EdgeDigitsError

    with pytest.raises(EdgeDigitsError, match="sees no GPU"):
        train(TrainConfig(data="mnist-5k", epochs=1, out=str(tmp_path), device="gpu"))


@pytest.mark.parametrize("damage", ["history", "config"])
def test_resume_of_a_corrupt_run_is_one_line(trained_run, tmp_path, damage):
    """A history.csv holding a non-number, or a config.json with batch_size 0: one line naming
    the file, and the run folder untouched."""
    import json
    import shutil

    from .conftest import assert_one_line_error, run_cli

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    if damage == "history":
        text = (run / "history.csv").read_text().splitlines()
        text[2] = "2,oops,0.9,0.3,0.9,1.0"
        (run / "history.csv").write_text("\n".join(text) + "\n")
    else:
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "batch_size": 0}))
    before = {p.name: p.stat().st_mtime for p in run.iterdir()}
    assert_one_line_error(
        run_cli("train", "--resume", str(run), "--epochs", "1"),
        "history.csv" if damage == "history" else "config.json",
    )
    assert {p.name: p.stat().st_mtime for p in run.iterdir()} == before


def test_init_fine_tunes_from_a_trained_model(trained_run, tmp_path):
    """--init starts from the model's weights (its first epoch is already well trained, at a
    small learning rate) and refuses a model of another architecture in one line."""
    from edgedigits.errors import EdgeDigitsError

    source = trained_run / "model.keras"
    result = train(
        TrainConfig(
            data="mnist-5k", epochs=1, init=str(source), learning_rate=0.001, out=str(tmp_path / "ft")
        ),
        log=lambda _: None,
    )
    before = json.loads((trained_run / "metrics.json").read_text())["test_accuracy"]
    assert result.metrics["test_accuracy"] >= before - 0.02
    fresh = train(
        TrainConfig(data="mnist-5k", epochs=1, learning_rate=0.001, out=str(tmp_path / "fresh")),
        log=lambda _: None,
    )
    assert result.metrics["test_accuracy"] > fresh.metrics["test_accuracy"] + 0.1
    with pytest.raises(
        EdgeDigitsError,
        match="a edgedigits_mlp model, not arch cnn.s edgedigits_cnn; pass the arch it was trained with",
    ):
        train(
            TrainConfig(data="mnist-5k", epochs=1, arch="cnn", init=str(source), out=str(tmp_path / "x")),
            log=lambda _: None,
        )
