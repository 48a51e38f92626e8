import numpy as np

from edgedigits.model import INPUT_NAME, LAYER_NAMES, PARAM_COUNT, build_model


def test_seed_architecture():
    model = build_model()
    assert model.count_params() == PARAM_COUNT == 266_610
    assert tuple(layer.name for layer in model.layers) == LAYER_NAMES
    assert [layer.count_params() for layer in model.layers] == [0, 235_500, 30_100, 1_010]
    assert model.inputs[0].name == INPUT_NAME
    assert tuple(model.input_shape) == (None, 28, 28)
    assert tuple(model.output_shape) == (None, 10)
    assert [getattr(layer, "activation", None).__name__ for layer in model.layers[1:]] == [
        "relu",
        "relu",
        "softmax",
    ]


def test_output_is_a_distribution(mnist5k):
    proba = np.asarray(build_model()(mnist5k.x_test[:8]))
    assert proba.shape == (8, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_is_smaller_than_the_seed_and_keeps_its_contract(mnist5k):
    from edgedigits.model import CNN_PARAM_COUNT

    model = build_model("cnn")
    assert model.count_params() == CNN_PARAM_COUNT <= 250_000 < PARAM_COUNT
    assert tuple(model.input_shape) == (None, 28, 28) and tuple(model.output_shape) == (None, 10)
    assert model.inputs[0].name == INPUT_NAME and model.layers[-1].name == "outputLayer"
    proba = np.asarray(model(mnist5k.x_test[:8]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_architecture_lists_the_valid_ones():
    import pytest

    with pytest.raises(ValueError, match="mlp, cnn"):
        build_model("resnet")


def test_multiply_adds_are_counted_from_the_layers():
    """bench's GFLOP/s divide by these: the seed MLP's 784*300 + 300*100 + 100*10 = 266,200,
    and the CNN's convolutions (at their output sizes) plus its dense layers."""
    from edgedigits.model import count_macs

    assert count_macs(build_model("mlp")) == 266_200
    convs = 28 * 28 * 9 * 1 * 16 + 14 * 14 * 9 * 16 * 32 + 7 * 7 * 9 * 32 * 64
    assert count_macs(build_model("cnn")) == convs + 576 * 128 + 128 * 10 == 1_994_240
