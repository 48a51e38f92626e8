"""The runtime and camera import and run without TensorFlow; bad model files fail cleanly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgedigits.errors import EdgeDigitsError, ModelError
from edgedigits.runtime import check_batch, load_classifier

NO_TF = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""


def without_tensorflow(code: str, timeout: float = 120) -> str:
    """Run `code` in a fresh interpreter where importing TensorFlow/Keras fails; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", NO_TF + code], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_runtime_and_camera_import_without_tensorflow():
    assert (
        without_tensorflow(
            "import edgedigits.runtime, edgedigits.camera.loop, edgedigits.metadata, edgedigits.cli\n"
            "import edgedigits.export.parity, edgedigits.bench, edgedigits.camera.synth\n"
            "assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)\n"
            "print('ok')"
        )
        == "ok"
    )


@pytest.mark.slow
def test_onnx_runs_without_tensorflow(trained_run, tmp_path):
    from edgedigits.export import ExportConfig, export_model

    export_model(
        ExportConfig(source=str(trained_run), variants=["onnx"], out=str(tmp_path)), log=lambda _: None
    )
    assert (
        without_tensorflow(
            "import numpy as np\nfrom edgedigits.runtime import load_classifier\n"
            f"clf = load_classifier({str(tmp_path / 'model.onnx')!r}, threads=1)\n"
            "p = clf.predict_proba(np.zeros((3, 28, 28), np.float32))\n"
            "print(p.shape, bool(np.allclose(p.sum(1), 1, atol=1e-5)))"
        )
        == "(3, 10) True"
    )


@pytest.mark.slow
def test_bench_without_tensorflow_measures_the_exports(trained_run, tmp_path):
    import shutil

    from edgedigits.camera.loop import bundled_model

    shutil.copy(trained_run / "model.keras", tmp_path / "model.keras")  # present, unusable
    shutil.copy(bundled_model(), tmp_path / "model.onnx")
    assert (
        without_tensorflow(
            "from edgedigits.bench import BenchConfig, run_bench\n"
            f"r = run_bench(BenchConfig(model_dir={str(tmp_path)!r}, batch_sizes=[1], threads=[1], "
            "seconds=0.02, cold_start=False, camera=False))\n"
            "print(sorted({row['backend'] for row in r['rows']}))"
        )
        == "['onnx', 'onnx.bare']"
    )


def test_check_batch():
    assert check_batch(np.zeros((2, 28, 28), np.float64)).dtype == np.float32
    with pytest.raises(EdgeDigitsError, match=r"\[N, 28, 28\]"):
        check_batch(np.zeros((28, 28)))


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".keras"])
@pytest.mark.parametrize("content", [b"", b"garbage bytes " * 50])
def test_corrupt_model_files(tmp_path, suffix, content):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        load_classifier(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_folder_and_unknown(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_classifier(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="is a folder"):
        load_classifier(tmp_path)
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model type"):
        load_classifier(tmp_path / "m.pt")


def test_onnx_of_wrong_shape_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 32, 32])],
    )
    path = tmp_path / "other.onnx"
    # IR version 8: readable by every onnxruntime the project supports (make_model's default
    # is the newest, which older onnxruntime releases on Python 3.10 refuse to load)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    with pytest.raises(ModelError, match=r"needs \[batch, 28, 28\]"):
        load_classifier(path)


def test_onnx_results_are_not_overwritten_by_later_calls(mnist5k):
    from edgedigits.camera.loop import bundled_model

    clf = load_classifier(bundled_model())
    first = clf.predict_proba(mnist5k.x_test[:4])
    kept = first.copy()
    clf.predict_proba(mnist5k.x_test[4:8])  # same batch size: reuses the bound buffer
    np.testing.assert_array_equal(first, kept)
    assert (clf.predict(mnist5k.x_test) == mnist5k.y_test).mean() > 0.97  # real digits


def test_unavailable_provider_is_one_line():
    from edgedigits.camera.loop import bundled_model

    with pytest.raises(EdgeDigitsError, match="none of the execution providers"):
        load_classifier(bundled_model(), providers=["NoSuchExecutionProvider"])


def test_a_low_memory_session_reads_as_the_default_one(mnist5k):
    """low_memory drops onnxruntime's memory arena, not a digit of the readings."""
    from edgedigits.assets import second_model

    x = mnist5k.x_test[:300]
    plain, low = (load_classifier(second_model(), low_memory=flag).predict_proba(x) for flag in (False, True))
    np.testing.assert_allclose(low, plain, atol=1e-6)
    assert (plain.argmax(axis=1) == mnist5k.y_test[:300]).mean() >= 0.97
