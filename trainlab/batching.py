"""Data in, batches out: tensors from what a learner passes, a validation split, and batches.

The loop owns batching (instead of a DataLoader) so the batch size can change in the
middle of an epoch: each epoch draws one seeded order of the training samples, and
every batch is the next slice of what is left of that order. So every sample is used
exactly once per epoch, whatever batch sizes were set along the way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

__all__ = ["as_tensors", "loader_settings", "split_validation", "EpochSampler"]


def as_tensors(data: Any, what: str = "data") -> tuple[Tensor, Tensor]:
    """``(X, y)`` tensors from a pair of tensors/arrays, a Dataset of pairs, or a DataLoader."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        inputs, targets = data.tensors
    elif isinstance(data, Dataset):
        inputs, targets = _stack_dataset(data, what)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        inputs, targets = (_as_tensor(part, what) for part in data)
    else:
        raise ValueError(
            f"{what} must be a pair (X, y) of tensors, a Dataset of (x, y) pairs or a DataLoader; "
            f"got {type(data).__name__}"
        )
    if len(inputs) != len(targets):
        raise ValueError(
            f"{what} has {len(inputs)} inputs but {len(targets)} targets; "
            "give one target per input (X and y need the same first dimension)"
        )
    if len(inputs) == 0:
        raise ValueError(f"{what} is empty; give at least one (input, target) pair")
    if not inputs.is_floating_point():
        raise ValueError(
            f"{what}'s inputs are {inputs.dtype}, but models need floating-point inputs; "
            "convert them with X.float()"
        )
    return inputs, targets


def _as_tensor(part: Any, what: str) -> Tensor:
    try:
        tensor = torch.as_tensor(part)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what}: could not turn {type(part).__name__} into a tensor ({error})") from None
    if tensor.dim() == 0:
        raise ValueError(f"{what} must hold one row per sample; got a single number")
    return tensor


def _stack_dataset(dataset: Dataset, what: str) -> tuple[Tensor, Tensor]:
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what}: the Dataset has no len(); trainlab needs a sized Dataset") from None
    if n == 0:
        raise ValueError(f"{what} is empty; give at least one (input, target) pair")
    inputs, targets = [], []
    for i in range(n):  # one pass: each item is checked against item 0 as it is read
        x, y = _dataset_item(dataset[i], i, what)
        if i and (x.shape != inputs[0].shape or y.shape != targets[0].shape):
            raise ValueError(f"{what}: Dataset item {i} has input shape {tuple(x.shape)} and target shape "
                             f"{tuple(y.shape)}, but item 0 has {tuple(inputs[0].shape)} and "
                             f"{tuple(targets[0].shape)}; every item needs the same shapes to be batched")
        inputs.append(x)
        targets.append(y)
    return torch.stack(inputs), torch.stack(targets)


def _dataset_item(item: Any, i: int, what: str) -> tuple[Tensor, Tensor]:
    """Item ``i`` of a Dataset as (input, target) tensors, or a ValueError naming it."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = type(item).__name__ + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
        raise ValueError(f"{what}: each Dataset item must be an (x, y) pair; item {i} is a {got}; "
                         "make __getitem__ return (input, target)")
    try:
        return torch.as_tensor(item[0]), torch.as_tensor(item[1])
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what}: Dataset item {i} is not a pair of numbers or tensors ({error})") from None


def loader_settings(data: Any) -> tuple[int | None, bool | None]:
    """The batch size and shuffling a DataLoader was made with (None when not a DataLoader)."""
    if not isinstance(data, DataLoader):
        return None, None
    return data.batch_size, isinstance(data.sampler, RandomSampler)


def split_validation(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted train and validation indices: a seeded random ``fraction`` of the n samples is held out."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(
            f"validation_split must be a number in [0, 1), like 0.2 to hold out 20%; got {fraction!r}"
        )
    n_val = n - int(n * (1 - fraction))  # Keras' rounding: the training part is rounded down
    if fraction > 0 and (n_val == 0 or n_val == n):
        raise ValueError(
            f"validation_split={fraction} of {n} samples leaves an empty training or validation set; "
            "use more data or another fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


class EpochSampler:
    """Hands out the indices of each batch: consecutive slices of a per-epoch order."""

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n = n
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self._generator_state = self.generator.get_state()  # it only moves when an epoch starts
        self.order: Tensor | None = None  # this epoch's order (None: not drawn yet)
        self.position = n  # samples of this epoch already handed out; n means "epoch done"

    @property
    def epoch_done(self) -> bool:
        """Whether every sample of the current epoch has been handed out."""
        return self.position >= self.n

    def start_epoch(self) -> None:
        """Draw the next epoch's order (the identity when not shuffling)."""
        if self.shuffle:  # unshuffled, the generator never moves: no state to copy
            self.order = torch.randperm(self.n, generator=self.generator)
            self._generator_state = self.generator.get_state()
        self.position = 0

    def take(self, batch_size: int) -> tuple[int, int]:
        """Claim the next ``batch_size`` samples (fewer at the epoch's end): returns (start, stop)."""
        start = self.position
        self.position = min(start + batch_size, self.n)
        return start, self.position

    def rows(self, inputs: Tensor, targets: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """The (inputs, targets) rows for positions start..stop of this epoch's order."""
        if self.order is None:
            return inputs[start:stop], targets[start:stop]  # views: no copy when the data is not shuffled
        index = self.order[start:stop]
        return inputs.index_select(0, index), targets.index_select(0, index)

    def state(self) -> dict[str, Any]:
        """Everything needed to continue the same sequence of batches later."""
        return {"rng": self._generator_state, "order": self.order, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        """Go back to a state from ``state()``."""
        self.generator.set_state(state["rng"])
        self._generator_state = self.generator.get_state()
        self.order = state["order"]
        self.position = state["position"]
