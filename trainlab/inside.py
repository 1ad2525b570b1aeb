"""Inside the network: what each neuron computes over the input plane, and per-layer activation statistics.

For an MLP on 2-D inputs (``tl.models.mlp(2, ...)`` or any ``nn.Sequential`` of Linear and
activation layers), every neuron is a function of the two inputs, so it can be drawn as a
picture of the plane, as TensorFlow Playground does: ``neuron_layers`` finds the layers
and ``neuron_activations`` computes each neuron's value at every point of a grid.

Any other model (a CNN, a sequence model, many input features) gets numbers per layer
instead: ``activation_stats`` (mean, spread, and the share of "dead" units, which output 0
(or less) for every sample, so no gradient flows through them any more; ``activations.py``
records the same over training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainlab.arguments import is_whole_number
from trainlab.activations import RECTIFIERS, probe_activations
from trainlab.batching import map_tensors
from trainlab.metrics import eval_mode

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["NeuronLayer", "LayerStats", "neuron_layers", "neuron_activations", "neuron_details", "activation_stats"]

# Layers that act on each neuron's value on its own (or only rescale): they sit between two
# Linear layers without changing what a neuron is. Anything else makes the model "not an MLP".
_PER_NEURON = (nn.Identity, nn.Dropout, nn.BatchNorm1d, nn.LayerNorm)


@dataclass(frozen=True)
class NeuronLayer:
    """One column of neurons: the inputs, a hidden layer or the output."""

    name: str  # "inputs", or the Linear layer's name in the model ("hidden1", "output")
    width: int  # how many neurons
    linear: nn.Linear | None  # the layer that computes them from the column before (None for the inputs)
    probe: nn.Module | None  # the module whose output is their activation (after the activation function)


@dataclass(frozen=True)
class LayerStats:
    """One layer's activations over a sample of the training data."""

    name: str
    mean: float
    std: float
    dead_fraction: float | None  # rectifiers: the share of units at most 0 for every sample; others: None


def neuron_layers(model: nn.Module) -> list[NeuronLayer] | None:
    """The columns of neurons of an MLP on 2-D inputs, inputs first; None for any other model."""
    if not isinstance(model, nn.Sequential) or not len(model):
        return None
    layers = [NeuronLayer("inputs", 2, None, None)]
    current: tuple[str, nn.Linear] | None = None
    probe: nn.Module | None = None
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            if current is not None:
                layers.append(NeuronLayer(current[0], current[1].out_features, current[1], probe))
            elif module.in_features != 2:
                return None
            current, probe = (name, module), module
        elif current is not None and _acts_per_neuron(module):
            probe = module  # the neurons' value is what comes out of the last such layer
        else:
            return None
    if current is None:
        return None
    layers.append(NeuronLayer(current[0], current[1].out_features, current[1], probe))
    return layers


def _acts_per_neuron(module: nn.Module) -> bool:
    activation = type(module).__module__ == "torch.nn.modules.activation" and not isinstance(module, nn.MultiheadAttention)
    return activation or isinstance(module, _PER_NEURON)


def neuron_activations(loop: Loop, layers: list[NeuronLayer], grid: Tensor) -> list[Tensor]:
    """Every column's activations at the ``grid`` points ((n, 2) inputs): a (n, width) tensor per column.

    ``grid`` is a tensor, array or list of points, run in the model's dtype (float64 from numpy
    too). In eval mode and without gradients, like ``loop.predict`` (dropout off, BatchNorm's
    running statistics).
    """
    _check_layers(layers)
    points = _grid_points(grid, dtype=layers[1].linear.weight.dtype)
    captured: dict[int, Tensor] = {}

    def keep(module: nn.Module, args: Any, output: Tensor) -> None:
        captured[id(module)] = output.detach()

    with loop.hold():
        grid = points.to(loop.device)
        handles = [layer.probe.register_forward_hook(keep) for layer in layers[1:]]
        try:
            with eval_mode(loop.model), torch.no_grad():
                loop.model(grid)
        finally:
            for handle in handles:
                handle.remove()
    return [grid.detach()] + [captured[id(layer.probe)] for layer in layers[1:]]


def _check_layers(layers: Any) -> None:
    """The columns ``neuron_layers`` finds, or a ValueError saying where they come from."""
    if not isinstance(layers, (list, tuple)) or len(layers) < 2 or not all(isinstance(x, NeuronLayer) for x in layers):
        hint = (" (neuron_layers returns None for a model that is not an MLP on 2-D inputs: "
                "tl.activation_stats(loop) works for any model)") if layers is None else ""
        raise ValueError(f"layers are the columns of an MLP on 2-D inputs, as layers = tl.neuron_layers(loop.model) "
                         f"finds them; got {type(layers).__name__}{hint}")


def _grid_points(grid: Any, dtype: torch.dtype) -> Tensor:
    """The grid as an (n, 2) tensor of the model's dtype, from a tensor, an array or a list; else a ValueError."""
    try:
        points = torch.as_tensor(grid)
    except (TypeError, ValueError, RuntimeError):
        points = None
    if points is None or points.ndim != 2 or points.shape[1] != 2 or points.is_complex() or points.dtype == torch.bool:
        shape = f"shape {tuple(points.shape)}" if points is not None else type(grid).__name__
        raise ValueError(f"grid is the points of the input plane to run the network on, an (n, 2) tensor, array "
                         f"or list of numbers, like tl.datasets.spiral(n=100)[0]; got {shape}")
    return points.detach().to(dtype)


def neuron_details(layer: NeuronLayer, neuron: int) -> dict[str, Any]:
    """A neuron's incoming weights and bias, and their gradients at the last backward (None before any)."""
    linear = layer.linear
    if linear is None:
        return {"weights": [], "bias": None, "weight_grads": None, "bias_grad": None}
    weight, bias = linear.weight.detach(), linear.bias
    bias_value = bias.detach() if bias is not None else None
    return {
        "weights": weight[neuron].tolist(),
        "bias": float(bias_value[neuron]) if bias_value is not None else None,
        "weight_grads": linear.weight.grad[neuron].tolist() if linear.weight.grad is not None else None,
        "bias_grad": float(bias.grad[neuron]) if bias is not None and bias.grad is not None else None,
    }


def activation_stats(loop: Loop, max_samples: int = 256) -> list[LayerStats]:
    """Mean, std and dead share of every layer's output, over the first ``max_samples`` training samples.

    Every layer: each module without submodules, and each activation function called in a
    ``forward`` ("relu after conv1"). The dead share (units at most 0 for every sample) is given for
    rectifiers (ReLU, LeakyReLU, GELU...; see ``activations.py``), None for other layers. From a
    DataLoader, only those samples are fetched (not the whole dataset), leaving no trace on any random
    stream. For the same numbers over training, see ``tl.ActivationStats``.
    """
    if not is_whole_number(max_samples) or max_samples < 1:
        raise ValueError(f"max_samples is how many training samples to run, a whole number of at least 1, "
                         f"like 256; got {max_samples!r}")
    with loop.hold():  # fetching draws random numbers (augmentation): not while another thread trains
        inputs = loop.first_train_samples(max_samples)[0]
        probe = probe_activations(loop, map_tensors(inputs, lambda x: x.to(loop.device)), bins=2)
    return [LayerStats(name, float(row[0]), float(row[1]), None if kind not in RECTIFIERS else float(row[2]))
            for name, kind, row in zip(probe.names, probe.kinds, probe.table)]
