"""The digit models: the seed MLP, exactly, and a small CNN for real handwriting.

mlp: Flatten(28x28) -> Dense 300 relu -> Dense 100 relu -> Dense 10 softmax (the seed).
cnn: Reshape(28x28x1) -> 3 x [Conv 3x3 relu -> MaxPool 2] (16, 32, 64 filters) -> Dense 128
     relu -> Dropout -> Dense 10 softmax: 98,442 parameters, ~2 M multiply-adds per image.
Both take float32 [batch, 28, 28] in [0, 1] and return probabilities [batch, 10].
"""

from __future__ import annotations

from typing import Any

from edgedigits._tf import import_keras
from edgedigits.contract import INPUT_NAME

LAYER_NAMES = ("inputLayer", "hiddenLayer1", "hiddenLayer2", "outputLayer")
PARAM_COUNT = 266_610  # 784*300+300 + 300*100+100 + 100*10+10
DEFAULT_LEARNING_RATE = {"sgd": 0.1, "adam": 0.001}  # with the cosine schedule; see compile_model
ARCHS = ("mlp", "cnn")
CNN_PARAM_COUNT = 98_442


def build_model(arch: str = "mlp") -> Any:
    """Return an uncompiled digit model (a keras.Sequential): the seed MLP or the small CNN.

    Raises:
        ValueError: an unknown arch (the message lists the valid ones).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    keras = import_keras("building the Keras model")
    layers = keras.layers
    if arch == "cnn":
        return _cnn(keras)
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28), name=INPUT_NAME, dtype="float32"),
            layers.Flatten(name="inputLayer"),
            layers.Dense(300, activation="relu", name="hiddenLayer1"),
            layers.Dense(100, activation="relu", name="hiddenLayer2"),
            layers.Dense(10, activation="softmax", name="outputLayer"),
        ],
        name="edgedigits_mlp",
    )


def compile_model(
    model: Any,
    optimizer: str = "sgd",
    learning_rate: float | None = None,
    steps_per_execution: int = 1,
    decay_steps: int | None = None,
) -> Any:
    """Compile as the seed did: sparse categorical cross-entropy, accuracy.

    `learning_rate=None` takes DEFAULT_LEARNING_RATE for the optimizer. The seed's
    `optimizer="SGD"` meant Keras's 0.01 held constant, which in 30 epochs reaches ~97.6%
    test accuracy; a constant 0.05 gave 97.86-97.96% depending on the CPU; 0.1 decayed by a
    cosine gives 98.16%. `--learning-rate 0.01 --lr-schedule constant` is the seed.
    `decay_steps` turns the rate into a cosine decay to 5% of it over that many steps.
    """
    keras = import_keras("compiling the Keras model")
    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}
    if optimizer not in optimizers:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(optimizers)}")
    lr = DEFAULT_LEARNING_RATE[optimizer] if learning_rate is None else learning_rate
    if decay_steps:  # cosine decay over the run: settles the noisy last epochs
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps, alpha=0.05)  # a resumed run still learns
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=optimizers[optimizer](learning_rate=lr),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def count_macs(model: Any) -> int:
    """Multiply-adds per image of a Keras model, from its own layers (Dense and Conv2D;
    nested models are walked): what bench's GFLOP/s figures divide by."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model (an export wraps rank-4 models)
            total += count_macs(layer)
        elif type(layer).__name__ == "Dense":
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif type(layer).__name__ == "Conv2D":
            kh, kw, cin, cout = (int(d) for d in layer.kernel.shape)
            _, oh, ow, _ = layer.output.shape
            total += int(oh) * int(ow) * kh * kw * cin * cout
    return total


def _cnn(keras: Any) -> Any:
    layers = keras.layers
    convs = []
    for i, filters in enumerate((16, 32, 64), start=1):  # (28,28,16) (14,14,32) (7,7,64)
        convs += [
            layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}"),
            layers.MaxPooling2D(2, name=f"pool{i}"),
        ]
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28), name=INPUT_NAME, dtype="float32"),
            layers.Reshape((28, 28, 1), name="channel"),  # same [N, 28, 28] contract as the MLP
            *convs,  # -> (3, 3, 64)
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(10, activation="softmax", name="outputLayer"),
        ],
        name="edgedigits_cnn",
    )
