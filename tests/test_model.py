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
        "relu", "relu", "softmax"]


def test_output_is_a_distribution(mnist5k):
    proba = np.asarray(build_model()(mnist5k.x_test[:8]))
    assert proba.shape == (8, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
