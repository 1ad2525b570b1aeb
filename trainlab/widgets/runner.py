"""The runner: plays a loop in a background thread, so the kernel stays free to handle clicks.

While a cell runs, the kernel handles no widget events: a click waits until the cell ends
(polling for events from inside the cell, as ``jupyter-ui-poll`` does, did not work here). So
training runs in a ``threading.Thread`` while the kernel sits idle, and widget updates made
from that thread still reach the browser. The thread owns the loop for the whole
time it plays (``loop.hold()``): a stage called from a cell meanwhile raises
``LoopBusyError``. It runs one stage at a time and checks a ``threading.Event`` between
stages, so Pause takes effect at the next stage boundary.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from typing import TYPE_CHECKING, Callable

from trainlab.errors import LoopBusyError

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Runner", "pause_all"]

_CATCH_UP_SECONDS = 0.1  # how far behind its pace Play may run and still catch up

# Every runner made, so that none is left playing where nobody can reach it: re-running a
# notebook cell replaces its dashboard, but not the old one's thread.
_RUNNERS: "weakref.WeakSet[Runner]" = weakref.WeakSet()


def pause_all(reason: str = "", timeout: float | None = None) -> None:
    """Pause every runner that is playing (each waits at most ``timeout`` seconds for its thread).

    ``reason`` becomes the paused runners' ``stop_reason``, for their dashboards to show.
    """
    for runner in list(_RUNNERS):
        if runner.playing and not runner.on_runner_thread:
            runner.stop_reason = reason
            runner.pause(timeout)


def _on_a_runner_thread() -> bool:
    return any(runner.on_runner_thread for runner in list(_RUNNERS))


# A thread still running torch when the interpreter exits aborts the process.
atexit.register(pause_all, "", 5.0)


class Runner:
    """Plays ``loop`` stage by stage in a background thread until paused, stopped or failed.

    ``on_batch()`` is called on the runner thread after every batch (keep it cheap: the
    dashboard only checks its render budget there); ``on_stop()`` once when playing ends,
    still on the runner thread and still owning the loop, to draw the final state.
    """

    def __init__(self, loop: Loop, on_batch: Callable[[], None] = lambda: None,
                 on_stop: Callable[[], None] = lambda: None) -> None:
        self.loop = loop
        self.on_batch = on_batch
        self.on_stop = on_stop
        self.error: Exception | None = None  # what stopped the last run, if it failed
        self.stop_reason = ""  # loop.stop_reason, if a callback stopped the last run
        self.steps = 0  # batches finished since play(): the one per-step counter
        self._steps_per_second: float | None = None
        self._wake = threading.Event()  # ends a paced wait early: Pause, or a new pace
        self._playing = False
        self._thread: threading.Thread | None = None
        self._pause = threading.Event()
        self._finish_batch = False  # on pause, finish the open batch first (forward() due next)
        self._holding = threading.Event()  # set once the thread owns the loop (or failed to)
        self._calls: list[Callable[[], None]] = []  # run on the runner thread at the next batch boundary
        self._calls_lock = threading.Lock()
        self._accepting_calls = False
        self._hold_failed: LoopBusyError | None = None
        # wait(): the step count it waits for, and the event that ends it. Not a poll: a thread
        # waking every few ms takes the GIL from training each time (measured on a bare training
        # thread: steps up to 10% slower).
        self._wanted_steps = math.inf
        self._reached = threading.Event()
        _RUNNERS.add(self)

    @property
    def playing(self) -> bool:
        """Whether the background thread is playing the loop."""
        return self._playing

    @property
    def steps_per_second(self) -> float | None:
        """The pace Play keeps, to be watched (None: as fast as it goes); a change applies at once."""
        return self._steps_per_second

    @steps_per_second.setter
    def steps_per_second(self, value: float | None) -> None:
        self._steps_per_second = value
        self._wake.set()

    @property
    def on_runner_thread(self) -> bool:
        """Whether the caller is the runner's own thread (a loop event fired while playing)."""
        return self._thread is threading.current_thread()

    def play(self) -> None:
        """Start playing; returns once the thread owns the loop (raises LoopBusyError if it cannot)."""
        if self._playing:
            return
        self.error, self.stop_reason, self.steps = None, "", 0
        self._finish_batch = False
        self._hold_failed = None
        self.loop.clear_stop()  # a stop left over from an earlier fit must not end this run at once
        self._pause.clear()
        self._holding.clear()
        self._accepting_calls = True
        self._playing = True
        self._thread = threading.Thread(target=self._run, name="trainlab-runner", daemon=True)
        self._thread.start()
        self._holding.wait()
        if self._hold_failed is not None:  # another thread owns the loop: nothing was played
            self._thread.join()
            raise self._hold_failed

    def pause(self, timeout: float | None = None, finish_batch: bool = False) -> None:
        """Stop at the next stage boundary (``finish_batch``: the next batch boundary); returns once the
        thread has stopped (and drawn its last frame)."""
        self._finish_batch = finish_batch
        self._pause.set()
        self._wake.set()
        thread = self._thread
        # A runner thread never waits for another: two could end up waiting for each other.
        if thread is not None and not _on_a_runner_thread():
            thread.join(timeout)

    def wait(self, steps: int | None = None, timeout: float | None = None) -> int:
        """Block until ``steps`` more batches are done, or playing stops, or ``timeout`` seconds pass.

        Returns the number of batches done while waiting.
        """
        start, thread = self.steps, self._thread
        self._reached.clear()
        self._wanted_steps = math.inf if steps is None else start + steps
        # Published before looking: the thread sets _reached once it passes them, or stops.
        if self._playing and self.steps < self._wanted_steps:
            self._reached.wait(timeout)
        self._wanted_steps = math.inf
        if not self._playing and thread is not None and thread is not threading.current_thread():
            thread.join()  # playing has ended: let the thread finish its last frame
        return self.steps - start

    def call_at_boundary(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the runner thread at the next batch boundary while playing; else now, here.

        For changes that must not land in the middle of a batch (switching the optimizer).
        """
        with self._calls_lock:
            if self._accepting_calls:
                self._calls.append(fn)
                return
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()  # it may still own the loop, drawing its last frame
        fn()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        loop = self.loop
        try:
            with loop.hold():
                self._holding.set()
                try:
                    self._play(loop)
                except Exception as error:  # the loop's errors and bugs in the user's model: shown, not lost
                    self.error = error
                finally:
                    self._finish()
        except LoopBusyError as error:  # loop.hold() failed: someone else is training
            self.error = self._hold_failed = error
        finally:
            self._accepting_calls = False
            self._playing = False  # only now: until here a cell's stage call would be refused
            self._reached.set()  # a wait() ends with playing
            self._holding.set()

    def _play(self, loop: Loop) -> None:
        pause = self._pause
        released = time.monotonic()  # when the last batch started, for the pace
        while not pause.is_set() or (self._finish_batch and loop.next_stage != "forward"):
            getattr(loop, loop.next_stage)()
            if loop.next_stage != "forward":
                continue  # mid-batch: only Pause is checked between these stages
            # A batch ended (updated, or skipped as non-finite).
            self.steps += 1
            if self.steps >= self._wanted_steps:
                self._reached.set()
            if self._calls:
                self._run_calls()
            if loop.stop_requested:  # e.g. EarlyStopping called loop.stop(reason)
                self.stop_reason = loop.stop_reason or "stop requested"
                return
            self.on_batch()
            if self._steps_per_second:
                released = self._keep_pace(released)

    def _keep_pace(self, released: float) -> float:
        """Wait until the next batch is due at the pace; returns when it starts. Pause or a new pace wake it."""
        while not self._pause.is_set():
            self._wake.clear()
            rate, now = self._steps_per_second, time.monotonic()
            due = released + 1.0 / rate if rate else now
            if due <= now:
                # A little behind (a step or a redraw ran long): keep the schedule, so the pace is
                # met on average (300 steps/s gave 223 when every late step reset it). Far behind
                # (a new, faster pace; a long stall): start again from now instead of racing.
                return due if now - due < _CATCH_UP_SECONDS else now
            if not self._wake.wait(due - now):
                return due
        return time.monotonic()

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn in calls:
            fn()

    def _finish(self) -> None:
        """Close the call queue, run what is left in it, then draw the final frame."""
        with self._calls_lock:
            self._accepting_calls = False
        for last in (self._run_calls, self.on_stop):
            try:
                last()
            except Exception as error:  # keep the first error: it is the one the learner must see
                self.error = self.error or error
