"""The loops the tests build, in one place: the same arguments always build the same loop.

Two families cover the suite: a tiny regression loop on random data (with dropout and Adam:
everything that could leak through a snapshot or a checkpoint), and a moons classifier (what
a learner starts with). ``tests/conftest.py`` offers both as fixtures too.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

import trainlab as tl

__all__ = ["regression_loop", "moons_loop"]


def regression_loop(optimizer: str = "adam", n: int = 20, batch_size: int = 6, seed: int = 0, out: int = 1,
                    dropout: float = 0.2, **options: Any) -> tl.Loop:
    """A tiny regression loop (4 features, ``out`` targets) on shuffled random data; lr 0.01 unless given."""
    g = torch.Generator().manual_seed(1234)
    X, y = torch.randn(n, 4, generator=g), torch.randn(n, out, generator=g)
    torch.manual_seed(seed)  # the model's initialisation
    layers = [nn.Linear(4, 8), nn.Tanh()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(8, out)]
    options.setdefault("lr", 0.01)
    return tl.Loop(nn.Sequential(*layers), (X, y), "mse", optimizer=optimizer, batch_size=batch_size, seed=seed,
                   **options)


def moons_loop(n: int = 400, hidden: Sequence[int] = (16, 16), noise: float = 0.2, activation: str | None = None,
               model: nn.Module | None = None, **options: Any) -> tl.Loop:
    """A moons classifier (an MLP, or ``model``; cross-entropy, SGD at lr 0.1 unless given); options go to Loop."""
    X, y = tl.datasets.moons(n=n, noise=noise, seed=0)
    model_options = {"activation": activation} if activation else {}
    model = model if model is not None else tl.models.mlp(2, list(hidden), 2, seed=0, **model_options)
    options.setdefault("lr", 0.1)
    return tl.Loop(model, (X, y), "cross_entropy", **options)
