"""Losses, optimizers and hyperparameters given by name or as objects, checked early."""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch
from torch import Tensor, nn

__all__ = ["LOSSES", "OPTIMIZERS", "make_loss", "make_optimizer", "check_lr", "check_batch_size",
           "accuracy_kind", "check_targets"]

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "mse": nn.MSELoss,
    "cross_entropy": nn.CrossEntropyLoss,
    # "bce" takes the model's raw scores (logits): the numerically stable form.
    "bce": nn.BCEWithLogitsLoss,
}

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


def make_loss(loss_fn: Any) -> tuple[Callable[[Tensor, Tensor], Tensor], str]:
    """The loss callable and a readable name for it."""
    if isinstance(loss_fn, str):
        key = loss_fn.lower()
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss_fn!r}; choose one of {sorted(LOSSES)} or pass a loss module")
        return LOSSES[key](), key
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a name like 'mse' or a callable loss(outputs, targets); got {loss_fn!r}")
    return loss_fn, type(loss_fn).__name__


def accuracy_kind(loss_fn: Any) -> str | None:
    """"multiclass", "binary_logits", "binary_probs", or None when accuracy means nothing."""
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)):
        return "multiclass"
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        return "binary_logits"
    if isinstance(loss_fn, nn.BCELoss):
        return "binary_probs"
    return None


def check_targets(loss_name: str, kind: str | None, targets: Tensor, what: str) -> None:
    """Refuse targets whose type the loss cannot use, saying how to convert them."""
    if kind == "multiclass" and not targets.is_floating_point() and targets.dim() != 1:
        raise ValueError(f"{what}: {loss_name} needs one class index per sample, shape (n,); "
                         f"got shape {tuple(targets.shape)}; flatten them with y.view(-1)")
    if kind == "multiclass" and targets.is_floating_point() and targets.dim() == 1:
        raise ValueError(f"{what}: {loss_name} needs class indices as int64 targets; got {targets.dtype}; "
                         "convert them with y.long()")
    if kind in ("binary_logits", "binary_probs") and not targets.is_floating_point():
        raise ValueError(f"{what}: {loss_name} needs float targets of 0.0 and 1.0; got {targets.dtype}; "
                         "convert them with y.float()")
    if loss_name in ("mse", "MSELoss", "L1Loss") and not targets.is_floating_point():
        raise ValueError(f"{what}: {loss_name} compares numbers, so targets must be float; got "
                         f"{targets.dtype}; convert them with y.float() (or use 'cross_entropy' for classes)")


def make_optimizer(optimizer: Any, model: nn.Module, lr: float | None,
                   options: dict[str, Any]) -> torch.optim.Optimizer:
    """An optimizer over the model's parameters: built from a name, or the given object."""
    if isinstance(optimizer, torch.optim.Optimizer):
        if options:
            raise ValueError("optimizer options (momentum, weight_decay, optimizer_options) apply only "
                             "to an optimizer given by name; set them on your optimizer object instead")
        _check_covers(optimizer, model)
        if lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)} "
                         "or pass a torch.optim.Optimizer")
    cls = OPTIMIZERS[optimizer.lower()]
    try:
        return cls(model.parameters(), lr=0.01 if lr is None else lr, **options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad options for {optimizer!r}: {error}. {cls.__name__} accepts the "
                         f"keyword arguments of torch.optim.{cls.__name__}") from None


def _check_covers(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    model_params = {id(p) for p in model.parameters()}
    foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in model_params]
    if foreign:
        raise ValueError("the optimizer holds parameters that are not the model's; build it from "
                         "model.parameters() of the same model you pass to the Loop")


def check_lr(value: Any) -> float:
    """A learning rate: a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_real_scalar(value):
        raise ValueError(f"the learning rate must be a number like 0.01; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"the learning rate must be a finite number above 0, like 0.01; got {value!r}")
    return value


def check_batch_size(value: Any) -> int:
    """A batch size: a whole number of samples, at least 1."""
    if isinstance(value, bool):
        raise ValueError(f"the batch size must be a whole number like 32; got {value!r}")
    try:
        size = operator.index(value)
    except TypeError:
        raise ValueError(f"the batch size must be a whole number like 32; got {value!r}") from None
    if size < 1:
        raise ValueError(f"the batch size must be at least 1; got {size}")
    return size


def _is_real_scalar(value: Any) -> bool:
    """numpy floats and 0-d float tensors count as numbers."""
    if isinstance(value, Tensor):
        return value.dim() == 0 and value.is_floating_point()
    return hasattr(value, "__float__") and not isinstance(value, (str, bytes, complex))
