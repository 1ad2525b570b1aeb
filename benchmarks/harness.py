"""Side-by-side timing: bare and trainlab runs alternate (A B A B ...), and the median ratio is reported."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One benchmark's result: median seconds per step of each side and their ratio."""

    name: str
    bare_s: float
    lab_s: float
    ratio: float
    target: float | None
    steps: int
    note: str = ""

    @property
    def verdict(self) -> str:
        """"ok" when the median ratio meets its target."""
        if self.target is None:
            return ""
        return "ok" if self.ratio <= self.target else "MISSED"


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """Seconds taken by ``run`` and the steps it reports (garbage collected first, as timeit does)."""
    gc.collect()  # else a full collection left over from building (the dashboard's ~200k objects) lands in the run
    start = time.perf_counter()
    steps = run()
    return time.perf_counter() - start, steps


def compare(name: str, bare: Callable[[], Callable[[], int]], lab: Callable[[], Callable[[], int]],
            rounds: int, target: float | None, note: str = "") -> Row:
    """Alternate fresh bare and trainlab runs ``rounds`` times; each factory builds a run from scratch.

    Building (model copies, loops) is not timed; only the returned run is.
    """
    bare_times, lab_times, ratios = [], [], []
    timed(bare())  # warm up both paths (allocator, first-call costs)
    timed(lab())
    for _ in range(rounds):
        bare_seconds, bare_steps = timed(bare())
        lab_seconds, lab_steps = timed(lab())
        bare_times.append(bare_seconds / bare_steps)
        lab_times.append(lab_seconds / lab_steps)
        ratios.append(lab_times[-1] / bare_times[-1])
    return Row(name, statistics.median(bare_times), statistics.median(lab_times), statistics.median(ratios),
               target, bare_steps, note)
