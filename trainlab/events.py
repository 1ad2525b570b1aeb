"""Named events: the loop fires them; handlers (widgets, callbacks, a learner's own functions) listen."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["STAGES", "EVENTS", "Events", "Handle"]

#: The four stages of a training step, in the order they run.
STAGES: tuple[str, ...] = ("forward", "loss", "backward", "update")

#: Every event a handler can listen to: ``before_``/``after_`` each stage, epoch and fit,
#: plus ``after_change`` (a live hyperparameter changed) and ``after_restore``
#: (snapshot, rewind, reset or load moved the loop in time).
EVENTS: tuple[str, ...] = tuple(
    f"{when}_{what}" for what in (*STAGES, "epoch", "fit") for when in ("before", "after")
) + ("after_change", "after_restore")

Handler = Callable[[Any], None]


class Handle:
    """What ``loop.on`` returns: call ``remove()`` to stop listening."""

    def __init__(self, handlers: list[Handler], fn: Handler) -> None:
        self._handlers = handlers
        self.fn = fn

    def remove(self) -> None:
        """Stop calling the handler; removing twice is harmless."""
        if self.fn in self._handlers:
            self._handlers.remove(self.fn)


class Events:
    """A registry of handlers per event name, called in the order they were added."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {name: [] for name in EVENTS}

    def on(self, name: str, fn: Handler) -> Handle:
        """Call ``fn(loop)`` whenever the event ``name`` fires."""
        if name not in self._handlers:
            raise ValueError(f"unknown event {name!r}; choose one of: {', '.join(EVENTS)}")
        if not callable(fn):
            raise ValueError(f"the handler for {name!r} must be callable, like fn(loop); got {fn!r}")
        handlers = self._handlers[name]
        handlers.append(fn)
        return Handle(handlers, fn)

    def fire(self, name: str, loop: Any) -> None:
        """Call every handler of ``name`` with the loop (a copy of the list: handlers may remove themselves)."""
        handlers = self._handlers[name]
        if handlers:
            for fn in tuple(handlers):
                fn(loop)
