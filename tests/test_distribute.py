"""train --strategy: tf.distribute on a machine without GPUs. Each check runs in a fresh
process that splits the CPU into two logical devices (TensorFlow allows that only before it
initialises), or in two processes that form a multi-worker cluster on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from edgedigits.errors import EdgeDigitsError
from tests.conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def _python(code: str, timeout: float = 300, env: dict | None = None) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["mlp", "cnn"])
def test_a_mirrored_step_equals_a_one_device_step(path):
    """30 steps on 2 replicas of 32 images each leave the same weights as 30 steps on one
    device with the same 64-image batches: both replicas' slices count, gradients are summed
    once, the loss is not scaled twice. The seed MLP throughout (the CNN's dropout draws
    differ per replica); `path` picks the epoch loop: mlp's XLA-compiled one, or cnn's
    graph step."""
    result = _python(f"""
        import json, numpy as np
        from edgedigits.distribute import make_strategy, split_cpu
        split_cpu(2)
        import keras, tensorflow as tf
        from edgedigits.data import load_dataset
        from edgedigits.model import build_model, compile_model
        from edgedigits.train import _epoch_function
        d = load_dataset("mnist-5k")
        x, y = tf.constant(d.x_train), tf.constant(d.y_train.astype(np.int32))
        batches = np.random.default_rng(0).permutation(4000)[:64 * 30].reshape(30, 64).astype(np.int32)
        out = {{}}
        for name in ("one", "mirrored"):
            dist = make_strategy(name)
            keras.utils.set_random_seed(0)
            with dist.strategy.scope():
                model = compile_model(build_model("mlp"), "sgd", None, None)
            start = [w.numpy().copy() for w in model.trainable_variables]
            run = _epoch_function(model, x, y, 0, "none", "{path}", 0,
                                  dist.strategy if dist.replicas > 1 else None)
            loss, hits = run(tf.constant(batches), tf.constant(0))
            weights = [w.numpy() for w in model.trainable_variables]
            out[name] = (dist.replicas, float(loss), int(hits), weights)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(out["one"][3], out["mirrored"][3]))
        moved = min(float(np.abs(a - b).max()) for a, b in zip(out["one"][3], start))
        print(json.dumps({{"replicas": out["mirrored"][0], "loss": [out["one"][1], out["mirrored"][1]],
                          "hits": [out["one"][2], out["mirrored"][2]], "diff": diff, "moved": moved}}))
    """)
    assert result["replicas"] == 2
    assert result["hits"][0] == result["hits"][1]
    assert result["loss"][1] == pytest.approx(result["loss"][0], rel=1e-5)
    assert result["moved"] > 0 and result["diff"] < 1e-5


def test_train_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
    """The whole `train` with --strategy mirrored (2 x 32) against one device (64): the same
    accuracy within 1 point on mnist-5k, and the run records the strategy."""
    result = _python(f"""
        import json
        from edgedigits.distribute import split_cpu
        split_cpu(2)
        from edgedigits.train import TrainConfig, train
        out = {{}}
        for name, batch in (("one", 64), ("mirrored", 32)):
            r = train(TrainConfig(data="mnist-5k", epochs=6, batch_size=batch, strategy=name,
                                  out=r"{tmp_path}/" + name), log=lambda _: None)
            out[name] = {{"acc": r.metrics["test_accuracy"], "device": r.metrics["device"],
                         "files": sorted(p.name for p in r.run_dir.iterdir())}}
        resumed = train(TrainConfig(epochs=1, strategy="mirrored"), resume=r.run_dir, log=lambda _: None)
        out["resumed_epochs"] = resumed.metrics["epochs_run"]
        print(json.dumps(out))
    """)
    one, mirrored = result["one"], result["mirrored"]
    assert "mirrored over 2 device(s)" in mirrored["device"]
    assert abs(one["acc"] - mirrored["acc"]) <= 0.01 and mirrored["acc"] > 0.85
    assert {"model.keras", "checkpoint.keras", "metrics.json", "history.csv"} <= set(mirrored["files"])
    assert result["resumed_epochs"] == 7  # --resume under the strategy: one epoch more


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multiworker_on_localhost_trains_like_one_device(tmp_path):
    """Two worker processes from TF_CONFIG (as a cluster of machines would run): one run
    directory, written by worker 0, with the same history as one device on the global batch."""
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edgedigits.cli",
                    "train",
                    "--data",
                    "mnist-5k",
                    "--epochs",
                    "3",
                    "--strategy",
                    "multiworker",
                    "--out",
                    str(tmp_path / "multi"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert "2 replicas in 2 tasks" in outputs[0][0] and "worker done" in outputs[1][0]
    (run,) = (tmp_path / "multi").iterdir()
    one = run_cli(
        "train",
        "--data",
        "mnist-5k",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--strategy",
        "one",
        "--out",
        str(tmp_path / "one"),
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    (single,) = (tmp_path / "one").iterdir()
    multi_history = (run / "history.csv").read_text().splitlines()
    one_history = (single / "history.csv").read_text().splitlines()
    for a, b in zip(multi_history[1:], one_history[1:], strict=True):  # all but the seconds column
        assert [float(v) for v in a.split(",")[:5]] == pytest.approx(
            [float(v) for v in b.split(",")[:5]], abs=1e-4
        )


@pytest.mark.parametrize(
    "tf_config, needle",
    [
        (None, "needs TF_CONFIG"),
        ("{not json", "TF_CONFIG is malformed"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
            "TF_CONFIG is malformed",
        ),
    ],
)
def test_multiworker_without_a_valid_tf_config_is_one_line(tf_config, needle):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    proc = run_cli("train", "--data", "mnist-5k", "--epochs", "1", "--strategy", "multiworker", env=env)
    assert_one_line_error(proc, needle)


def test_unknown_devices_are_named(monkeypatch):
    from edgedigits.distribute import make_strategy

    with pytest.raises(EdgeDigitsError, match="^devices GPU:7: TensorFlow has no such device"):
        make_strategy("mirrored", "GPU:7")
    with pytest.raises(EdgeDigitsError, match="^strategy must be one of"):
        make_strategy("ring", "")
