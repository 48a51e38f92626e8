"""Every export agrees with the Keras model on real digits (parametrized over the registry)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedigits.errors import EdgeDigitsError, ModelError
from edgedigits.export import EXPORTERS, ExportConfig, export_model, select_variants
from edgedigits.export.parity import TOLERANCES
from edgedigits.keras_io import load_keras_model
from edgedigits.metadata import read_metadata, sha256
from edgedigits.runtime import load_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def trained_any(request):
    """Each architecture's run: every export rule holds for both."""
    return request.getfixturevalue("trained_run" if request.param == "mlp" else "trained_cnn_run")


@pytest.fixture(scope="module")
def exported(trained_any):
    rows = export_model(ExportConfig(source=str(trained_any)), log=lambda _: None)
    return trained_any / "export", {r.file: r for r in rows}


def test_all_writes_every_variant_and_report(exported):
    out, _ = exported
    names = {p.name for p in out.iterdir()}
    assert names == {
        "model.onnx",
        "model_int8.onnx",
        "model.tflite",
        "model_fp16.tflite",
        "model_int8.tflite",
        "parity.json",
    }


@pytest.mark.parametrize("key", list(EXPORTERS))
def test_export_agrees_with_keras_on_real_digits(exported, trained_any, mnist5k, key):
    """Independent re-check of parity: reload the file, compare with Keras ourselves."""
    out, rows = exported
    variant = EXPORTERS[key]
    keras_p = np.asarray(load_keras_model(trained_any / "model.keras")(mnist5k.x_test))
    export_p = load_classifier(out / variant.filename).predict_proba(mnist5k.x_test)
    assert export_p.shape == (500, 10) and export_p.dtype == np.float32
    agree = (export_p.argmax(1) == keras_p.argmax(1)).mean()
    drop = (keras_p.argmax(1) == mnist5k.y_test).mean() - (export_p.argmax(1) == mnist5k.y_test).mean()
    tol = TOLERANCES[variant.quantization]
    if "max_abs_diff" in tol:
        assert np.abs(export_p - keras_p).max() <= tol["max_abs_diff"]
    if "min_agreement" in tol:
        assert agree >= tol["min_agreement"]
    if "max_accuracy_drop" in tol:
        assert drop <= tol["max_accuracy_drop"]
    assert rows[variant.filename].passed


def test_parity_json_matches_table(exported):
    out, rows = exported
    report = json.loads((out / "parity.json").read_text())
    assert report["data"] == "mnist-5k" and report["n_test"] == 500
    assert {r["file"] for r in report["rows"]} == set(rows)
    assert all(r["passed"] for r in report["rows"])


def test_onnx_io_contract(exported):
    import onnx

    proto = onnx.load(str(exported[0] / "model.onnx"))
    onnx.checker.check_model(proto)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "image" and out.name == "probabilities"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 28, 28]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 10]
    assert any(op.version == 17 for op in proto.opset_import if op.domain in ("", "ai.onnx"))


def test_tflite_batch_is_resizable(exported, mnist5k):
    clf = load_classifier(exported[0] / "model.tflite")
    for n in (1, 7, 64):
        assert clf.predict_proba(mnist5k.x_test[:n]).shape == (n, 10)


def test_int8_onnx_is_much_smaller(exported):
    """Weights shrink 4x; the fixed part (graph, metadata, self-check labels) weighs more in
    the 98k-parameter CNN (3.3x) than in the 267k-parameter MLP (3.8x)."""
    out, _ = exported
    assert (out / "model.onnx").stat().st_size / (out / "model_int8.onnx").stat().st_size >= 3.0


@pytest.mark.parametrize("key", list(EXPORTERS))
def test_metadata_in_every_file(exported, trained_any, key):
    variant = EXPORTERS[key]
    meta = read_metadata(exported[0] / variant.filename)
    config = json.loads((trained_any / "config.json").read_text())
    assert meta["architecture"] == config["arch"]
    assert json.loads(meta["training"])["augment"] == config["augment"]
    assert json.loads(meta["labels"]) == [str(d) for d in range(10)]
    assert "28, 28" in meta["preprocessing"] and "[0, 1]" in meta["preprocessing"]
    assert meta["source_sha256"] == sha256(trained_any / "model.keras")
    assert meta["quantization"] == variant.quantization
    assert meta["training_data"] == "mnist-5k"
    assert float(meta["test_accuracy"]) > 0.8
    assert meta["edgedigits_version"] and meta["created"].startswith("20")


def test_opset_is_honoured(trained_run, tmp_path):
    import onnx

    export_model(
        ExportConfig(source=str(trained_run / "model.keras"), variants=["onnx"], opset=13, out=str(tmp_path)),
        log=lambda _: None,
    )
    proto = onnx.load(str(tmp_path / "model.onnx"))
    assert [op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")] == [13]


def test_failed_parity_keeps_previous_file(trained_run, tmp_path, monkeypatch):
    from edgedigits.export import parity

    export_model(
        ExportConfig(source=str(trained_run), variants=["onnx"], out=str(tmp_path)), log=lambda _: None
    )
    good = (tmp_path / "model.onnx").read_bytes()
    monkeypatch.setitem(parity.TOLERANCES, "none", {"max_abs_diff": 0.0, "min_agreement": 1.0})
    with pytest.raises(EdgeDigitsError, match="disagreed") as error:
        export_model(
            ExportConfig(source=str(trained_run), variants=["onnx"], out=str(tmp_path)), log=lambda _: None
        )
    assert (tmp_path / "model.onnx").read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # the failed file is kept beside the good one, under the name the error gives, and
    # parity.json describes both files on disk
    kept = tmp_path / "model.failed.onnx"
    assert str(kept) in str(error.value) and load_classifier(kept).predict_proba(np.zeros((1, 28, 28))).shape
    rows = {r["file"]: r for r in json.loads((tmp_path / "parity.json").read_text())["rows"]}
    assert rows["model.failed.onnx"]["passed"] is False
    assert rows["model.onnx"]["passed"] is True and rows["model.onnx"]["from_earlier_export"] is True


def test_select_variants():
    assert select_variants("all", None) == list(EXPORTERS)
    assert select_variants("onnx", None) == ["onnx"]
    assert select_variants("tflite", "fp16") == ["tflite_fp16"]
    assert select_variants("all", "int8") == ["onnx_int8", "tflite_int8"]
    assert select_variants("triton", None) == ["onnx"]
    assert select_variants("triton", "int8") == ["onnx_int8"]
    with pytest.raises(
        EdgeDigitsError, match="^format onnx has no fp16 variant; it offers quantize int8 or none$"
    ):
        select_variants("onnx", "fp16")
    with pytest.raises(EdgeDigitsError, match="no fp16 variant"):
        select_variants("triton", "fp16")
    with pytest.raises(EdgeDigitsError, match="unknown format"):
        select_variants("coreml", None)


def test_model_of_another_input_shape_is_refused(tmp_path):
    import keras

    other = keras.Sequential([keras.Input((32, 32)), keras.layers.Flatten(), keras.layers.Dense(10)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ModelError, match=r"needs \[batch, 28, 28\]"):
        export_model(ExportConfig(source=str(tmp_path / "other.keras"), out=str(tmp_path / "o")))


def test_unwritable_out(trained_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgeDigitsError, match="not writable"):
        export_model(ExportConfig(source=str(trained_run), out=str(blocker / "sub")))


@pytest.mark.parametrize("name", ["model.onnx", "model_int8.tflite"])
def test_eval_accepts_exports(exported, capsys, name):
    from edgedigits.cli import main

    out, rows = exported
    assert main(["eval", str(out / name), "--data", "mnist-5k"]) == 0
    text = capsys.readouterr().out
    assert f"accuracy {rows[name].accuracy:.4%}" in text  # the same figure parity measured


def test_any_28x28_classifier_exports_and_runs(tmp_path, mnist5k):
    """A user's own Keras model taking [N, 28, 28, 1]: every export passes parity and takes
    the canonical [N, 28, 28]; a rank-4 ONNX written by someone else also runs."""
    import keras
    import tf2onnx

    from edgedigits.camera.loop import process_frame
    from edgedigits.camera.synth import demo_digits, scattered_frame

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(mnist5k.x_train[..., None], mnist5k.y_train, epochs=2, verbose=0)
    source = tmp_path / "mine.keras"
    model.save(source)
    rows = export_model(
        ExportConfig(source=str(source), data="mnist-5k", out=str(tmp_path / "out")), log=lambda _: None
    )
    assert len(rows) == len(EXPORTERS) and all(r.passed for r in rows)
    keras_clf = load_classifier(source)  # the .keras itself, through the runtime
    assert (keras_clf.predict(mnist5k.x_test) == mnist5k.y_test).mean() > 0.85
    for key, variant in EXPORTERS.items():
        clf = load_classifier(tmp_path / "out" / variant.filename)
        assert clf.rank == 3, key  # exports are canonical
    import tensorflow as tf

    spec = (tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_function(tf.function(lambda image: model(image)), input_signature=spec)
    (tmp_path / "rank4.onnx").write_bytes(proto.SerializeToString())
    foreign = load_classifier(tmp_path / "rank4.onnx")
    assert foreign.rank == 4
    np.testing.assert_allclose(
        foreign.predict_proba(mnist5k.x_test[:64]), keras_clf.predict_proba(mnist5k.x_test[:64]), atol=1e-5
    )
    x, y = demo_digits()
    frame, _ = scattered_frame(x[:6], y[:6], np.random.default_rng(0))
    assert len(process_frame(frame, foreign, None, 0.0)["digits"]) >= 5  # the camera takes it too


def test_an_interrupted_export_leaves_a_report_that_matches_its_files(trained_run, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) after the first variant: parity.json describes model.onnx as this
    run made it, and the other files still on disk by the earlier export's rows."""
    import edgedigits.export as export

    out = tmp_path / "export"
    export_model(
        ExportConfig(source=str(trained_run), variants=["onnx", "tflite"], out=str(out)), log=lambda _: None
    )
    real = export._try_export

    def interrupt_on_tflite(key, *args):
        if key == "tflite":
            raise KeyboardInterrupt
        return real(key, *args)

    monkeypatch.setattr(export, "_try_export", interrupt_on_tflite)
    with pytest.raises(KeyboardInterrupt):
        export_model(
            ExportConfig(source=str(trained_run), variants=["onnx", "tflite"], out=str(out)),
            log=lambda _: None,
        )
    report = json.loads((out / "parity.json").read_text())
    rows = {r["file"]: r for r in report["rows"]}
    assert set(rows) == {"model.onnx", "model.tflite"}
    assert "from_earlier_export" not in rows["model.onnx"]  # this run's, written after it landed
    assert rows["model.tflite"]["from_earlier_export"] is True  # untouched file, earlier row
    assert read_metadata(out / "model.onnx")["created"] == report["created"]
    assert not list(out.glob(".tmp-*"))
