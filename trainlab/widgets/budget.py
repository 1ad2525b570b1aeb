"""The render budget: when a redraw is allowed, and how much of a core the UI has taken.

Training must not wait on plots. A redraw is due at most ``fps`` times a second, and
never so often that redrawing takes more than ``max_ui_fraction`` of a core: a slow redraw
(a big decision-boundary grid, a slow machine) pushes the next one further out, and the
first redraws after Play (due at once) are paid back before the next, so the share since
Play stays under the limit from the first seconds on.

Redraws are counted in the drawing thread's CPU time (``time.thread_time``), not wall time: on
a shared machine the thread is descheduled in the middle of a frame, and 5 ms of drawing can
read 25 ms on the wall clock, which would push the next frame out five times too far. Frames
are scheduled start to start (the frame's own time is part of its interval), and one may come
``_EARLY`` seconds before it is due, so a budget that is asked only at another's frames (the
decision boundary's, asked at the plots') does not miss its turn by a whole frame.
"""

from __future__ import annotations

import time

from trainlab.arguments import number_in, positive_number

__all__ = ["RenderBudget"]

_EARLY = 0.004  # seconds a frame may come before it is due


class RenderBudget:
    """Rate-limits redraws and keeps account of the CPU time they take.

    Example::

        budget = RenderBudget(fps=4)
        if budget.due():
            with budget.spending():
                redraw()
        budget.ui_fraction()   # e.g. 0.03: redraws took 3% of a core since restart()
    """

    def __init__(self, fps: float = 4.0, max_ui_fraction: float = 0.05) -> None:
        self.interval = 1.0 / positive_number(fps, "fps", "4")
        self.max_ui_fraction = number_in(max_ui_fraction, "max_ui_fraction", 0, 1, "0.05", low_open=True, high_open=True)
        self.restart()

    def restart(self) -> None:
        """Start a new accounting period (e.g. when Play is pressed); the next redraw is due at once."""
        self._start = time.perf_counter()
        self.ui_seconds = 0.0  # CPU seconds spent redrawing since restart()
        self.redraws = 0
        self._next = 0.0  # perf_counter() time from which a redraw is due
        self._last = 0.0  # CPU time the last redraw took: the next is expected to take as long

    def due(self) -> bool:
        """Whether a redraw may happen now (one clock read: cheap enough to ask every step)."""
        now = time.perf_counter()
        if now < self._next - _EARLY:
            return False
        # One more redraw, as long as the last, must keep the share since restart() under the limit.
        return self.ui_seconds + self._last <= self.max_ui_fraction * (now - self._start + self._last)

    def spending(self) -> "_Spending":
        """A context manager that times one redraw (in this thread's CPU time) and schedules the next."""
        return _Spending(self)

    def spent(self, seconds: float, started: float | None = None) -> None:
        """Account for a redraw that took ``seconds`` of CPU and began at ``started`` (perf_counter; default now)."""
        self.ui_seconds += seconds
        self.redraws += 1
        self._last = seconds
        # Start to start: at least one frame; after a slow redraw, long enough to stay under the share.
        interval = max(self.interval, seconds / self.max_ui_fraction)
        self._next = (time.perf_counter() if started is None else started) + interval

    def ui_fraction(self) -> float:
        """The share of a core spent redrawing since ``restart()`` (0.0 to 1.0)."""
        elapsed = time.perf_counter() - self._start
        return self.ui_seconds / elapsed if elapsed > 0 else 0.0


class _Spending:
    def __init__(self, budget: RenderBudget) -> None:
        self._budget = budget

    def __enter__(self) -> None:
        self._started = time.perf_counter()
        self._cpu = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self._budget.spent(time.thread_time() - self._cpu, self._started)
