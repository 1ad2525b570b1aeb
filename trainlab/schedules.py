"""Learning-rate schedulers: what may be given, building one on the loop's optimizer, stepping it.

A scheduler is a ``torch.optim.lr_scheduler`` object, or a function ``optimizer -> scheduler``
(so it can be built on the optimizer the loop makes from a name). The loop steps it after
every update (``scheduler_interval="step"``) or after every epoch (the default);
ReduceLROnPlateau gets the epoch's validation loss (or its training loss).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_scheduler_argument", "make_scheduler", "step_after_epoch"]

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


def step_after_epoch(scheduler: Any, interval: str, log: dict[str, float]) -> None:
    """At an epoch's end, step a scheduler that runs by epoch; one that raises (OneCycleLR past its end)
    is left as it was."""
    if interval != "epoch":
        return
    saved = scheduler.state_dict()
    try:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(log.get("val_loss", log["loss"]))
        else:
            scheduler.step()
    except BaseException:
        scheduler.load_state_dict(saved)
        raise
