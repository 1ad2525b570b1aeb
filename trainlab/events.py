"""Named events: the loop fires them; handlers (widgets, callbacks, a learner's own functions) listen.

Every event is declared once, in ``Event``, with a line saying when it fires. Handlers are
registered by the event or by its name: ``loop.on(Event.AFTER_UPDATE, fn)`` and
``loop.on("after_update", fn)`` are the same. A ``Handle`` stops listening with ``remove()``, or
at the end of a ``with`` block.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["STAGES", "Event", "EVENTS", "IN_STEP", "Events", "Handle"]

#: The four stages of a training step, in the order they run.
STAGES: tuple[str, ...] = ("forward", "loss", "backward", "update")


class Event(str, Enum):
    """Every event a handler can listen to; its value is its name (``Event.AFTER_UPDATE == "after_update"``)."""

    BEFORE_FORWARD = "before_forward"
    """A batch is open (drawn if none was) and the model is about to run on it."""
    AFTER_FORWARD = "after_forward"
    """The model's outputs are in ``loop.last_outputs``."""
    BEFORE_LOSS = "before_loss"
    """The loss is about to be computed from the outputs and targets."""
    AFTER_LOSS = "after_loss"
    """The loss is in ``loop.last_loss`` (finite: a NaN/inf raised or skipped the batch instead)."""
    BEFORE_BACKWARD = "before_backward"
    """Gradients are about to be cleared and backpropagated."""
    AFTER_BACKWARD = "after_backward"
    """Every parameter's ``.grad`` is filled; their norms are in ``loop.last_grad_norms``."""
    BEFORE_UPDATE = "before_update"
    """The optimizer is about to move the parameters."""
    AFTER_UPDATE = "after_update"
    """The parameters moved and the batch is closed; the step's log is ``loop.last_log``."""
    BEFORE_EPOCH = "before_epoch"
    """The first batch of a new epoch has been drawn (its order too)."""
    AFTER_EPOCH = "after_epoch"
    """An epoch ended (and was validated); its log is ``loop.last_epoch_log``."""
    BEFORE_FIT = "before_fit"
    """``fit`` starts, its callbacks attached."""
    AFTER_FIT = "after_fit"
    """``fit`` reached its epochs (or was stopped at a batch boundary)."""
    AFTER_CHANGE = "after_change"
    """A live hyperparameter changed (lr, batch size...); it is the last of ``history.changes``."""
    AFTER_RESTORE = "after_restore"
    """The loop moved in time: restore, rewind, reset or load."""

    def __str__(self) -> str:
        return self.value


#: Every event's name, in ``Event``'s order.
EVENTS: tuple[str, ...] = tuple(event.value for event in Event)

Handler = Callable[["Loop"], None]

#: Events fired inside a training step, while its batch is open: a handler here that changes the
#: loop (its gradients, its weights) changes what the step computes. ``before_epoch`` fires when a
#: batch opens the epoch; ``after_epoch`` and ``after_update`` come once the step has committed.
IN_STEP: frozenset[str] = frozenset({"before_epoch", "before_forward", "after_forward", "before_loss",
                                     "after_loss", "before_backward", "after_backward", "before_update"})


class Handle:
    """What ``loop.on`` returns: call ``remove()`` to stop listening, or use it in a ``with`` block.

    Example: ``with loop.on("after_update", print_loss): loop.fit(3)`` listens during the fit only.
    """

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

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class Events:
    """A registry of handlers per event name, called in the order they were added."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {name: [] for name in EVENTS}
        # Handlers inside a step that may change it: while there are any, the loop keeps a full
        # copy before every step, since replaying steps (rewind) without them would differ.
        self.in_step_writers = 0
        self.starting: str | None = None  # the before_* event whose handlers are running, if any

    def on(self, name: str | Event, fn: Handler, observer: bool = False) -> Handle:
        """Call ``fn(loop)`` whenever the event ``name`` fires (``observer``: fn only reads the loop)."""
        if isinstance(name, Event):  # a str Enum hashes by member name: look it up by its value
            name = name.value
        if not isinstance(name, str) or name not in self._handlers:
            raise ValueError(f"unknown event {name!r}; choose one of: {', '.join(EVENTS)}")
        if not callable(fn):
            raise ValueError(f"the handler for {name!r} must be callable, like fn(loop); got {fn!r}")
        handlers = self._handlers[name]
        handlers.append(fn)
        if observer or name not in IN_STEP:
            return Handle(handlers, fn)
        self.in_step_writers += 1
        return Handle(handlers, fn, self._writer_removed)

    @property
    def quiet(self) -> bool:
        """No handler listens to any event."""
        return not any(self._handlers.values())

    def _writer_removed(self) -> None:
        self.in_step_writers -= 1

    def fire_before(self, name: str, loop: Loop) -> None:
        """Fire a before_* event; while its handlers run, ``starting`` names it (the loop refuses jumps in time)."""
        if not self._handlers[name]:  # the common case, at every stage: nobody listens
            return
        self.starting = name
        try:
            self.fire(name, loop)
        finally:
            self.starting = None

    def fire(self, name: str, loop: Loop) -> None:
        """Call every handler of ``name`` with the loop (a copy of the list: handlers may remove themselves)."""
        handlers = self._handlers[name]
        if handlers:
            for fn in tuple(handlers):
                fn(loop)
