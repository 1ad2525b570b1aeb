"""Learning-rate schedulers: what may be given, building one on the loop's optimizer, stepping it.

A scheduler is a ``torch.optim.lr_scheduler`` object, or a function ``optimizer -> scheduler``
(so it can be built on the optimizer the loop makes from a name). The loop steps it after
every update (``scheduler_interval="step"``) or after every epoch (the default);
ReduceLROnPlateau is stepped after every epoch with the number it watches (``scheduler_metric``:
"val_loss" by default, else "loss"; or "val_accuracy", "accuracy" with ``mode="max"``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_scheduler_argument", "make_scheduler", "step_after_epoch", "plateau_metric"]

_Plateau = torch.optim.lr_scheduler.ReduceLROnPlateau

_SCHEDULER_HINT = ("scheduler must be a torch.optim.lr_scheduler built on the loop's optimizer, "
                   "or a function optimizer -> scheduler, e.g. lambda opt: StepLR(opt, step_size=10)")


def check_scheduler_argument(scheduler: Any) -> None:
    """Refuse what cannot become a scheduler, before a given optimizer object is touched."""
    if isinstance(scheduler, type):  # StepLR itself, not StepLR(opt, ...): it needs its settings
        raise ValueError(f"scheduler={scheduler.__name__} is the class; give its settings too: "
                         f"scheduler=lambda opt: {scheduler.__name__}(opt, ...) (or a scheduler object)")
    if scheduler is not None and not callable(scheduler) and not hasattr(scheduler, "step"):
        raise ValueError(_SCHEDULER_HINT)


def make_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler object (built by a given function if need be), checked to drive ``optimizer``."""
    if scheduler is None:
        return None
    if callable(scheduler) and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)
    if not hasattr(scheduler, "step") or getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError(_SCHEDULER_HINT)
    return scheduler


def plateau_metric(scheduler: Any, interval: str, metric: Any, validation: bool, accuracy: bool) -> str | None:
    """The epoch number a ReduceLROnPlateau watches, checked against its mode; None for other schedulers."""
    if not isinstance(scheduler, _Plateau):
        if metric is not None:
            raise ValueError("scheduler_metric names what a ReduceLROnPlateau watches; this loop's scheduler is "
                             f"{type(scheduler).__name__ if scheduler is not None else 'None'}")
        return None
    if interval == "step":
        raise ValueError("ReduceLROnPlateau watches a number that is measured once an epoch (the validation loss): "
                         "use scheduler_interval='epoch' (the default)")
    known = ["loss"] + (["accuracy"] if accuracy else [])
    known += [f"val_{name}" for name in known] if validation else []
    if metric is None:
        metric = "val_loss" if validation else "loss"
    if metric not in known:
        raise ValueError(f"scheduler_metric={metric!r} is not recorded by this loop; choose one of {known}")
    wants = "max" if metric.endswith("accuracy") else "min"
    if scheduler.mode != wants:
        raise ValueError(f"the ReduceLROnPlateau has mode={scheduler.mode!r} but watches {metric!r}, which "
                         f"{'rises' if wants == 'max' else 'falls'} as the model learns: build it with mode={wants!r}, "
                         f"or watch {'val_accuracy' if wants == 'min' else 'val_loss'} "
                         f"(scheduler_metric={'val_accuracy' if wants == 'min' else 'val_loss'!r})")
    return metric


def step_after_epoch(scheduler: Any, interval: str, log: dict[str, float], metric: str | None = None) -> None:
    """At an epoch's end, step a scheduler that runs by epoch; one that raises (OneCycleLR past its end)
    is left as it was."""
    if interval != "epoch":
        return
    saved = scheduler.state_dict()
    try:
        if isinstance(scheduler, _Plateau):
            scheduler.step(log[metric] if metric in log else log.get("val_loss", log["loss"]))
        else:
            scheduler.step()
    except BaseException:
        scheduler.load_state_dict(saved)
        raise
