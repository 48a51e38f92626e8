"""Shared fixtures: one real mnist-5k training run reused by every test that needs a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


@pytest.fixture(scope="session")
def mnist5k():
    from edgedigits.data import load_dataset

    return load_dataset("mnist-5k")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real 12-epoch run on mnist-5k (about 10 s on 2 cores)."""
    from edgedigits.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs")
    result = train(TrainConfig(data="mnist-5k", epochs=12, out=str(out)), log=lambda _: None)
    return result.run_dir


@pytest.fixture(scope="session")
def trained_cnn_run(tmp_path_factory) -> Path:
    """A real 4-epoch CNN run on mnist-5k with ink augmentation, outliers and slivers (about
    10 s)."""
    from edgedigits.train import TrainConfig, train

    out = tmp_path_factory.mktemp("cnn_runs")
    config = TrainConfig(
        data="mnist-5k",
        epochs=4,
        arch="cnn",
        augment="ink",
        outliers=0.2,
        slivers=0.25,
        optimizer="adam",
        out=str(out),
    )
    return train(config, log=lambda _: None).run_dir


@pytest.fixture()
def raw_mnist_arrays(mnist5k):
    """Small uint8 MNIST-layout arrays made from real digits."""
    to_u8 = lambda x: np.round(x * 255).astype(np.uint8)  # noqa: E731
    return {
        "x_train": to_u8(mnist5k.x_train[:300]),
        "y_train": mnist5k.y_train[:300].copy(),
        "x_test": to_u8(mnist5k.x_test[:100]),
        "y_test": mnist5k.y_test[:100].copy(),
    }


def run_cli(*args: str, timeout: float = 120, env: dict | None = None):
    """`python -m edgedigits.cli ARGS` in a fresh process: (returncode, stdout, stderr)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "edgedigits.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_one_line_error(proc, *needles: str) -> None:
    """Exit 1, exactly one non-empty line on stderr holding every needle, no traceback."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr


def write_demo_clip(path: Path, frames: int) -> Path:
    """An MJPG .avi of the first `frames` frames of the demo clip (a video-file source)."""
    import cv2

    from edgedigits.camera.synth import demo_frames

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame, _ in demo_frames(frames):
        writer.write(frame)
    writer.release()
    return path
