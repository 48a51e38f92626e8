"""export --format triton: a model repository Triton can load, checked with Triton's own
ModelConfig protobuf against the ONNX file it holds; and the example client's requests.
No Triton server runs here: the client is tested against a stand-in that answers with the
bundled model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgedigits.contract import LABELS
from edgedigits.errors import EdgeDigitsError
from edgedigits.export import ExportConfig, export_model, select_variants
from edgedigits.export.triton import model_config
from edgedigits.keras_io import load_keras_model
from edgedigits.metadata import read_metadata
from edgedigits.runtime import load_classifier

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="the dev extra installs tritonclient[grpc]"
)
text_format = pytest.importorskip("google.protobuf.text_format")

ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: "TYPE_FP32"}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triton_client.py"


def parse(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _io(values):
    """ONNX graph inputs/outputs -> {name: (Triton type, dims after the batch dim)}."""
    out = {}
    for v in values:
        t = v.type.tensor_type
        out[v.name] = (ONNX_TO_TRITON[t.elem_type], [d.dim_value for d in t.shape.dim[1:]])
    return out


@pytest.fixture(scope="module", params=["none", "int8"])
def repository(request, trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"triton-{request.param}")
    variants = select_variants("triton", request.param)
    rows = export_model(
        ExportConfig(source=str(trained_run), variants=variants, out=str(out), triton=True),
        log=lambda _: None,
    )
    return out, rows


@pytest.mark.slow
def test_config_matches_the_onnx_it_serves(repository):
    out, rows = repository
    model_dir = out / "triton" / "edgedigits"
    config = parse(model_dir / "config.pbtxt")
    graph = onnx.load(str(model_dir / "1" / "model.onnx")).graph
    assert config.name == "edgedigits" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 0
    # the batch dimension is symbolic in the file: Triton's dims are the rest
    assert all(not v.type.tensor_type.shape.dim[0].dim_value for v in [*graph.input, *graph.output])
    wanted_in, wanted_out = _io(graph.input), _io(graph.output)

    def declared(values):
        return {v.name: (model_config_pb2.DataType.Name(v.data_type), list(v.dims)) for v in values}

    assert declared(config.input) == wanted_in and declared(config.output) == wanted_out
    (output,) = config.output
    assert (model_dir / output.label_filename).read_text().split() == LABELS
    batching = config.dynamic_batching
    assert batching.max_queue_delay_microseconds > 0
    assert list(batching.preferred_batch_size) and max(batching.preferred_batch_size) <= config.max_batch_size
    # the served file is the parity-checked export, byte for byte, and its metadata is in parameters
    exported = out / rows[0].file
    assert (model_dir / "1" / "model.onnx").read_bytes() == exported.read_bytes()
    assert rows[0].passed and json.loads((out / "parity.json").read_text())["rows"][0]["passed"]
    assert {k: v.string_value for k, v in config.parameters.items()} == read_metadata(exported)


@pytest.mark.slow
def test_served_model_reads_real_digits_like_keras(repository, trained_run, mnist5k):
    out, rows = repository
    served = load_classifier(out / "triton" / "edgedigits" / "1" / "model.onnx")
    keras_p = np.asarray(load_keras_model(trained_run / "model.keras")(mnist5k.x_test))
    agree = (served.predict_proba(mnist5k.x_test).argmax(1) == keras_p.argmax(1)).mean()
    assert agree >= (1.0 if rows[0].quantization == "none" else 0.97)


def test_any_metadata_text_parses_back_exactly():
    meta = {"source_model": 'a "quoted" \\ path\nwith a newline', "note": "é数字\t\x00", "empty": ""}
    config = text_format.Parse(model_config(meta), model_config_pb2.ModelConfig())
    assert {k: v.string_value for k, v in config.parameters.items()} == meta


def test_triton_packages_one_onnx_variant_only(tmp_path):
    with pytest.raises(EdgeDigitsError, match="exactly one ONNX variant"):
        export_model(ExportConfig(source=str(tmp_path), variants=["tflite"], triton=True))
    with pytest.raises(EdgeDigitsError, match="unknown export variant 'coreml'"):
        export_model(ExportConfig(source=str(tmp_path), variants=["coreml"]))


class _StandIn:
    """Answers Triton HTTP infer calls with the bundled model, recording each request."""

    def __init__(self):
        from edgedigits.assets import bundled_model

        self.model = load_classifier(bundled_model())
        self.requests = []

    def infer(self, model, inputs, outputs):
        (request,) = inputs
        self.requests.append(
            (model, request.name(), request.shape(), request.datatype(), [o.name() for o in outputs])
        )
        batch = np.frombuffer(request._get_binary_data(), np.float32).reshape(request.shape())
        proba = self.model.predict_proba(batch)
        return type("Result", (), {"as_numpy": lambda self, name: proba})()


def test_example_client_sends_each_frame_in_one_request(tmp_path, digits_page):
    pytest.importorskip("tritonclient.http")
    spec = importlib.util.spec_from_file_location("triton_client", EXAMPLE)
    client_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client_module)
    stand_in = _StandIn()
    path, truth = digits_page
    found = client_module.read_page(str(path), client_module.triton_classifier(stand_in), 0.5)
    assert [d["label"] for d in found] == truth
    model, name, shape, datatype, outputs = stand_in.requests[0]
    assert (model, name, datatype, outputs) == ("edgedigits", "image", "FP32", ["probabilities"])
    assert shape == [len(truth), 28, 28] and len(stand_in.requests) == 1


@pytest.fixture()
def digits_page(tmp_path, mnist5k):
    """A clean page of four well-separated real digits, left to right."""
    import cv2

    from edgedigits.camera.synth import ink_digit, paper

    canvas = paper(200, 520, np.random.default_rng(0), uneven=False)
    picks = [int(np.flatnonzero(mnist5k.y_test == d)[0]) for d in (2, 0, 2, 6)]
    for i, k in enumerate(picks):
        ink_digit(canvas, (mnist5k.x_test[k] * 255).astype(np.uint8), 40 + 120 * i, 40, 80)
    path = tmp_path / "page.png"
    cv2.imwrite(str(path), canvas.astype(np.uint8))
    return path, [2, 0, 2, 6]
