"""Keyframes: the full copies behind ``loop.rewind`` and all-or-nothing updates, one every few steps.

Copying the weights and optimizer state before every step costs as much as a step for a
large model. Instead the loop keeps a full copy (a keyframe) every ``interval`` steps, and
lands on a step in between by running the steps after the keyframe again, silently: training
is deterministic on CPU (the loop's own random stream, the epoch's seeded order), so a replay
gives the same weights, optimizer state and random state, bit for bit. A keyframe is also taken
whenever something outside a step changed the loop (a live lr, a weight edited in a cell, a jump
in time), so a replay never has to cross such a change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from torch import Tensor

from trainlab.snapshot import Snapshot

__all__ = ["Keyframe", "Keyframes", "interval_for"]


def interval_for(nbytes: int) -> int:
    """Updates between keyframes for a model whose full copy takes ``nbytes``.

    A keyframe's copy costs less than one of a step's passes over the weights, so one every 16
    steps costs a few percent at most; a rewind replays up to interval - 1 steps, and a bigger
    model's steps are slower, so its keyframes come closer together to keep a rewind under ~0.2 s
    (a 1.3M-parameter MLP's copy is 5 MB: every 8 steps).
    """
    if nbytes <= 2**20:
        return 16
    return 8 if nbytes <= 16 * 2**20 else 4


@dataclass(eq=False)
class Keyframe:
    """A full snapshot, and what replaying the updates after it needs."""

    snapshot: Snapshot
    nbytes: int
    # For each update made after it, in order: the loop's count of skipped batches when that
    # update's batch opened (so a replay stops before, not after, batches skipped as non-finite).
    skipped: list[int] = field(default_factory=list)

    @property
    def step(self) -> int:
        """The completed updates at the keyframe."""
        return self.snapshot.step

    def reaches(self, step: int) -> bool:
        """Whether a replay from here can land on ``step``."""
        return self.step <= step <= self.step + len(self.skipped)

    def skipped_at(self, step: int) -> int:
        """The skipped-batch count at ``step`` (the open of the batch that made update ``step + 1``)."""
        if step == self.step + len(self.skipped):  # no later update: the count the keyframe left
            raise LookupError(step)
        return self.skipped[step - self.step]


class Keyframes:
    """The keyframes of the current line of training, newest last, oldest dropped past a byte budget.

    The newest is always kept, whatever the budget: it is what puts back an update that failed
    half-way. A rewind keeps the keyframes up to the step it lands on; any other jump empties it.
    """

    def __init__(self, budget_bytes: int, interval: int | None = None, max_keyframes: int = 10_000) -> None:
        self.budget_bytes = budget_bytes
        self.interval = interval  # None: chosen from the model's size at the first keyframe
        self.max_keyframes = max_keyframes
        self._frames: deque[Keyframe] = deque()
        self.nbytes = 0
        self._spare: dict[str, Tensor] | None = None  # the weights of the last keyframe dropped, for reuse

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest(self) -> Keyframe | None:
        """The latest keyframe, or None after a jump."""
        return self._frames[-1] if self._frames else None

    def due(self, step: int) -> bool:
        """Whether the batch opening at ``step`` needs a keyframe (none yet, or ``interval`` updates since)."""
        newest = self.newest
        return newest is None or step - newest.step >= self.interval

    def add(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the newest keyframe; drop the oldest ones while over budget."""
        size = snapshot.nbytes
        if self.interval is None:
            self.interval = interval_for(size)
        self._frames.append(Keyframe(snapshot, size))
        self.nbytes += size
        while len(self._frames) > 1 and (self.nbytes > self.budget_bytes or len(self._frames) > self.max_keyframes):
            dropped = self._frames.popleft()
            self.nbytes -= dropped.nbytes
            self._spare = dropped.snapshot.state["model"]

    def note_update(self, skipped: int) -> None:
        """An update was made from the newest keyframe's line; ``skipped``: the count when its batch opened."""
        self._frames[-1].skipped.append(skipped)

    def reuse(self) -> dict[str, Tensor] | None:
        """The weights of a dropped keyframe, to copy the next one into; None when there is none.

        Nothing else holds them: the loop gives out copies of keyframe weights, never the weights.
        """
        spare, self._spare = self._spare, None
        return spare

    def depth(self, current_step: int) -> int:
        """How many updates ``rewind`` can undo from ``current_step`` (0 when the budget holds none)."""
        if not self._frames or self.nbytes > self.budget_bytes:
            return 0
        return current_step - self._frames[0].step

    def find(self, step: int) -> Keyframe:
        """The newest keyframe a replay can reach ``step`` from."""
        for frame in reversed(self._frames):
            if frame.reaches(step):
                return frame
        raise LookupError(step)

    def forget_after(self, step: int) -> None:
        """After a rewind to ``step``: drop what lies after it."""
        while self._frames and self._frames[-1].step > step:
            self.nbytes -= self._frames.pop().nbytes
        if self._frames:
            newest = self._frames[-1]
            del newest.skipped[step - newest.step:]

    def clear(self) -> None:
        """Forget everything (after a jump that leaves the current line)."""
        self._frames.clear()
        self.nbytes = 0
        self._spare = None
