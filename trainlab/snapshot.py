"""Snapshots: exact copies of a loop's state in memory, for restore, rewind and reset.

A snapshot's ``state`` has the same layout as a checkpoint on disk (see
``checkpoint.py``): the model's and optimizer's ``state_dict``, the scheduler's, the
loop's random state, where it is in the epoch, its counters and its batch size.
Snapshots are always taken at a batch boundary; one taken in the middle of a batch
records the start of that batch (the weights only change at ``update``).
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainlab.history import HistoryMark

__all__ = ["Snapshot", "RewindBuffer", "clone_tree", "clone_optimizer_state", "copy_optimizer_state"]


@dataclass(eq=False)
class Snapshot:
    """A point in a loop's life that ``loop.restore(snapshot)`` goes back to exactly."""

    name: str | None
    step: int
    epoch: int
    state: dict[str, Any]
    history: HistoryMark
    owner: int  # id() of the loop it came from: snapshots do not move between loops

    @property
    def nbytes(self) -> int:
        """Memory held by the snapshot's own tensors: weights and optimizer state (the rest is small)."""
        model = sum(t.nbytes for t in self.state["model"].values())
        optimizer = sum(v.nbytes for per_param in self.state["optimizer"]["state"].values()
                        for v in per_param.values() if isinstance(v, Tensor))
        return model + optimizer + _RNG_BYTES

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"Snapshot({label}step={self.step}, epoch={self.epoch})"


_RNG_BYTES = 2 * 5056  # the loop's torch RNG state and the data-order generator's


def clone_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of an optimizer ``state_dict()`` sharing no tensor with it (fast path of clone_tree)."""
    return {"state": {key: _copy_values(per_param) for key, per_param in state["state"].items()},
            "param_groups": [_copy_values(group) for group in state["param_groups"]]}


def copy_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``clone_optimizer_state(optimizer.state_dict())``, without building the state_dict first.

    A snapshot is taken every step, and ``state_dict()`` costs more than the copy itself for
    a small model. Optimizers that customise ``state_dict`` (an override, or hooks) get the real one.
    """
    if (type(optimizer).state_dict is not torch.optim.Optimizer.state_dict
            or getattr(optimizer, "_optimizer_state_dict_pre_hooks", None)
            or getattr(optimizer, "_optimizer_state_dict_post_hooks", None)):
        return clone_optimizer_state(optimizer.state_dict())
    numbers: dict[int, int] = {}  # id(parameter) -> its number, counted over all groups as torch does
    groups, start = [], 0
    for group in optimizer.param_groups:
        copied = _copy_values(group)
        copied["params"] = [numbers.setdefault(id(p), i) for i, p in enumerate(group["params"], start)]
        start += len(copied["params"])
        groups.append(copied)
    state = {numbers[id(param)]: _copy_values(per_param) for param, per_param in optimizer.state.items()}
    return {"state": state, "param_groups": groups}


_IMMUTABLE = frozenset({float, int, bool, str, type(None)})


def _copy_values(mapping: dict[str, Any]) -> dict[str, Any]:
    """A copy of a flat dict: tensors cloned, lists copied, numbers and strings kept (they are immutable)."""
    return {name: value if type(value) in _IMMUTABLE else _copy_leaf(value) for name, value in mapping.items()}


def _copy_leaf(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    return list(value) if isinstance(value, list) else value  # tuples are immutable


def clone_tree(value: Any) -> Any:
    """A copy of nested dicts/lists in which every tensor is cloned (nothing shared)."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: clone_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clone_tree(item) for item in value)
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    return copy.deepcopy(value)


class RewindBuffer:
    """The automatic snapshots behind ``loop.rewind``: newest last, oldest dropped past a byte budget.

    It only ever holds the past of the current line of training: a rewind keeps the
    snapshots older than the one it goes back to, and any other jump in time empties it.
    """

    def __init__(self, budget_bytes: int, max_snapshots: int = 10_000) -> None:
        self.budget_bytes = budget_bytes
        self.max_snapshots = max_snapshots
        self._snapshots: deque[tuple[Snapshot, int]] = deque()
        self.nbytes = 0
        self._spare: dict[str, Tensor] | None = None  # the weights of the last snapshot dropped, for reuse

    def __len__(self) -> int:
        return len(self._snapshots)

    def push(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot``; drop the oldest ones while over budget."""
        if self.budget_bytes <= 0:
            return
        size = snapshot.nbytes
        self._snapshots.append((snapshot, size))
        self.nbytes += size
        while self._snapshots and (self.nbytes > self.budget_bytes or len(self._snapshots) > self.max_snapshots):
            dropped, dropped_size = self._snapshots.popleft()
            self.nbytes -= dropped_size
            if dropped is not snapshot:  # the newest is still the loop's "last update" (update_ratios)
                self._spare = dropped.state["model"]

    def reuse(self) -> dict[str, Tensor] | None:
        """The weights of a dropped snapshot, to copy the next one into; None when there is none.

        Nothing else holds them: the loop gives out copies of buffered weights (``snapshot()``
        mid-batch), and its only other reference, the last batch's start (``update_ratios``), is the newest
        snapshot, which ``push`` never hands over.
        """
        spare, self._spare = self._spare, None
        return spare

    def depth(self, current_step: int) -> int:
        """How many updates can be undone from ``current_step``."""
        return current_step - self._snapshots[0][0].step if self._snapshots else 0

    def take(self, step: int) -> Snapshot:
        """The snapshot of ``step``, forgetting it and everything newer."""
        while self._snapshots:
            snapshot, size = self._snapshots.pop()
            self.nbytes -= size
            if snapshot.step == step:
                return snapshot
        raise LookupError(step)

    def clear(self) -> None:
        """Forget everything (after a jump that leaves the current line)."""
        self._snapshots.clear()
        self.nbytes = 0
        self._spare = None
