"""Optimizers the loop steps: several at once, ones that need a closure, and every group's own settings.

- ``Optimizers([SparseAdam(sparse_params), Adam(dense_params)])``: several optimizers stepped
  together as one (the usual recipe for sparse embeddings). Its ``param_groups`` are theirs, in
  order, and its ``state_dict`` numbers their parameters across all of them, as one torch
  optimizer would: time travel and checkpoints capture it like any optimizer.
- ``needs_closure``: optimizers like LBFGS whose ``step(closure)`` re-evaluates the loss.
- ``GroupShares``: which parameter groups a live weight decay moves, and by how much, as built.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

__all__ = ["Optimizers", "needs_closure", "closure_for", "children", "GroupShares", "zero_gradient"]


class Optimizers(torch.optim.Optimizer):
    """Several optimizers stepped together, seen as one (a scheduler can drive it too).

    Example: ``tl.Loop(model, data, loss, optimizer=[SparseAdam(sparse), Adam(dense)])``.
    """

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:  # no super().__init__: no own groups
        self.optimizers = list(optimizers)
        if any(map(needs_closure, self.optimizers)):
            raise ValueError("an optimizer that evaluates the loss again inside its step (LBFGS) cannot be stepped "
                             "together with others; give it alone")
        self.defaults: dict[str, Any] = {}
        for name in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_state_dict_pre_hooks",
                     "_optimizer_state_dict_post_hooks", "_optimizer_load_state_dict_pre_hooks",
                     "_optimizer_load_state_dict_post_hooks"):
            setattr(self, name, OrderedDict())

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"Optimizers({', '.join(type(o).__name__ for o in self.optimizers)})"

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        """Every optimizer's groups, in order (the same dicts: setting an lr here sets theirs)."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @property  # type: ignore[override]
    def state(self) -> dict[Tensor, dict[str, Any]]:
        """Every optimizer's per-parameter state (the same dicts)."""
        return {p: s for optimizer in self.optimizers for p, s in optimizer.state.items()}

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Step each optimizer in turn."""
        for optimizer in self.optimizers:
            optimizer.step()
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise ValueError("add the parameter group to one of the optimizers (loop.optimizer.optimizers[i])")

    def state_dict(self) -> dict[str, Any]:
        """One state_dict for all, parameters numbered across them as torch numbers one optimizer's."""
        groups: list[dict[str, Any]] = []
        state: dict[int, Any] = {}
        start = 0
        for optimizer in self.optimizers:
            own = optimizer.state_dict()
            for group in own["param_groups"]:
                groups.append({**group, "params": [start + i for i in group["params"]]})
            state.update({start + i: per_param for i, per_param in own["state"].items()})
            start += sum(len(group["params"]) for group in own["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Give each optimizer its part of a ``state_dict()``."""
        groups = state_dict["param_groups"]
        if len(groups) != sum(len(o.param_groups) for o in self.optimizers):
            raise ValueError("the state has another number of parameter groups than these optimizers")
        parts, start, first = [], 0, 0
        for optimizer in self.optimizers:
            own = groups[first:first + len(optimizer.param_groups)]
            first += len(own)
            count = sum(len(group["params"]) for group in own)
            state = {i - start: s for i, s in state_dict["state"].items() if start <= i < start + count}
            parts.append({"param_groups": [{**g, "params": [i - start for i in g["params"]]} for g in own],
                          "state": state})
            start += count
        for optimizer, part in zip(self.optimizers, parts):
            optimizer.load_state_dict(part)


def children(optimizer: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """The optimizers inside ``optimizer`` (itself, unless it is several)."""
    return optimizer.optimizers if isinstance(optimizer, Optimizers) else [optimizer]


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` must be given a closure that re-evaluates the loss (LBFGS)."""
    return _needs_closure(type(optimizer))


def closure_for(loss: Tensor, params: list[torch.nn.Parameter], again: Callable[[], Tensor]) -> Callable[[], Tensor]:
    """The closure an optimizer that evaluates the loss again (LBFGS) steps with: first ``loss`` and the
    gradients as backward() left them (a hand loop's first call), then ``again()``'s loss and gradients
    at each weights it tries."""
    first = [True]

    def closure() -> Tensor:
        if first:
            first.clear()
            return loss
        for p in params:
            p.grad = None
        new_loss = again()
        new_loss.backward()
        return new_loss

    return closure


@functools.lru_cache(maxsize=None)
def _needs_closure(cls: type) -> bool:
    try:
        closure = inspect.signature(cls.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return closure is not None and closure.default is inspect.Parameter.empty


def zero_gradient(optimizer: torch.optim.Optimizer, p: Tensor) -> Tensor:
    """A zero gradient for ``p`` of the kind ``optimizer`` takes (SparseAdam takes only sparse ones)."""
    if isinstance(optimizer, torch.optim.SparseAdam):
        return torch.zeros_like(p).to_sparse()
    return torch.zeros_like(p)


class GroupShares:
    """How a live weight decay reaches each parameter group: in the ratios the groups were built with.

    A group built with weight decay 0 (biases and norms in the usual AdamW recipe) keeps 0; the
    others keep their ratios to the first group that decays. When no group decays, all move alike.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        decays = [float(group.get("weight_decay", 0.0) or 0.0) for group in optimizer.param_groups]
        reference = next((d for d in decays if d), 0.0)
        self.shares = [d / reference for d in decays] if reference else [1.0] * len(decays)
        self.first = next((i for i, share in enumerate(self.shares) if share), 0)

    def of(self, optimizer: torch.optim.Optimizer) -> list[float]:
        """Each group's share for ``optimizer`` (1 each for another optimizer than the one built with)."""
        groups = optimizer.param_groups
        own = self.shares if optimizer is self.optimizer else []
        return [own[i] if i < len(own) else 1.0 for i in range(len(groups))]

    def reference(self, optimizer: torch.optim.Optimizer) -> int:
        """The index of the group whose weight decay ``loop.weight_decay`` reads."""
        return self.first if optimizer is self.optimizer and self.first < len(optimizer.param_groups) else 0

    def moved(self, optimizer: torch.optim.Optimizer) -> list[int]:
        """The indices of the groups a live weight decay moves."""
        return [i for i, share in enumerate(self.of(optimizer)) if share]
