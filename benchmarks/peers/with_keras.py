"""Keras 3 on the torch backend: the same layers and initial weights, one ``Model.fit`` a run.

Keras builds its own layers and optimizer (``keras.optimizers.SGD``, not torch's), so the
torch model is translated layer by layer and its weights copied in. Images stay
channels-first, as torch has them.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"  # read once, when keras is first imported

from collections.abc import Callable

import keras
from torch import nn

from benchmarks.workloads import Workload

if keras.backend.backend() != "torch":
    raise ImportError(f"keras was imported earlier with the {keras.backend.backend()} backend")

NAME = "Keras 3 (torch backend)"
FEATURES = "a running mean of the loss (its loss tracker) and a logs dict each step; callbacks (History)"


def version() -> str:
    """The installed version."""
    return keras.__version__


def build(workload: Workload, epochs: int) -> Callable[[], int]:
    """The model rebuilt in Keras with the same initial weights, compiled; the run is one silent ``fit``."""
    model = _translate(workload.fresh_model(), workload.inputs.shape[1:])
    loss = "mse" if workload.loss == "mse" else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=workload.lr), loss=loss)
    inputs, targets = workload.inputs.numpy(), workload.targets.numpy()

    def run() -> int:
        model.fit(inputs, targets, batch_size=workload.batch_size, epochs=epochs, shuffle=workload.shuffle,
                  verbose=0)
        return epochs * workload.steps_per_epoch()
    return run


def _translate(model: nn.Module, input_shape: tuple[int, ...]) -> keras.Sequential:
    """A Keras Sequential with the torch model's layers (Linear, Conv2d, ReLU, MaxPool2d, Flatten) and weights."""
    torch_layers = list(model.children()) or [model]
    pairs = [_layer(layer) for layer in torch_layers]  # (keras layer, its weights or None)
    keras_model = keras.Sequential([keras.Input(tuple(input_shape))] + [layer for layer, _ in pairs])
    for layer, values in pairs:
        if values is not None:
            layer.set_weights(values)
    return keras_model


def _layer(layer: nn.Module) -> tuple[keras.layers.Layer, list | None]:
    """One torch layer as a Keras layer, with the torch weights in Keras's layout."""
    if isinstance(layer, nn.Linear):  # torch (out, in) -> keras (in, out)
        return keras.layers.Dense(layer.out_features), [layer.weight.detach().T.numpy(), layer.bias.detach().numpy()]
    if isinstance(layer, nn.Conv2d):  # torch (out, in, h, w) -> keras (h, w, in, out)
        padding = "valid" if layer.padding in ((0, 0), "valid") else "same"
        conv = keras.layers.Conv2D(layer.out_channels, layer.kernel_size, padding=padding, data_format="channels_first")
        return conv, [layer.weight.detach().permute(2, 3, 1, 0).numpy(), layer.bias.detach().numpy()]
    if isinstance(layer, nn.ReLU):
        return keras.layers.ReLU(), None
    if isinstance(layer, nn.MaxPool2d):
        return keras.layers.MaxPooling2D(layer.kernel_size, data_format="channels_first"), None
    if isinstance(layer, nn.Flatten):  # "channels_last" flattens as it is: torch's (channels, height, width) order
        return keras.layers.Flatten(data_format="channels_last"), None
    raise ValueError(f"no Keras translation for {type(layer).__name__}")
