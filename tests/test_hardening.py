"""Hardening: fuzzed model/data files, hostile frames, kill -9 mid-write, concurrent exports,
a video that stops mid-stream. Every failure must be one line, with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
import zlib

import cv2
import numpy as np
import pytest

from edgedigits.camera.loop import bundled_model, process_frame
from edgedigits.data import load_dataset, read_idx
from edgedigits.errors import DataError, ModelError
from edgedigits.export import EXPORTERS
from edgedigits.keras_io import load_keras_model
from edgedigits.runtime import load_classifier

from .conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def mutations(data: bytes, rng: np.random.Generator, n: int):
    """Truncations at random offsets, random bit flips, and an empty file."""
    yield "empty", b""
    for i in range(n):
        b = bytearray(data)
        if i % 2 == 0:
            yield "truncated", bytes(b[: int(rng.integers(1, len(b)))])
        else:
            for _ in range(int(rng.integers(1, 16))):
                b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
            yield "flipped", bytes(b)


def fuzz(source, tmp_path, rng, n, load, error):
    """Write each mutation of `source` and load it: yield (kind, path, loaded or None).

    A rejection must be `error` with a one-line message; anything else fails the test.
    """
    for i, (kind, data) in enumerate(mutations(source.read_bytes(), rng, n)):
        path = tmp_path / f"{i}-{source.name}"
        path.write_bytes(data)
        try:
            loaded = load(path)
        except error as exc:
            assert "\n" not in str(exc), (kind, exc)
            loaded = None
        yield kind, path, loaded


@pytest.fixture(scope="module")
def exports(trained_run):
    from edgedigits.export import ExportConfig, export_model

    export_model(ExportConfig(source=str(trained_run)), log=lambda _: None)
    return trained_run / "export"


@pytest.mark.parametrize("name", [v.filename for v in EXPORTERS.values()])
def test_corrupted_exports_are_rejected_or_harmless(exports, tmp_path, mnist5k, name):
    """Each mutation either fails with a one-line ModelError, or (a flip that touched no
    weight that matters) the model still agrees with the original on real digits."""
    original = load_classifier(exports / name).predict(mnist5k.x_test)
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # hash() differs per process
    outcomes = {"rejected": 0, "harmless": 0}
    for kind, path, clf in fuzz(exports / name, tmp_path, rng, 30, load_classifier, ModelError):
        if clf is None:
            outcomes["rejected"] += 1
            continue
        assert kind == "flipped", f"a {kind} file loaded"  # truncated/empty: always rejected
        agree = (clf.predict(mnist5k.x_test) == original).mean()
        assert agree >= 0.99, f"{path.name} loaded but changed predictions ({agree:.2%})"
        outcomes["harmless"] += 1
    print(f"{name}: 31 cases, {outcomes}")


def test_corrupted_keras_models_are_rejected(trained_run, tmp_path):
    rng = np.random.default_rng(0)
    cases = list(fuzz(trained_run / "model.keras", tmp_path, rng, 20, load_keras_model, ModelError))
    for kind, path, model in cases:
        if model is not None:  # a flip the zip CRC did not cover: the archive must be intact
            assert kind == "flipped", f"a {kind} .keras file loaded"
            with zipfile.ZipFile(path) as zf:
                assert zf.testzip() is None
    refused = [kind for kind, _, model in cases if model is None]
    assert refused.count("truncated") + refused.count("empty") == 11  # every one of them
    assert "flipped" in {kind for kind, _, _ in cases}


@pytest.mark.parametrize(
    "command,suffix",
    [
        (c, s)
        for c in ("eval", "info", "camera")
        for s in (".onnx", ".tflite", ".keras")
        if (c, s) != ("camera", ".keras")  # the camera runs .onnx/.tflite only
    ],
)
def test_every_command_gives_one_line_for_bad_models(tmp_path, command, suffix):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    for target in (bad, folder, tmp_path / f"missing{suffix}"):
        args = {
            "eval": ["eval", str(target), "--data", "mnist-5k"],
            "info": ["info", str(target)],
            "camera": ["camera", "--model", str(target), "--source", "demo", "--headless"],
        }[command]
        assert_one_line_error(run_cli(*args))


def test_model_of_other_output_count(tmp_path):
    import keras

    other = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(5)])
    other.save(tmp_path / "five.keras")
    assert_one_line_error(
        run_cli("eval", str(tmp_path / "five.keras"), "--data", "mnist-5k"), "needs [batch, 10]"
    )


def test_unsupported_opset_is_one_line(tmp_path):
    import onnx

    proto = onnx.load(str(bundled_model()))
    for op in proto.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = 99
    path = tmp_path / "future.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_classifier(path)
    assert_one_line_error(run_cli("info", str(path)))


# ----------------------------------------------------------------------------- frames


def _text_page():
    page = np.full((480, 640, 3), 235, np.uint8)
    for row in range(12):
        cv2.putText(
            page,
            "The quick brown fox 0123456789 jumps over",
            (10, 30 + row * 38),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )
    return page


FRAME_CASES = [
    (shape, channels, dtype)
    for shape in [(1, 1), (2, 3), (31, 17), (480, 640)]
    for channels in [None, 1, 3, 4]
    for dtype in [np.uint8, np.uint16, np.float32]
] + [((4096, 4096), 3, np.uint8)]


@pytest.mark.parametrize("shape,channels,dtype", FRAME_CASES)
def test_any_frame_goes_through_the_loop(shape, channels, dtype):
    clf = load_classifier(bundled_model())
    full = shape if channels is None else (*shape, channels)
    rng = np.random.default_rng(0)
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    for frame in (np.zeros(full, dtype), np.full(full, top, dtype), (rng.random(full) * top).astype(dtype)):
        result = process_frame(frame, clf, None, 0.8)
        assert result["digits"] == []  # black, white and noise hold no digits


def test_printed_text_page_does_not_crash():
    result = process_frame(_text_page(), load_classifier(bundled_model()), None, 0.8)
    assert isinstance(result["digits"], list)


# ----------------------------------------------------------------------------- data


def test_fuzzed_npz_and_idx_give_data_errors(tmp_path, raw_mnist_arrays):
    from .test_data import write_idx

    npz = tmp_path / "good.npz"
    np.savez(npz, **raw_mnist_arrays)
    idx = tmp_path / "images-idx3-ubyte"
    write_idx(idx, raw_mnist_arrays["x_test"])
    rng = np.random.default_rng(1)
    tried = 0
    for source, reader in ((npz, lambda p: load_dataset(str(p))), (idx, read_idx)):
        tried += len(list(fuzz(source, tmp_path, rng, 40, reader, DataError)))
    assert tried == 82


# ----------------------------------------------------------------------------- crashes


def _kill_at_random(args, ready, rng, cwd=None):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedigits.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )
    deadline = time.time() + 90
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(float(rng.uniform(0, 1.5)))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _no_partial_files(folder):
    finals = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    return all(p.stat().st_size > 0 for p in finals)


def test_kill_9_during_train_keeps_a_resumable_run(tmp_path):
    from edgedigits.train import TrainConfig, train

    rng = np.random.default_rng(9)
    out = tmp_path / "runs"
    for _ in range(2):
        _kill_at_random(
            ["train", "--data", "mnist-5k", "--out", str(out)],
            lambda: any(out.glob("*/checkpoint.keras")),
            rng,
        )
    for run in out.iterdir():
        if not (run / "checkpoint.keras").exists():
            continue
        assert _no_partial_files(run)
        load_keras_model(run / "checkpoint.keras")
        json.loads((run / "config.json").read_text())
        before = (run / "history.csv").read_text().splitlines()
        result = train(TrainConfig(epochs=1), resume=run, log=lambda _: None)
        assert len((run / "history.csv").read_text().splitlines()) == len(before) + 1
        assert result.metrics["test_accuracy"] > 0.8


def test_kill_9_during_export_keeps_complete_files(exports, trained_run, tmp_path):
    rng = np.random.default_rng(4)
    out = tmp_path / "export"
    run_cli("export", str(trained_run), "--out", str(out))
    for _ in range(3):
        _kill_at_random(["export", str(trained_run), "--out", str(out)], lambda: any(out.glob(".tmp-*")), rng)
        assert _no_partial_files(out)
        for f in out.glob("model*"):
            load_classifier(f)  # loads, and matches its export-time fingerprint
    assert run_cli("export", str(trained_run), "--out", str(out)).returncode == 0
    assert not list(out.glob(".tmp-*"))  # the next export swept the killed ones' orphans


def test_two_exports_into_one_folder(trained_run, tmp_path, mnist5k):
    out = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "edgedigits.cli", "export", str(trained_run), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert not list(out.glob(".tmp-*"))
    keras_pred = np.asarray(load_keras_model(trained_run / "model.keras")(mnist5k.x_test)).argmax(1)
    for f in out.glob("model*"):
        assert (load_classifier(f).predict(mnist5k.x_test) == keras_pred).mean() >= 0.99
    assert json.loads((out / "parity.json").read_text())["rows"]


def test_truncated_video_ends_cleanly(tmp_path):
    from .conftest import write_demo_clip

    path = write_demo_clip(tmp_path / "clip.avi", 20)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the stream dies midway
    out = tmp_path / "t.jsonl"
    proc = run_cli("camera", "--source", str(path), "--headless", "--output-jsonl", str(out))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(records) < 20
    assert [r["frame"] for r in records] == list(range(len(records)))


@pytest.mark.parametrize("op,value", [("Mul", 5.0), ("Mul", -1.0), ("Div", 0.0), ("Mul", float("nan"))])
def test_outputs_that_are_not_probabilities_are_refused(tmp_path, op, value):
    """A model without edgedigits metadata whose outputs are scaled, negated, infinite or NaN
    is refused at load in one line (it used to report garbage, even "Infinity", and exit 0)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(bundled_model()))
    del model.metadata_props[:]  # no fingerprint: the probability check alone must catch it
    out = model.graph.output[0]
    model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), "k"))
    model.graph.node.append(helper.make_node(op, [out.name, "k"], ["changed"]))
    out.name = "changed"
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="not probabilities"):
        load_classifier(path)
    assert_one_line_error(run_cli("info", str(path)), "not probabilities")


def test_an_unexpected_error_is_one_line_unless_debugging():
    """Any exception the library did not foresee: one line and exit 1; the traceback with
    EDGEDIGITS_DEBUG=1."""
    env = {**os.environ, "EDGEDIGITS_DEBUG": "0"}
    script = (
        "import edgedigits.cli as c, edgedigits.runtime as r\n"
        "r.load_classifier = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('boom'))\n"
        "raise SystemExit(c.main(['info']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**env, "EDGEDIGITS_DEBUG": "1"},
        timeout=60,
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_keras_zip_bombs_are_refused_before_keras_opens_them(trained_run, tmp_path):
    """A .keras with a huge, highly compressed asset: one line, nothing inflated."""
    import resource

    bomb = tmp_path / "bomb.keras"
    with (
        zipfile.ZipFile(trained_run / "model.keras") as src,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        with dst.open("assets/zeros.bin", "w") as fh:  # 300 MB that compress to ~300 KB, written
            for _ in range(300):  # in 1 MB chunks: the test's own peak memory stays low
                fh.write(bytes(1 << 20))
    assert bomb.stat().st_size < 5 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match="refused before loading"):
        load_keras_model(bomb)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100
    assert_one_line_error(run_cli("info", str(bomb)), "refused before loading")


@pytest.mark.parametrize(
    "key,value",
    [
        ("fingerprint", "[" * 100_000),
        ("fingerprint", '{"a": 1}'),
        ("fingerprint", '"text"'),
        ("quantization", "int3"),
        ("probe_labels", "x" * 50),
        ("fingerprint", "1" * 200_000),
    ],
)
def test_malformed_metadata_is_one_line(tmp_path, key, value):
    """Deep nesting, wrong types and huge values in the metadata: one ModelError line, never a
    RecursionError or TypeError traceback."""
    import onnx

    model = onnx.load(str(bundled_model()))
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="corrupt metadata"):
        load_classifier(path)
    assert_one_line_error(run_cli("info", str(path)), "corrupt metadata")
