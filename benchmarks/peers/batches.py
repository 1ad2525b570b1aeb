"""A DataLoader that hands out whole batches, sliced as the fastest bare loop slices them.

With ``batch_size=None`` a DataLoader passes each item of its sampler straight to the
dataset; this sampler's items are index tensors, one batch each, from one seeded randperm
an epoch. So a library that takes a DataLoader gets the bare loop's very batches, with one
indexing per batch instead of a per-sample collate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from benchmarks.workloads import Workload

__all__ = ["batch_loader", "tensor_batches"]


class _BatchIndices(Sampler[torch.Tensor]):
    """Index tensors of ``size`` rows: shuffled by one randperm an epoch, or in order."""

    def __init__(self, rows: int, size: int, shuffle: bool) -> None:
        self.rows, self.size, self.shuffle = rows, size, shuffle
        self.generator = torch.Generator().manual_seed(0)  # the bare loop's seed: the same batches

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.rows, generator=self.generator) if self.shuffle else torch.arange(self.rows)
        return iter(order.split(self.size))

    def __len__(self) -> int:
        return math.ceil(self.rows / self.size)


def batch_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, **_: Any) -> DataLoader:
    """A DataLoader of whole batches (other DataLoader options, as skorch passes them, are ignored)."""
    return DataLoader(dataset, batch_size=None, sampler=_BatchIndices(len(dataset), batch_size, shuffle))


def tensor_batches(workload: Workload) -> DataLoader:
    """The workload's tensors as a DataLoader of whole batches."""
    return batch_loader(TensorDataset(workload.inputs, workload.targets), workload.batch_size, workload.shuffle)
