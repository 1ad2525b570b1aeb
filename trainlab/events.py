"""Named events: the loop fires them; handlers (widgets, callbacks, a learner's own functions) listen."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["STAGES", "EVENTS", "IN_STEP", "Events", "Handle"]

#: The four stages of a training step, in the order they run.
STAGES: tuple[str, ...] = ("forward", "loss", "backward", "update")

#: Every event a handler can listen to: ``before_``/``after_`` each stage, epoch and fit,
#: plus ``after_change`` (a live hyperparameter changed) and ``after_restore``
#: (snapshot, rewind, reset or load moved the loop in time).
EVENTS: tuple[str, ...] = tuple(
    f"{when}_{what}" for what in (*STAGES, "epoch", "fit") for when in ("before", "after")
) + ("after_change", "after_restore")

Handler = Callable[[Any], None]

#: Events fired inside a training step, while its batch is open: a handler here that changes the
#: loop (its gradients, its weights) changes what the step computes. ``before_epoch`` fires when a
#: batch opens the epoch; ``after_epoch`` and ``after_update`` come once the step has committed.
IN_STEP: frozenset[str] = frozenset({"before_epoch", "before_forward", "after_forward", "before_loss",
                                     "after_loss", "before_backward", "after_backward", "before_update"})


class Handle:
    """What ``loop.on`` returns: call ``remove()`` to stop listening."""

    def __init__(self, handlers: list[Handler], fn: Handler, on_remove: Callable[[], None] | None = None) -> None:
        self._handlers = handlers
        self.fn = fn
        self._on_remove = on_remove

    def remove(self) -> None:
        """Stop calling the handler; removing twice is harmless."""
        if self.fn in self._handlers:
            self._handlers.remove(self.fn)
            if self._on_remove is not None:
                self._on_remove()


class Events:
    """A registry of handlers per event name, called in the order they were added."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {name: [] for name in EVENTS}
        # Handlers inside a step that may change it: while there are any, the loop keeps a full
        # copy before every step, since replaying steps (rewind) without them would differ.
        self.in_step_writers = 0

    def on(self, name: str, fn: Handler, observer: bool = False) -> Handle:
        """Call ``fn(loop)`` whenever the event ``name`` fires (``observer``: fn only reads the loop)."""
        if name not in self._handlers:
            raise ValueError(f"unknown event {name!r}; choose one of: {', '.join(EVENTS)}")
        if not callable(fn):
            raise ValueError(f"the handler for {name!r} must be callable, like fn(loop); got {fn!r}")
        handlers = self._handlers[name]
        handlers.append(fn)
        if observer or name not in IN_STEP:
            return Handle(handlers, fn)
        self.in_step_writers += 1
        return Handle(handlers, fn, self._writer_removed)

    def _writer_removed(self) -> None:
        self.in_step_writers -= 1

    def fire(self, name: str, loop: Any) -> None:
        """Call every handler of ``name`` with the loop (a copy of the list: handlers may remove themselves)."""
        handlers = self._handlers[name]
        if handlers:
            for fn in tuple(handlers):
                fn(loop)
