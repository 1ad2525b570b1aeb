"""Small ready-made models with readable layer names, like ``hidden1.weight``.

Both builders take ``seed=``: with a seed the starting weights are the same on
every run (the same as after ``torch.manual_seed(seed)``), yet the caller's
global random state is left exactly as it was, so building a model never
changes what later random calls (data shuffling, dropout) would do.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise

import torch
from torch import nn

from trainlab.arguments import is_whole_number, real_number
from trainlab.makers import model_maker
from trainlab.options import check_seed

__all__ = ["ACTIVATIONS", "mlp", "cnn"]

# Each name maps to a layer factory. "linear" is an Identity rather than no
# layer at all, so the layer names (act1, act2, ...) are the same whatever
# activation is chosen and hooks or plots keyed on them keep working.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}

_DIGIT_SIZE = 8  # cnn() expects (N, 1, 8, 8) images, as trainlab.datasets.digits gives


@model_maker("mlp")
def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    activation: str | None = "relu",
    seed: int | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A stack of Linear layers with an activation between them: (N, in_features) -> (N, out_features).

    ``dropout=0.2`` adds a Dropout layer (``drop1``, ...) after each hidden activation: in
    training it zeroes a random 20% of the values, a classic cure for overfitting.
    """
    _check_positive_int("in_features", in_features, "in_features=2")
    _check_positive_int("out_features", out_features, "out_features=2")
    sizes = _check_hidden(hidden)
    make_activation = _activation(activation)
    check_seed(seed, allow_none=True)
    _check_dropout(dropout)
    widths = [int(in_features), *sizes, int(out_features)]
    with _seeded(seed):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (width_in, width_out) in enumerate(pairwise(widths[:-1]), start=1):
            layers[f"hidden{i}"] = nn.Linear(width_in, width_out)
            layers[f"act{i}"] = make_activation()
            if dropout:
                layers[f"drop{i}"] = nn.Dropout(float(dropout))
        layers["output"] = nn.Linear(widths[-2], widths[-1])
        return nn.Sequential(layers)


@model_maker("cnn", sizes=lambda X, y: {"num_classes": int(y.max()) + 1})
def cnn(num_classes: int = 10, channels: Sequence[int] = (8, 16), seed: int | None = None) -> nn.Sequential:
    """A small convolutional network for 8x8 digits: (N, 1, 8, 8) images -> (N, num_classes) scores."""
    _check_positive_int("num_classes", num_classes, "num_classes=10")
    if not (
        isinstance(channels, Sequence) and len(channels) == 2 and all(is_whole_number(c) and c >= 1 for c in channels)
    ):
        raise ValueError(
            f"channels is the number of filters in the two conv layers; pass two whole "
            f"numbers of at least 1, like channels=(8, 16); got {channels!r}"
        )
    check_seed(seed, allow_none=True)
    c1, c2 = (int(c) for c in channels)
    # Two 2x2 poolings halve the 8x8 image twice, leaving 2x2 per channel.
    side = _DIGIT_SIZE // 4
    with _seeded(seed):
        return nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(1, c1, kernel_size=3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2)),
                    ("conv2", nn.Conv2d(c1, c2, kernel_size=3, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("output", nn.Linear(c2 * side * side, int(num_classes))),
                ]
            )
        )


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block with the CPU RNG seeded, then put the caller's RNG state back."""
    if seed is None:
        yield  # no seed: draw from the global RNG, as plain PyTorch would
        return
    # Layers initialise on the CPU, so only the CPU generator is forked and
    # seeded; torch.manual_seed would also reseed (and not restore) any GPU.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


def _activation(name: str | None) -> Callable[[], nn.Module]:
    """The layer factory for an activation name; None means "linear"."""
    key = "linear" if name is None else name
    if isinstance(key, str) and key.lower() in ACTIVATIONS:
        return ACTIVATIONS[key.lower()]
    choices = ", ".join(repr(k) for k in ACTIVATIONS)
    raise ValueError(f"unknown activation {name!r}; choose one of: {choices} (or None for no activation)")


def _check_hidden(hidden: object) -> list[int]:
    """The hidden layer widths as a list, or a ValueError saying how to write them."""
    if is_whole_number(hidden):
        raise ValueError(
            f"hidden is a list of layer widths; for one hidden layer of {hidden} units "
            f"pass hidden=[{hidden}] (or [] for no hidden layer)"
        )
    if not (
        isinstance(hidden, Sequence)
        and not isinstance(hidden, str)
        and all(is_whole_number(h) and h >= 1 for h in hidden)
    ):
        raise ValueError(
            f"hidden is a list of layer widths, each a whole number of at least 1, "
            f"like hidden=[16, 16] (or [] for no hidden layer); got {hidden!r}"
        )
    return [int(h) for h in hidden]


def _check_positive_int(name: str, value: object, example: str) -> None:
    """Reject a size that is not a whole number of at least 1."""
    if not (is_whole_number(value) and value >= 1):
        raise ValueError(f"{name} must be a whole number of at least 1, like {example}; got {value!r}")


def _check_dropout(dropout: object) -> None:
    """Reject a dropout rate outside [0, 1)."""
    rate = real_number(dropout)
    if rate is None or not 0 <= rate < 1:
        raise ValueError(f"dropout is the fraction of values zeroed in training, from 0 (none) to below 1, "
                         f"like dropout=0.2; got {dropout!r}")
