"""Snapshots: exact copies of a loop's state in memory, for restore, reset and rewind's keyframes.

A snapshot's ``state`` is a ``LoopState``, as a checkpoint holds it on disk (see ``checkpoint.py``).
Snapshots are always taken at a batch boundary; one taken in the middle of a batch
records the start of that batch (the weights only change at ``update``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.checkpoint import LoopState
from trainlab.history import HistoryMark

__all__ = ["Snapshot", "clone_tree", "clone_optimizer_state", "copy_optimizer_state", "optimizer_copy"]


@dataclass(eq=False)
class Snapshot:
    """A point in a loop's life that ``loop.restore(snapshot)`` goes back to exactly."""

    name: str | None
    step: int
    epoch: int
    state: LoopState
    history: HistoryMark
    owner: tuple[int, int]  # the loop it came from (id()) and its build: snapshots do not move between loops,
    # nor across a rebuild of its data or model (the playground's, which starts a new run in the same loop)

    @property
    def nbytes(self) -> int:
        """Memory held by the snapshot's own tensors: weights and optimizer state (the rest is small)."""
        model = sum(t.nbytes for t in self.state["model"].values())
        optimizer = sum(t.nbytes for per_param in self.state["optimizer"]["state"].values()
                        for v in per_param.values() for t in (v if isinstance(v, list) else [v])
                        if isinstance(t, Tensor))
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
    if isinstance(value, list):  # LBFGS keeps lists of tensors (its history of directions)
        return [item.detach().clone() if isinstance(item, Tensor) else item for item in value]
    return value  # tuples are immutable


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


def optimizer_copy(optimizer: torch.optim.Optimizer, model: nn.Module, copy_model: nn.Module) -> torch.optim.Optimizer:
    """A copy of ``optimizer`` (settings and state) whose parameters are ``copy_model``'s, a copy of ``model``.

    Its steps move only the copy: a trial step (loading a checkpoint) or a learner's own code (tl.check_step).
    """
    copy_of = {id(p): q for p, q in zip(model.parameters(), copy_model.parameters())}
    memo = {id(p): copy_of[id(p)] for group in optimizer.param_groups for p in group["params"] if id(p) in copy_of}
    return copy.deepcopy(optimizer, memo)
