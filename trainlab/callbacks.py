"""Callbacks: objects that attach to a loop through its events (early stopping, stop-at-target, your own).

A callback is anything with ``attach(loop) -> list[Handle]`` (the ``Attachable`` protocol).
Subclass ``Callback`` and name methods after events (``def after_epoch(self, loop)``): its
``attach`` listens to each of them.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Protocol, runtime_checkable

from torch import Tensor

from trainlab.arguments import is_whole_number, real_number
from trainlab.events import EVENTS, Handle

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Attachable", "Callback", "EarlyStopping", "StopAtTarget", "attach_all", "attached"]


@runtime_checkable
class Attachable(Protocol):
    """What ``fit(callbacks=...)`` and the dashboard accept: an object that attaches itself to a loop."""

    def attach(self, loop: Loop) -> list[Handle]:
        """Start listening to ``loop``'s events; returns the handles that stop it."""


class Callback:
    """A base for callbacks: each method named after an event (``after_epoch``...) is called at that event.

    Example::

        class PrintLoss(tl.Callback):
            def after_epoch(self, loop):
                print(loop.last_epoch_log["loss"])

        loop.fit(5, callbacks=[PrintLoss()])
    """

    #: True promises the methods only read the loop (plots, logging): rewind then costs nothing extra.
    observer: bool = False

    def attach(self, loop: Loop) -> list[Handle]:
        """Listen to every event this callback has a method for; returns the handles."""
        methods = [(name, getattr(self, name)) for name in EVENTS if callable(getattr(self, name, None))]
        return [loop.on(name, method, observer=self.observer) for name, method in methods]


def attach_all(callbacks: Any, loop: Loop) -> list[Handle]:
    """Attach every callback to ``loop``; returns their handles. One refused leaves none attached."""
    if isinstance(callbacks, Attachable):
        raise ValueError("callbacks is a list: callbacks=[tl.EarlyStopping()]")
    handles: list[Handle] = []
    try:
        for callback in callbacks:
            if not isinstance(callback, Attachable):
                raise ValueError(f"callbacks need an attach(loop) method (like tl.EarlyStopping); got {callback!r}")
            handles += callback.attach(loop)
    except BaseException:
        for handle in handles:
            handle.remove()
        raise
    return handles


@contextmanager
def attached(callbacks: Any, loop: Loop) -> Iterator[list[Handle]]:
    """``callbacks`` attached to ``loop`` for the block (all or none), removed when it ends."""
    handles = attach_all(callbacks, loop)
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def _monitor_name(monitor: Any, who: str) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"{who} monitors a metric by name, like 'val_loss' or 'val_accuracy'; got {monitor!r}")
    return monitor


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"  # accuracy should rise, losses fall


def _check_monitor(loop: Loop, monitor: str, who: str) -> None:
    keys = loop.history.epoch_keys
    if monitor not in keys:
        hint = " (build the loop with validation_split=0.2 or val_data)" if monitor.startswith("val_") else ""
        raise ValueError(f"{who} monitors {monitor!r}, which this loop does not record{hint}; "
                         f"choose one of {keys}")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs in a row (as Keras does).

    With ``restore_best=True`` (Keras's name, ``restore_best_weights``, works too) the model's
    weights go back to the best epoch's when it stops; the history keeps every epoch, so the
    plot still shows what came after.

    Example: ``loop.fit(100, callbacks=[tl.EarlyStopping(patience=5)])``
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "auto", *, restore_best_weights: bool | None = None) -> None:
        if not is_whole_number(patience) or patience < 0:
            raise ValueError(f"patience must be a whole number of epochs, 0 or more; got {patience!r}")
        delta = real_number(min_delta)
        if delta is None or not 0 <= delta < math.inf:  # NaN or inf would never count an improvement
            raise ValueError(f"min_delta must be a finite number, 0 or more, like 0.001; got {min_delta!r}")
        self.monitor = _monitor_name(monitor, "EarlyStopping")
        self.patience = patience
        self.min_delta = delta
        for name, flag in (("restore_best", restore_best), ("restore_best_weights", restore_best_weights)):
            if flag is not None and not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False; got {flag!r}")
        self.restore_best = restore_best if restore_best_weights is None else restore_best_weights
        self.mode = _mode_for(monitor, mode)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self._best_weights: dict[str, Tensor] | None = None

    def attach(self, loop: Loop) -> list[Handle]:
        """Listen to the loop's epochs; returns the handles (``fit(callbacks=...)`` removes them)."""
        _check_monitor(loop, self.monitor, "EarlyStopping")
        return super().attach(loop)

    def before_fit(self, loop: Loop) -> None:
        """Each fit starts counting afresh."""
        self._reset()

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def after_epoch(self, loop: Loop) -> None:
        """Note an improvement, or stop once there has been none for ``patience`` epochs."""
        log = loop.last_epoch_log
        value = log.get(self.monitor, math.nan)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, log["epoch"], 0
            if self.restore_best:
                self._best_weights = {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience or math.isnan(value):
            self.stopped_epoch = log["epoch"]
            reason = (f"early stopping: {self.monitor} has not improved for {self.wait} epochs "
                      f"(best {self.best:.4g} after epoch {self.best_epoch + 1})" if self.best_epoch is not None
                      else f"early stopping: {self.monitor} is {value}")
            if self.restore_best and self._best_weights is not None:
                loop.model.load_state_dict(self._best_weights)
                reason += "; the best epoch's weights are restored"
            loop.stop(reason)


class StopAtTarget(Callback):
    """Stop as soon as ``monitor`` reaches ``target`` (e.g. val_accuracy 0.95): training has converged enough.

    Example: ``loop.fit(100, callbacks=[tl.StopAtTarget("val_accuracy", 0.95)])``
    """

    def __init__(self, monitor: str = "val_accuracy", target: float = 0.95, mode: str = "auto") -> None:
        number = real_number(target)
        if number is None or not math.isfinite(number):
            raise ValueError(f"target must be a finite number, like 0.95; got {target!r}")
        self.monitor = _monitor_name(monitor, "StopAtTarget")
        self.target = number
        self.mode = _mode_for(monitor, mode)
        self.reached_epoch: int | None = None

    def attach(self, loop: Loop) -> list[Handle]:
        """Listen to the loop's epochs; returns the handles."""
        _check_monitor(loop, self.monitor, "StopAtTarget")
        return super().attach(loop)

    def after_epoch(self, loop: Loop) -> None:
        """Stop once the monitored value reaches the target."""
        log = loop.last_epoch_log
        value = log.get(self.monitor, math.nan)
        reached = value <= self.target if self.mode == "min" else value >= self.target
        if reached:
            self.reached_epoch = log["epoch"]
            loop.stop(f"target reached: {self.monitor} = {value:.4g} after epoch {log['epoch'] + 1}")
