"""Weights and gradients over time: each parameter's distribution, recorded every k steps (TensorBoard's
distributions, ``wandb.watch``).

    dist = tl.Distributions(loop, every=10)    # attaches: records as the loop trains
    loop.fit(epochs=5)
    dist.steps                                 # the steps recorded
    dist.weights["hidden1.weight"]             # (records, 7): percentiles 0, 5, 25, 50, 75, 95, 100
    dist.grads["hidden1.weight"]               # the same for its gradient at that update

A learner sees the weights spread out as they learn (or fly apart when the learning rate is too
high) and gradients vanish or explode. Memory stays bounded however long the run (``max_rows``,
see ``recording.py``). Measuring reads the parameters and their ``.grad``, nothing else: the run
goes on exactly as without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from trainlab.recording import Recorder

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["PERCENTILES", "Distributions", "percentiles"]

#: The percentiles recorded: the extremes, the middle 90%, the middle half, and the median.
PERCENTILES: tuple[int, ...] = (0, 5, 25, 50, 75, 95, 100)
_MAX_VALUES = 1_000_000  # a parameter with more values is subsampled evenly (sorting it would cost too much)


class Distributions(Recorder):
    """Every trainable parameter's weights and gradients as percentiles (``PERCENTILES``), every ``every`` steps.

    ``every``: steps between records; ``max_rows``: records kept at most (older ones thinned);
    ``attach=False`` records only when ``record()`` is called.
    """

    def __init__(self, loop: Loop, every: int = 10, max_rows: int = 1000, attach: bool = True) -> None:
        named = [(name, p) for name, p in loop.model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self._params = [p for _, p in named]
        super().__init__(loop, every, max_rows, attach)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """{parameter name: (records, 7) percentiles of its values}."""
        return self._per_name("weights")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """{parameter name: (records, 7) percentiles of its gradient} (NaN before the first backward)."""
        return self._per_name("grads")

    def _per_name(self, column: str) -> dict[str, np.ndarray]:
        table = self.rows.column(column)
        if not len(table):
            return {name: np.empty((0, len(PERCENTILES))) for name in self.names}
        return {name: table[:, i] for i, name in enumerate(self.names)}

    def measure(self) -> dict[str, np.ndarray]:
        """The percentiles of every parameter, then of every gradient: one host sync for all of them."""
        weights = [p.detach() for p in self._params]
        grads = [p.grad.detach() if p.grad is not None else None for p in self._params]
        table = percentiles(weights + grads)
        k = len(self._params)
        return {"weights": table[:k], "grads": table[k:]}


def percentiles(tensors: list[Tensor | None], q: tuple[int, ...] = PERCENTILES) -> np.ndarray:
    """(len(tensors), len(q)) percentiles of each tensor's values, as ``torch.quantile`` computes them
    (linear interpolation), for all tensors in one sort; a None or empty tensor gets a row of NaN."""
    present = [(i, _flat(t)) for i, t in enumerate(tensors) if t is not None and t.numel()]
    out = np.full((len(tensors), len(q)), np.nan)
    if not present:
        return out
    dtype = present[0][1].dtype
    for _, flat in present[1:]:
        dtype = torch.promote_types(dtype, flat.dtype)
    values = torch.cat([flat.to(dtype) for _, flat in present]).cpu().numpy()  # the one host sync
    sizes = np.array([len(flat) for _, flat in present])
    starts = np.cumsum(sizes) - sizes
    segment = np.repeat(np.arange(len(present)), sizes)
    ordered = values[np.lexsort((values, segment))]  # each tensor's values in order, one tensor after another
    # As torch.quantile: the rank q·(n-1) in the values' dtype, between the values below and above it.
    ranks = torch.tensor(q, dtype=dtype) / 100 * torch.from_numpy(sizes - 1).to(dtype)[:, None]
    below, above = ranks.long().numpy(), ranks.ceil().long().numpy()
    low = torch.from_numpy(ordered[starts[:, None] + below])
    high = torch.from_numpy(ordered[starts[:, None] + above])
    result = torch.lerp(low, high, ranks - ranks.floor()).double().numpy()
    has_nan = np.add.reduceat(np.isnan(values), starts) > 0
    result[has_nan] = np.nan  # as torch.quantile: NaN in, NaN out
    out[[i for i, _ in present]] = result
    return out


def _flat(t: Tensor) -> Tensor:
    dense = t.detach().to_dense() if t.is_sparse else t.detach()  # a sparse gradient (nn.Embedding(sparse=True)): zeros included
    flat = dense.reshape(-1)
    if flat.is_complex() or not flat.is_floating_point():
        flat = flat.float() if not flat.is_complex() else flat.abs()
    if len(flat) > _MAX_VALUES:
        flat = flat[:: len(flat) // _MAX_VALUES + 1]
    return flat
