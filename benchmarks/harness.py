"""Side-by-side timing: bare and trainlab runs alternate, in turns that swap who goes first, and the median
ratio is reported.

On a shared machine another process's burst lands in one run and not the other, and a busy machine
runs both sides slow, which flatters every ratio of fixed per-step costs. So, where ``/proc/stat`` tells
what the whole machine does (Linux), each timed run is **gated**: it starts only once the other
processes have used under ``limit`` cores for a moment, and a run during which they used more is
thrown away and run again (up to ``retries`` times; after that the row is marked "disturbed").
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Row", "Gate", "GATE", "compare", "timed"]


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
    gated: bool = False  # every timed run started and ended on a quiet machine
    disturbed: int = 0  # runs thrown away (other processes busy meanwhile) and run again

    @property
    def verdict(self) -> str:
        """"ok" when the median ratio meets its target, "MISSED" when not; "(busy machine)" when ungated."""
        if self.target is None:
            return ""
        verdict = "ok" if self.ratio <= self.target else "MISSED"
        return verdict if self.gated else f"{verdict} (busy machine)"


class Gate:
    """Waits until the rest of the machine is quiet, and tells whether it stayed quiet during a run."""

    def __init__(self, limit: float = 0.3, wait: float = 120.0, retries: int = 5, window: float = 0.3) -> None:
        self.limit, self.wait, self.retries, self.window = limit, wait, retries, window
        self.enabled = os.path.exists("/proc/stat")

    def others(self, seconds: float = 0.3) -> float:
        """Cores used by other processes over the next ``seconds``."""
        start = self.mark()
        time.sleep(seconds)
        return self.others_since(start)

    def mark(self) -> tuple[float, float, float]:
        """(wall time, the machine's busy CPU seconds, this process's CPU seconds), to measure from."""
        return time.perf_counter(), _machine_busy_seconds(), time.process_time()

    def others_since(self, mark: tuple[float, float, float]) -> float:
        """Cores used by other processes since ``mark``."""
        wall, busy, own = mark
        elapsed = time.perf_counter() - wall
        return max(0.0, (_machine_busy_seconds() - busy) - (time.process_time() - own)) / max(elapsed, 1e-9)

    def until_quiet(self) -> bool:
        """Wait (up to ``wait`` seconds) until other processes use under ``limit`` cores; whether they do."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if self.others(self.window) < self.limit:
                return True
        return False


GATE = Gate()  # ``python -m benchmarks --quick`` and the tests turn it off: they check that rows run, not speed


def _machine_busy_seconds() -> float:
    """CPU seconds every process together has used since boot (all but idle and I/O wait)."""
    with open("/proc/stat") as stat:
        fields = [int(part) for part in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal; guest time is inside user


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """Seconds taken by ``run`` and the steps it reports (garbage collected first, as timeit does)."""
    gc.collect()  # else a full collection left over from building (the dashboard's ~200k objects) lands in the run
    start = time.perf_counter()
    steps = run()
    return time.perf_counter() - start, steps


def _gated(make: Callable[[], Callable[[], int]]) -> tuple[float, int, bool, int]:
    """One timed run of a fresh ``make()`` on a quiet machine: (seconds, steps, quiet throughout, runs redone)."""
    if not GATE.enabled:
        return (*timed(make()), False, 0)
    for attempt in range(GATE.retries + 1):
        run = make()  # built before the gate: building is not timed and need not be quiet
        quiet = GATE.until_quiet()
        mark = GATE.mark()
        seconds, steps = timed(run)
        quiet = quiet and GATE.others_since(mark) < GATE.limit
        if quiet:
            return seconds, steps, True, attempt
    return seconds, steps, False, attempt


def compare(name: str, bare: Callable[[], Callable[[], int]], lab: Callable[[], Callable[[], int]],
            rounds: int, target: float | None, note: str = "") -> Row:
    """Alternate fresh bare and trainlab runs ``rounds`` times, who goes first swapping each round.

    Each factory builds a run from scratch; building (model copies, loops) is not timed, only the run.
    """
    bare_times, lab_times, ratios = [], [], []
    timed(bare())  # warm up both paths (allocator, first-call costs)
    timed(lab())
    all_quiet, redone = True, 0
    for round_ in range(rounds):
        sides = (bare, lab) if round_ % 2 == 0 else (lab, bare)
        results = {side: _gated(side) for side in sides}
        for (seconds, steps, quiet, again), times in zip((results[bare], results[lab]), (bare_times, lab_times)):
            times.append(seconds / steps)
            all_quiet, redone = all_quiet and quiet, redone + again
        ratios.append(lab_times[-1] / bare_times[-1])
    steps = results[bare][1]
    return Row(name, statistics.median(bare_times), statistics.median(lab_times), statistics.median(ratios),
               target, steps, note, gated=GATE.enabled and all_quiet, disturbed=redone)
