"""The loop's live hyperparameters: learning rate, batch size, weight decay, clipping, the optimizer.

Each is a property of ``Loop``, defined here and named in its class body (``lr = hyperparameters.lr``):
reading gives the value in use,
setting checks the value (a bad one raises ValueError and changes nothing), applies it from the
next update (the batch size: from the next batch) and records the change in ``history.changes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainlab.arguments import positive_or_none
from trainlab.optimizers import needs_closure
from trainlab.options import check_batch_size, check_clip, set_lr, set_weight_decay, switched_optimizer

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["lr", "batch_size", "weight_decay", "weight_decay_groups", "clip_grad_norm", "clip_grad_value",
           "optimizer_name", "set_optimizer", "clipping_allowed", "check_clip_value"]


def check_clip_value(value: Any) -> float | None:
    """A gradient-value clipping threshold: None (no clipping) or a finite number above zero."""
    return positive_or_none(value, "clip_grad_value is the most any gradient entry may be in size, a number above 0 "
                                   "like 0.5, or None for no clipping")


@property
def lr(self: Loop) -> float:
    """The learning rate (the first group's); setting it scales every group's alike, from the next update."""
    return self.optimizer.param_groups[0]["lr"]


@lr.setter
def lr(self: Loop, value: float) -> None:
    self._record_change("lr", set_lr(self.optimizer, value))


@property
def batch_size(self: Loop) -> int:
    """Samples per batch (with ``accumulate``: per micro-batch); setting it applies from the next batch."""
    return self._run.batch_size


@batch_size.setter
def batch_size(self: Loop, value: int) -> None:
    self._run.batch_size = self._run.sampler.check_batch_size(check_batch_size(value))
    self._record_change("batch_size", self._run.batch_size)


@property
def weight_decay(self: Loop) -> float:
    """L2 penalty on the weights (the optimizer's ``weight_decay``); live, from the next update.

    With several parameter groups it reads the first group that decays; setting it moves the groups
    built with a weight decay, keeping their ratios (``weight_decay_groups``), and leaves those built
    with 0 (biases and norms in the usual AdamW recipe) at 0."""
    groups = self.optimizer.param_groups
    return float(groups[self._decay.reference(self.optimizer)].get("weight_decay", 0.0))


@weight_decay.setter
def weight_decay(self: Loop, value: float) -> None:
    self._record_change("weight_decay", set_weight_decay(self.optimizer, value, self._decay.of(self.optimizer)))


@property
def weight_decay_groups(self: Loop) -> list[int]:
    """The parameter groups ``loop.weight_decay = v`` moves (by index): those built with a weight decay."""
    return self._decay.moved(self.optimizer)


@property
def clip_grad_norm(self: Loop) -> float | None:
    """The most the gradients' total norm may be at an update (None: no clipping); live."""
    return self._clip


@clip_grad_norm.setter
def clip_grad_norm(self: Loop, value: float | None) -> None:
    self._clip = clipping_allowed(self, check_clip(value))
    self._record_change("clip_grad_norm", self._clip)


@property
def clip_grad_value(self: Loop) -> float | None:
    """The most any gradient entry may be in size at an update (None: no clipping); live, applied before
    ``clip_grad_norm``."""
    return self._clip_value


@clip_grad_value.setter
def clip_grad_value(self: Loop, value: float | None) -> None:
    self._clip_value = clipping_allowed(self, check_clip_value(value))
    self._record_change("clip_grad_value", self._clip_value)


def clipping_allowed(loop: Loop, value: float | None) -> float | None:
    """``value``, unless the loop's optimizer re-evaluates the gradients in its step (LBFGS), where clipping is void."""
    if value is not None and needs_closure(loop.optimizer):
        raise ValueError(f"{type(loop.optimizer).__name__} evaluates the gradients again inside its "
                         "step, so clipping them before it has no effect; clip inside a loss of your own instead")
    return value


@property
def optimizer_name(self: Loop) -> str:
    """The optimizer's name: "sgd", "adam", ... (or its class name when given as an object)."""
    return self._optimizer_name or type(self.optimizer).__name__


def set_optimizer(self: Loop, name: str, **options: Any) -> None:
    """Switch to another optimizer by name (fresh state, same lr and weight decay) from the next update.

    Example: ``loop.set_optimizer("sgd", momentum=0.9)``; while the dashboard plays, use its menu."""
    with self._guard:  # the optimizer must not change under a step running in another thread
        optimizer = switched_optimizer(name, self.model, self.lr, self.weight_decay, self.scheduler, options)
        if needs_closure(optimizer) and (self._clip is not None or self._clip_value is not None
                                         or self.accumulate > 1):
            raise ValueError(f"{type(optimizer).__name__} evaluates the loss again inside its step: turn "
                             "gradient clipping and accumulate off to use it")
        self.optimizer = optimizer
        self._optimizer_name = name.lower()
        self._record_change("optimizer", self._optimizer_name)
