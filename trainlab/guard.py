"""Who may touch a loop, and when Ctrl-C lands: one thread at a time, interrupts only between batches.

A dashboard plays the loop in a background thread while the kernel stays free; a cell
that calls a stage meanwhile must get a clear refusal, not a race. And Ctrl-C (or
Kernel → Interrupt) must never leave half a step behind, so inside ``fit`` it becomes a
stop at the next batch boundary.
"""

from __future__ import annotations

import signal
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from trainlab.errors import LoopBusyError

__all__ = ["Guard", "interrupts_deferred", "use_threads"]

_BUSY = ("the loop is playing in the background (the dashboard's Play); pause it (the Pause button) "
         "before calling it from a cell")


class Guard:
    """A re-entrant lock that refuses instead of waiting (a plain class: it is entered five times a step)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise LoopBusyError(_BUSY)

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


@contextmanager
def interrupts_deferred(request_stop: Callable[[], None],
                        message: str = "training stopped at a batch boundary; call fit() again to continue"
                        ) -> Iterator[None]:
    """Turn Ctrl-C into ``request_stop()`` (the loop stops at its next batch boundary), then re-raise it.

    Only the main thread receives signals; elsewhere (the dashboard's player) this does nothing.
    A second Ctrl-C interrupts at once, for a loop that never reaches a boundary.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = []

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        request_stop()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is on_interrupt:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt(message)


_threads = {"users": 0, "before": 0}  # loops alive that set torch's threads; the count before the first


def use_threads(owner: Any, threads: int) -> None:
    """Set torch's intra-op threads for the whole process (torch has no other kind) while ``owner`` lives.

    When the last loop that set them is garbage-collected, torch gets back the count it had.
    """
    if not _threads["users"]:
        _threads["before"] = torch.get_num_threads()
    _threads["users"] += 1
    weakref.finalize(owner, _release_threads)
    torch.set_num_threads(threads)


def _release_threads() -> None:
    _threads["users"] -= 1
    if not _threads["users"]:
        torch.set_num_threads(_threads["before"])
