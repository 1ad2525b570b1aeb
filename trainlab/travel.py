"""The loop's moves in time, as its methods: each delegates to the loop's ``TimeTravel`` (``time_travel.py``).

``Loop`` names each in its class body (``snapshot = travel.snapshot``), so ``loop.snapshot()``,
``loop.rewind(3)`` and the rest are the loop's own; the work, and what each move puts back, is in
``time_travel.py``.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from trainlab.snapshot import Snapshot

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["snapshot", "restore", "rewind", "rewind_depth", "reset", "save", "load", "excursion", "update_ratios"]


def update_ratios(self: Loop, recent: bool = False) -> dict[str, float]:
    """How far the last update moved each parameter, relative to its size: ||change|| / ||weights||.

    Measured when asked, by replaying the last update from a keyframe ({} when the keyframes
    no longer reach it). ``recent=True``, for plots redrawn while training: the latest update
    measured so far, at no cost, and the next update is measured."""
    with self._guard:
        return self._time.update_ratios(recent)


def snapshot(self: Loop, name: str | None = None) -> Snapshot:
    """An exact copy of the loop's state to ``restore`` later (mid-batch: the batch's start)."""
    return self._time.snapshot(name)


def restore(self: Loop, snapshot: Snapshot) -> None:
    """Go back exactly to ``snapshot``; the run left behind is kept in ``history.branches``."""
    self._time.restore(snapshot)


def rewind(self: Loop, steps: int = 1) -> int:
    """Undo the last ``steps`` updates (an open batch is dropped too); returns the step now reached."""
    return self._time.rewind(steps)


@property
def rewind_depth(self: Loop) -> int:
    """How many updates ``rewind`` can undo right now."""
    return self._time.rewind_depth


def reset(self: Loop) -> None:
    """Back to the initial weights and step 0, keeping the current lr and batch size."""
    self._time.reset()


def save(self: Loop, path: str | os.PathLike) -> None:
    """Write a checkpoint to ``path`` atomically (mid-batch: the batch's start)."""
    self._time.save(path)


def load(self: Loop, path: str | os.PathLike) -> None:
    """Load a checkpoint from ``save``; a bad file raises CheckpointError and changes nothing."""
    self._time.load(path)


def excursion(self: Loop) -> AbstractContextManager[None]:
    """Steps that are not part of the run: inside, nothing is recorded, no handler runs and the scheduler
    is not stepped; afterwards the loop is exactly as it was (weights, optimizer, position, history...).
    Example: ``with loop.excursion(): loop.lr = 1.0; loop.step()`` (the lr finder's way to try lrs)."""
    return self._time.excursion()
