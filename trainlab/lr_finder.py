"""The learning-rate range test (fastai, Ignite and Lightning's "LR finder"): which learning rate to start with?

From the loop's current state, train for up to ``steps`` batches with the learning rate
growing exponentially from ``start`` to ``end``, recording every batch's loss; stop early
once the loss blows up. Then put the loop back exactly as it was: the weights, optimizer,
scheduler, data position, random numbers, history, counters, gradients and rewind's
keyframes. The run continues as if the finder had never run. The finder sets the lr itself:
the loop's scheduler is not stepped (a OneCycleLR with a fixed number of steps stays intact).

    result = loop.find_lr()
    result.suggestion     # e.g. 0.02: a good learning rate to start from
    tl.plot_lr_finder(result)   # loss against learning rate, on a log axis, the suggestion marked

Losses are smoothed (an exponential moving average, debiased, as fastai does), because
single batches are noisy. The suggestion follows a named rule:

- ``"valley"`` (the default, fastai's since 2021): the longest stretch over which the smoothed
  loss keeps falling, and a point about two thirds of the way down it. Robust to noise.
- ``"steepest"``: where the smoothed loss falls fastest against log(lr), before its minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trainlab.arguments import is_whole_number, real_number
from trainlab.errors import NonFiniteError, StageError
from trainlab.guard import interrupts_deferred

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["LRFinderResult", "find_lr", "SUGGESTION_RULES"]

#: The rules a suggestion can follow (see the module's docstring).
SUGGESTION_RULES = ("valley", "steepest")
_INTERRUPTED = "the learning-rate finder was interrupted; the loop was put back as it was"
_MIN_POINTS = 5  # fewer recorded losses than this: no suggestion (the loss blew up almost at once)
_MAX_STEPS = 10_000  # a range test takes a few hundred batches; more is a typo (10**9 would run for days)


@dataclass(frozen=True)
class LRFinderResult:
    """What the range test measured: each batch's lr and loss, and the suggested lr."""

    lrs: np.ndarray  # the lr each recorded batch was trained with
    losses: np.ndarray  # smoothed losses (what the suggestion is read from)
    raw_losses: np.ndarray  # each batch's own loss
    suggestion: float | None  # None when too few losses were recorded to judge
    rule: str  # the rule the suggestion follows: "valley" or "steepest"
    stop_reason: str  # why it stopped: the end of the range, or the loss blowing up

    def __repr__(self) -> str:
        suggestion = f"{self.suggestion:.3g} ({self.rule})" if self.suggestion is not None else "none"
        span = f"{self.lrs[0]:.3g} to {self.lrs[-1]:.3g}" if len(self.lrs) else "nothing"
        return f"LRFinderResult({len(self.lrs)} batches, lr {span}, suggestion {suggestion}; {self.stop_reason})"


def find_lr(loop: Loop, start: float = 1e-7, end: float = 10.0, steps: int = 100, *, rule: str = "valley",
            smoothing: float = 0.98, diverge: float = 4.0) -> LRFinderResult:
    """Run the range test on ``loop`` and put it back exactly; returns the lrs, losses and a suggestion.

    Stops early when the smoothed loss exceeds ``diverge`` times the best one so far, or is not finite.
    Needs a batch boundary (no batch half done) and a loop no other thread is playing.
    """
    start, end, steps, smoothing, diverge = _checked(start, end, steps, rule, smoothing, diverge)
    with loop.hold():  # a dashboard playing in the background: LoopBusyError, nothing changed
        if loop.open_batch is not None:  # (with accumulate, an update's next micro-batch is due at forward)
            raise StageError(f"find_lr() runs between batches, and this batch is at {loop.next_stage}(); "
                             "call loop.step() to finish it first")
        interrupted: list[bool] = []  # Ctrl-C between batches: stop, put the loop back, then raise
        try:
            with interrupts_deferred(lambda: interrupted.append(True), _INTERRUPTED):
                # The finder's batches are not part of the run: no handler (plots, callbacks) sees them,
                # nothing is recorded, the scheduler is not stepped, and rewind still reaches behind them.
                with loop.excursion():
                    lrs, raw, smoothed, reason = _range_test(loop, start, end, steps, smoothing, diverge, interrupted)
        except KeyboardInterrupt:  # during a batch, the step's own message would say "finished first"
            raise KeyboardInterrupt(_INTERRUPTED) from None
    suggestion = _suggest(lrs, smoothed, rule) if len(lrs) >= _MIN_POINTS else None
    return LRFinderResult(lrs, smoothed, raw, suggestion, rule, reason)


def _checked(start: Any, end: Any, steps: Any, rule: Any, smoothing: Any,
             diverge: Any) -> tuple[float, float, int, float, float]:
    """The arguments as plain numbers (numpy's too); a range, step count or setting that cannot work is refused."""
    lo, hi, beta, times = (real_number(value) for value in (start, end, smoothing, diverge))
    for name, value, number in (("start", start, lo), ("end", end, hi)):
        if number is None or not (math.isfinite(number) and number > 0):
            raise ValueError(f"{name} is a learning rate, a number above 0 like start=1e-7, end=10; got {value!r}")
    if not lo < hi:
        raise ValueError(f"the range must grow: start ({start!r}) must be smaller than end ({end!r}), "
                         "like find_lr(start=1e-7, end=10)")
    if not (is_whole_number(steps) and _MIN_POINTS <= steps <= _MAX_STEPS):
        raise ValueError(f"steps is how many batches to try, a whole number from {_MIN_POINTS} to {_MAX_STEPS:,}, "
                         f"like steps=100; got {steps!r}")
    if rule not in SUGGESTION_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(SUGGESTION_RULES)}")
    if beta is None or not 0 <= beta < 1:
        raise ValueError(f"smoothing is the moving average's weight, from 0 (none) to below 1, like 0.98; "
                         f"got {smoothing!r}")
    if times is None or not times > 1:
        raise ValueError(f"diverge is how many times the best loss counts as blown up, above 1, like 4; "
                         f"got {diverge!r}")
    return lo, hi, int(steps), beta, times


def _range_test(loop: Loop, start: float, end: float, steps: int, smoothing: float, diverge: float,
                interrupted: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Train batch by batch with an exponentially growing lr; returns (lrs, losses, smoothed losses, why it stopped)."""
    lrs: list[float] = []
    losses: list[float] = []
    smoothed_losses: list[float] = []
    average, best = 0.0, math.inf
    # No "blew up" verdict until the average has settled: on a model that has trained, losses are
    # small and one unlucky batch is many times the last one (a verdict at lr 1e-7 otherwise).
    settled = max(_MIN_POINTS, steps // 10)
    reason = f"reached the end of the range ({end:g})"
    for i in range(steps):
        if interrupted:  # interrupts_deferred raises once the loop is back
            break
        lr = start * (end / start) ** (i / (steps - 1))
        loop.lr = lr
        try:
            log = loop.step()
        except NonFiniteError:
            reason = f"the loss blew up (not finite) at lr {lr:.3g}"
            break
        if log.get("status") != "updated":  # on_nonfinite="skip_batch": a NaN skipped the batch
            reason = f"the loss blew up (not finite) at lr {lr:.3g}"
            break
        lrs.append(lr)
        losses.append(log["loss"])
        average = smoothing * average + (1 - smoothing) * log["loss"]
        smoothed = average / (1 - smoothing ** (i + 1))  # debiased: the first averages are not pulled to 0
        smoothed_losses.append(smoothed)
        if i + 1 >= settled:
            best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge * best:
            reason = f"the loss blew up (over {diverge:g}x its best) at lr {lr:.3g}"
            break
    return (np.asarray(lrs, np.float64), np.asarray(losses, np.float64), np.asarray(smoothed_losses, np.float64),
            reason)


def _suggest(lrs: np.ndarray, losses: np.ndarray, rule: str) -> float:
    return float(lrs[_valley(losses) if rule == "valley" else _steepest(lrs, losses)])


def _valley(losses: np.ndarray) -> int:
    """fastai's "valley": the longest decreasing run of losses (not necessarily consecutive), 2/3 of the way down."""
    n = len(losses)
    longest = [1] * n  # longest[i]: the longest decreasing sequence ending at i
    best_start = best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[best_end]:
            best_end = i
            best_start = i - longest[i]
    third = (best_end - best_start) / 3
    return best_start + int(third) + int(third / 2)


def _steepest(lrs: np.ndarray, losses: np.ndarray) -> int:
    """Where the loss falls fastest against log(lr), at or before its lowest point."""
    lowest = int(np.argmin(losses))
    if lowest < 2:
        return lowest
    slope = np.gradient(losses[: lowest + 1], np.log10(lrs[: lowest + 1]))
    return int(np.argmin(slope))
