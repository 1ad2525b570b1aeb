"""Losses, optimizers and hyperparameters given by name or as objects, checked early."""

from __future__ import annotations

import inspect
import math
import numbers
import operator
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import Tensor, nn

from trainlab.arguments import is_bool, positive_or_none, real_number, short

__all__ = ["LOSSES", "OPTIMIZERS", "OPTIMIZERS_BY_NAME", "make_loss", "loss_name", "make_optimizer",
           "check_optimizer_options", "check_lr", "check_clip", "check_weight_decay", "check_seed",
           "check_batch_size", "check_targets", "setting_numbers", "set_lr", "set_weight_decay",
           "choose_optimizer", "switched_optimizer"]

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "mse": nn.MSELoss,
    "cross_entropy": nn.CrossEntropyLoss,
    # "bce" takes the model's raw scores (logits): the numerically stable form.
    "bce": nn.BCEWithLogitsLoss,
}

#: The optimizers the dashboard's menu offers.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}

#: Every torch.optim optimizer by its lower-case class name ("adagrad", "nadam", "lbfgs", ...).
OPTIMIZERS_BY_NAME: dict[str, type[torch.optim.Optimizer]] = {
    **{name.lower(): cls for name, cls in sorted(vars(torch.optim).items())
       if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer},
    **OPTIMIZERS,
}


def make_loss(loss_fn: Any) -> tuple[Callable[[Tensor, Tensor], Tensor], str]:
    """The loss callable and its one name (``loss_name``), however it was given."""
    if isinstance(loss_fn, str):
        key = loss_fn.lower()
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss_fn!r}; choose one of {sorted(LOSSES)} or pass a loss module")
        return LOSSES[key](), key
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a name like 'mse' or a callable loss(outputs, targets); got {loss_fn!r}")
    return loss_fn, loss_name(loss_fn)


def loss_name(loss_fn: Any) -> str:
    """One name per kind of loss: "mse" for ``nn.MSELoss()`` as for "mse"; else the class name ("L1Loss")."""
    return next((name for name, cls in LOSSES.items() if type(loss_fn) is cls), type(loss_fn).__name__)


def check_targets(loss_name: str, kind: str | None, targets: Tensor, what: str) -> Tensor:
    """The targets, if the loss can use them (class labels of any integer type become int64); else a ValueError."""
    if kind == "multiclass" and not targets.is_floating_point() and (targets.dim() == 0 or targets.shape[1:] == (1,)):
        raise ValueError(f"{what}: {loss_name} needs one class index per sample, shape (n,) (or one per token, "
                         f"(n, tokens)); got shape {tuple(targets.shape)}; flatten them with y.view(-1)")
    if kind == "multiclass" and targets.is_floating_point() and targets.dim() == 1:
        raise ValueError(f"{what}: {loss_name} needs class indices as int64 targets; got {targets.dtype}; "
                         "convert them with y.long()")
    if kind and kind != "multiclass" and not targets.is_floating_point():
        raise ValueError(f"{what}: {loss_name} needs float targets of 0.0 and 1.0; got {targets.dtype}; "
                         "convert them with y.float()")
    if loss_name in ("mse", "L1Loss", "SmoothL1Loss", "HuberLoss") and not targets.is_floating_point():
        raise ValueError(f"{what}: {loss_name} compares numbers, so targets must be float; got "
                         f"{targets.dtype}; convert them with y.float() (or use 'cross_entropy' for classes)")
    if kind == "multiclass" and targets.dtype in _SMALL_INTS:  # numpy's int32 labels: torch wants int64
        return targets.long()
    return targets


_SMALL_INTS = (torch.int8, torch.uint8, torch.int16, torch.int32)


def make_optimizer(optimizer: Any, model: nn.Module, lr: float | None,
                   options: dict[str, Any]) -> torch.optim.Optimizer:
    """An optimizer over the model's parameters: built from a name, or the given object (or several)."""
    options = check_optimizer_options(options)
    if isinstance(optimizer, (list, tuple)) and optimizer and all(
            isinstance(o, torch.optim.Optimizer) for o in optimizer):
        optimizer = _several(optimizer) if len(optimizer) > 1 else optimizer[0]
    if isinstance(optimizer, torch.optim.Optimizer):
        if options:
            raise ValueError("optimizer options (momentum, weight_decay, optimizer_options) apply only "
                             "to an optimizer given by name; set them on your optimizer object instead")
        _check_covers(optimizer, model)
        for group in optimizer.param_groups if lr is None else ():
            number = real_number(group.get("lr"))
            if number is None or not 0 <= number < math.inf:
                raise ValueError(f"the optimizer's learning rate is {group.get('lr')!r}; build it with a finite lr "
                                 "like lr=0.01 (or pass lr= to the Loop)")
        if lr is not None:  # as loop.lr = lr: the groups keep the ratios they were built with
            set_lr(optimizer, lr)
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS_BY_NAME:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS_BY_NAME)} "
                         "or pass a torch.optim.Optimizer (or a list of them, stepped together)")
    cls = OPTIMIZERS_BY_NAME[optimizer.lower()]
    options = _check_option_values(cls, options)
    try:
        return cls(model.parameters(), lr=0.01 if lr is None else lr, **options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad options for {optimizer!r}: {error}. {cls.__name__} accepts the "
                         f"keyword arguments of torch.optim.{cls.__name__}") from None


def _several(optimizers: Any) -> torch.optim.Optimizer:
    """Several optimizers stepped together, each over its own parameters."""
    from trainlab.optimizers import Optimizers

    seen: set[int] = set()
    for optimizer in optimizers:
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if ids & seen:
            raise ValueError("two of the optimizers hold the same parameter; give each its own parameters "
                             "(SparseAdam for the sparse embeddings, Adam for the rest, say)")
        seen |= ids
    return Optimizers(optimizers)


def choose_optimizer(optimizer: Any, model: nn.Module, lr: Any, momentum: Any, weight_decay: Any,
                     more: Any) -> tuple[torch.optim.Optimizer, str | None]:
    """The Loop's optimizer from its arguments, and its name (None for an optimizer given as an object)."""
    options = check_optimizer_options(more)
    options.update({k: v for k, v in (("momentum", momentum), ("weight_decay", weight_decay)) if v is not None})
    chosen = make_optimizer(optimizer, model, None if lr is None else check_lr(lr), options)
    return chosen, optimizer.lower() if isinstance(optimizer, str) else None


def switched_optimizer(name: Any, model: nn.Module, lr: float, weight_decay: float, scheduler: Any,
                       options: dict[str, Any]) -> torch.optim.Optimizer:
    """A fresh optimizer by name for ``Loop.set_optimizer``, with the lr and weight decay in use."""
    if scheduler is not None:
        raise ValueError("this loop's scheduler drives its optimizer; build a new Loop to change both")
    if not isinstance(name, str):
        raise ValueError(f"set_optimizer takes a name like 'adam'; got {name!r}")
    cls = OPTIMIZERS_BY_NAME.get(name.lower())
    if cls is None or "weight_decay" in inspect.signature(cls).parameters:  # LBFGS, Rprop have none
        options.setdefault("weight_decay", weight_decay)
    return make_optimizer(name, model, lr, options)


def check_optimizer_options(options: Any) -> dict[str, Any]:
    """A copy of ``optimizer_options`` as a dict of keyword arguments (None: no options).

    Example: ``check_optimizer_options({"momentum": 0.9, "nesterov": True})``
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError("optimizer_options must be a dict of keyword arguments for the optimizer, like "
                         f"{{'momentum': 0.9, 'nesterov': True}}; got {type(options).__name__}")
    bad_keys = [key for key in options if not isinstance(key, str)]
    if bad_keys:
        raise ValueError(f"optimizer_options' keys must be option names like 'momentum'; got {bad_keys[0]!r}")
    if "lr" in options:
        # The loop owns the learning rate: it checks it, records its changes and sets every group.
        raise ValueError("the learning rate is not an optimizer option here: pass lr= to the Loop "
                         "(Loop(..., lr=0.1)) or set loop.lr = 0.1")
    return dict(options)


def _check_option_values(cls: type[torch.optim.Optimizer], options: dict[str, Any]) -> dict[str, Any]:
    """Refuse NaN/inf numbers and bools where the optimizer expects a number; numbers become floats."""
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
    checked = {}
    for name, value in options.items():
        default = defaults.get(name)
        wants_number = isinstance(default, (int, float)) and not isinstance(default, bool)
        if wants_number and is_bool(value):
            raise ValueError(f"{name} must be a number, not a bool; got {value!r}")
        if not all(map(math.isfinite, setting_numbers(value))):  # torch refuses only negative values
            raise ValueError(f"{name} must be a finite number (NaN or inf would turn the weights to NaN "
                             f"at the first update); got {value!r}")
        checked[name] = _plain(value) if wants_number or isinstance(value, tuple) else value

    return checked


def _check_covers(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    model_params = {id(p) for p in model.parameters()}
    foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in model_params]
    if foreign:
        raise ValueError("the optimizer holds parameters that are not the model's; build it from "
                         "model.parameters() of the same model you pass to the Loop")


def check_lr(value: Any) -> float:
    """A learning rate: a finite number above zero."""
    number = real_number(value)
    if number is None:
        raise ValueError(f"the learning rate must be a single number like 0.01; got {short(value)}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"the learning rate must be a finite number above 0, like 0.01; got {short(value)}")
    return number


def set_lr(optimizer: torch.optim.Optimizer, value: Any) -> float:
    """Set every parameter group's lr, keeping their ratios (all scaled by the same factor); returns it."""
    value = check_lr(value)
    groups = optimizer.param_groups
    first = groups[0]["lr"]
    for group in groups[1:]:
        if first:  # at 0 (annealed, or a frozen first group) there is no ratio: the others stay
            group["lr"] *= value / first
    groups[0]["lr"] = value
    return value


def set_weight_decay(optimizer: torch.optim.Optimizer, value: Any, shares: list[float] | None = None) -> float:
    """Set the parameter groups' weight decay, each ``value * share`` (its share as built: 0 stays 0); returns it.

    ValueError for an optimizer without a weight decay."""
    value = check_weight_decay(value)
    groups = optimizer.param_groups
    if not all("weight_decay" in group for group in groups):
        raise ValueError(f"{type(optimizer).__name__} has no weight_decay setting")
    for group, share in zip(groups, shares or [1.0] * len(groups)):
        group["weight_decay"] = value * share if share != 1.0 else value
    return value


def check_clip(value: Any) -> float | None:
    """A gradient-clipping threshold: None (no clipping) or a finite number above zero."""
    return positive_or_none(value, "clip_grad_norm is the most the gradients' total norm may be, a number above "
                                   "0 like 1.0, or None for no clipping")


def check_weight_decay(value: Any) -> float:
    """A weight decay: a finite number, 0 or more."""
    number = real_number(value)
    if number is None or not 0 <= number < math.inf:
        raise ValueError(f"weight_decay must be a finite number, 0 or more, like 1e-4; got {short(value)}")
    return number


def check_seed(seed: Any, allow_none: bool = False) -> None:
    """Refuse a seed torch's generators cannot take (they take whole numbers from -2**63 to 2**64 - 1)."""
    if seed is None and allow_none:
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not -2**63 <= seed < 2**64:
        none = ", or None for no fixed seed" if allow_none else ""
        raise ValueError(f"seed picks the random numbers: a whole number like seed=0{none}; got {short(seed)}")


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


def _plain(value: Any) -> Any:
    """Numbers as Python floats (in a tuple too, like Adam's betas): checkpoints are read with weights_only=True."""
    if isinstance(value, tuple):
        return tuple(_plain(part) for part in value)
    number = real_number(value)
    return value if number is None else float(number)


def setting_numbers(value: Any) -> list[float]:
    """The numbers in an optimizer setting: one, or each of a tuple like Adam's betas (non-numbers left out)."""
    parts = value if isinstance(value, (tuple, list)) else (value,)
    return [number for number in map(real_number, parts) if number is not None]
