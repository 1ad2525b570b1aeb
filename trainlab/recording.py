"""What the recorders share (``Distributions``, ``ActivationStats``): numbers measured every k steps,
kept in bounded memory.

A recorder listens to its loop's ``after_update`` (as an observer: it only reads) and measures at
every ``every``-th step; ``record()`` measures now. Its rows live in ``Rows``: arrays allocated up
to ``max_rows`` and never beyond, so a run of a million steps holds no more than one of a thousand.
When the table is full, the newest half stays whole and the older rows are thinned to a quarter of
the table, evenly over their steps (as ``History`` thins its old steps): the run's whole story, in
less detail the older it is. A jump back in time (rewind, restore, reset) drops the rows of the steps
undone. A recorder that is not attached costs the loop nothing: ``detach()`` removes its handlers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from trainlab.events import Handle
from trainlab.arguments import whole_number

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Rows", "Recorder"]

_FIRST_CAPACITY = 64


class Rows:
    """A table of numbers per recorded step, at most ``max_rows`` rows: full, its older rows are thinned."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.thinnings = 0  # how many times older rows were thinned
        self.n = 0
        self._step = np.empty(0, np.int64)
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.n

    @property
    def steps(self) -> np.ndarray:
        """The step of each row, increasing (a read-only view)."""
        return _read_only(self._step[:self.n])

    def column(self, name: str) -> np.ndarray:
        """A column's rows, (n, ...) (a read-only view; empty before the first row)."""
        if name not in self._columns:
            return np.empty((0,), np.float64)
        return _read_only(self._columns[name][:self.n])

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold (they stop growing at ``max_rows`` rows)."""
        return self._step.nbytes + sum(column.nbytes for column in self._columns.values())

    def append(self, step: int, values: dict[str, np.ndarray]) -> None:
        """Add the row of ``step``; a step at or before the last row's replaces the rows from there on."""
        if self.n and step <= self._step[self.n - 1]:
            self.drop_after(step - 1)
        if self.n == self.max_rows:
            self._thin()
        if self.n == len(self._step):
            self._grow(values)
        self._step[self.n] = step
        for name, value in values.items():
            self._columns[name][self.n] = value
        self.n += 1

    def drop_after(self, step: int) -> None:
        """Forget the rows of steps after ``step`` (they were undone)."""
        self.n = int(np.searchsorted(self._step[:self.n], step, side="right"))

    def _grow(self, values: dict[str, np.ndarray]) -> None:
        capacity = min(self.max_rows, max(_FIRST_CAPACITY, 2 * len(self._step)))
        self._step = _resized(self._step, capacity, ())
        for name, value in values.items():
            value = np.asarray(value)
            old = self._columns.get(name, np.empty((0,) + value.shape, value.dtype))
            self._columns[name] = _resized(old, capacity, value.shape)

    def _thin(self) -> None:
        """Keep the newest half whole and a quarter of the table's worth of the older rows, evenly spread."""
        recent = self.max_rows // 2
        old = self.n - recent
        kept = np.unique(np.linspace(0, old - 1, max(1, self.max_rows // 4)).round().astype(np.int64))
        rows = np.concatenate([kept, np.arange(old, self.n)])
        self._step[:len(rows)] = self._step[rows]
        for column in self._columns.values():
            column[:len(rows)] = column[rows]
        self.n = len(rows)
        self.thinnings += 1


def _resized(array: np.ndarray, capacity: int, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full((capacity,) + tuple(shape), np.nan if array.dtype.kind == "f" else 0, array.dtype)
    out[:len(array)] = array
    return out


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class Recorder:
    """Measures every ``every`` steps from the loop's ``after_update``; subclasses say what (``measure``)."""

    def __init__(self, loop: Loop, every: int, max_rows: int, attach: bool) -> None:
        self.loop = loop
        self.every = whole_number(every, "every", 1, "10")  # steps between records
        self.rows = Rows(whole_number(max_rows, "max_rows", 8, "1000"))
        self._handles: list[Handle] = []
        if attach:
            self.attach()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def steps(self) -> np.ndarray:
        """The step of each record (the updates done when it was measured), increasing."""
        return self.rows.steps

    @property
    def attached(self) -> bool:
        """Whether it records as the loop trains."""
        return bool(self._handles)

    def attach(self) -> None:
        """Record every ``every`` steps from now on (and drop the records of steps a rewind undoes)."""
        if not self._handles:
            self._handles = [self.loop.on("after_update", self._after_update, observer=True),
                             self.loop.on("after_restore", self._after_restore, observer=True)]

    def detach(self) -> None:
        """Stop recording: the loop runs as if it had never been attached; the records stay."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def record(self, step: int | None = None) -> None:
        """Measure now, as the record of ``step`` (default: the loop's current step)."""
        self.rows.append(self.loop.state.step if step is None else int(step), self.measure())

    def measure(self) -> dict[str, Any]:
        """One record's numbers, by column name (arrays of a fixed shape): what each kind of recorder measures."""
        raise TypeError(f"{type(self).__name__} is a Recorder and must define measure()")

    def _after_update(self, loop: Loop) -> None:
        if loop.state.step % self.every == 0:
            self.record()

    def _after_restore(self, loop: Loop) -> None:
        self.rows.drop_after(loop.state.step)
