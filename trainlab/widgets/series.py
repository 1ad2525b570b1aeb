"""Long history columns turned into few points for a plot: min/max downsampling and EMA smoothing.

Both work incrementally on append-only columns (``loop.history.steps[...]``): each redraw
only looks at the rows added since the last one, so a redraw costs the same after a
hundred steps or a million. After a restore the column is a different one: call
``reset()`` (the dashboard does it on the loop's ``after_restore`` event).
"""

from __future__ import annotations

import math

import numpy as np

from trainlab.arguments import number_in, whole_number

__all__ = ["Downsampler", "Ema", "downsample"]


class Downsampler:
    """Picks at most ``max_points`` rows of a growing column: each bucket's min and max row, and the last row.

    Keeping both extremes of every bucket means a single spike (one huge loss) stays
    visible however long the run; keeping the last row means the curve ends where the run
    is now. Buckets ("chunks") hold a power-of-two number of rows; when there are too many,
    neighbours merge and the chunk size doubles. The live plots keep one per trace and feed
    it the growing column; the static plots use ``downsample`` once.
    """

    def __init__(self, max_points: int = 500) -> None:
        self.max_points = checked_max_points(max_points)
        # Each chunk gives 2 points; 3 are kept for the unfinished tail's min, max and last row.
        self._max_chunks = (self.max_points - 3) // 2
        self.reset()

    def reset(self) -> None:
        """Forget everything (the column was replaced, e.g. after a restore)."""
        self._size = 0  # rows per chunk; 0 while the column is short enough to plot whole
        self._done = 0  # rows already folded into chunks
        self._low = np.empty(0, np.int64)  # row index of each chunk's minimum
        self._high = np.empty(0, np.int64)  # row index of each chunk's maximum

    def indices(self, column: np.ndarray) -> np.ndarray:
        """Sorted row indices to plot (all rows when there are at most ``max_points``)."""
        n = len(column)
        if n < self._done:  # the column shrank: it is not the one we folded
            self.reset()
        if n <= self.max_points:
            self.reset()
            return np.arange(n)
        if self._size == 0:
            self._size = 1 << max(0, math.ceil(math.log2(n / self._max_chunks)))
        self._fold(column, n)
        while len(self._low) > self._max_chunks:
            self._merge(column)
            self._fold(column, n)  # rows dropped by an odd merge are folded again at the new size
        tail = column[self._done:n]
        low, high = self._low, self._high
        if len(tail):
            low = np.append(low, self._done + _argmin(tail))
            high = np.append(high, self._done + _argmax(tail))
        return np.unique(np.concatenate([low, high, [n - 1]]))  # sorted: in time order, no repeats

    def points(self, column: np.ndarray, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` float64 arrays to assign to a trace; x defaults to the step number (row + 1)."""
        rows = self.indices(column)
        xs = rows + 1.0 if x is None else np.asarray(x[rows], np.float64)
        return xs, np.asarray(column, np.float64)[rows]

    def _fold(self, column: np.ndarray, n: int) -> None:
        """Turn every complete chunk of new rows into its (min row, max row)."""
        size = self._size
        count = (n - self._done) // size
        if count == 0:
            return
        block = np.asarray(column[self._done:self._done + count * size], np.float64).reshape(count, size)
        offsets = self._done + size * np.arange(count)
        self._low = np.concatenate([self._low, offsets + _argmin(block, axis=1)])
        self._high = np.concatenate([self._high, offsets + _argmax(block, axis=1)])
        self._done += count * size

    def _merge(self, column: np.ndarray) -> None:
        """Halve the number of chunks by merging neighbours; the chunk size doubles."""
        if len(self._low) % 2:  # an odd last chunk has no partner: unfold it, its rows come back later
            self._low, self._high = self._low[:-1], self._high[:-1]
            self._done -= self._size
        values = np.asarray(column, np.float64)
        a, b = self._low[0::2], self._low[1::2]
        self._low = np.where(_low_key(values[b]) < _low_key(values[a]), b, a)
        a, b = self._high[0::2], self._high[1::2]
        self._high = np.where(_high_key(values[b]) > _high_key(values[a]), b, a)
        self._size *= 2


def downsample(column: np.ndarray, max_points: int = 500) -> np.ndarray:
    """Row indices of a fixed column to plot: at most ``max_points``, each bucket's min and max, and the last."""
    return Downsampler(max_points).indices(column)


class Ema:
    """An exponential moving average of a growing column, debiased so the first steps are not pulled to 0.

    ``smoothing`` is the weight of the past (0.9: roughly the last 10 steps). Non-finite
    values are skipped, so one bad number does not turn the whole curve into NaN.
    """

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = checked_smoothing(smoothing)
        self.reset()

    def reset(self) -> None:
        """Forget everything (the column was replaced, e.g. after a restore)."""
        self._values = np.empty(1024, np.float64)
        self._n = 0
        self._mean = 0.0  # the debiased average so far
        self._weight = 0.0  # 1 - smoothing**t: divides the bias toward 0 away

    def __call__(self, column: np.ndarray) -> np.ndarray:
        """The smoothed column (a view; valid until the next call)."""
        n = len(column)
        if n < self._n:
            self.reset()
        if n > len(self._values):
            grown = np.empty(max(n, 2 * len(self._values)), np.float64)
            grown[:self._n] = self._values[:self._n]
            self._values = grown
        new = np.asarray(column[self._n:n], np.float64)
        finite = np.isfinite(new)
        before = self._mean if self._weight else math.nan  # what rows before the next finite one show
        means = np.empty(int(finite.sum()), np.float64)
        for start in range(0, len(means), self._block):  # only the new rows, a block of vector arithmetic at a time
            values = new[finite][start:start + self._block]
            means[start:start + len(values)] = self._smooth(values)
        # A non-finite value is skipped: its row shows the mean of the finite rows before it.
        last = np.maximum.accumulate(np.where(finite, np.cumsum(finite) - 1, -1))
        self._values[self._n:n] = np.where(last >= 0, means[np.maximum(last, 0)] if len(means) else before, before)
        self._n = n
        return self._values[:n]

    @property
    def _block(self) -> int:
        """Rows smoothed at once: beta**-block stays far inside float64 (no overflow, no lost digits)."""
        beta = self.smoothing
        return 256 if beta == 0 else int(min(256, max(1, 12 / -math.log10(beta))))

    def _smooth(self, values: np.ndarray) -> np.ndarray:
        """The debiased average after each of ``values`` (all finite), carrying on from the state so far.

        Written as the deviation from a centre (the mean so far, or the first value): the first
        value comes out as itself and a constant column stays exactly constant, where a plain
        sum/weight lands a rounding error (1e-16) off. Beside the raw curve, that error became the
        loss plot's whole y range, which plotly.js cannot lay out (its ticks step below float
        precision and the axis title lands at x=Infinity; plotly.js issues #1070, #6249).
        """
        beta = self.smoothing
        centre = self._mean if self._weight else values[0]
        powers = beta ** np.arange(1, len(values) + 1)  # beta**(j+1)
        weights = powers * self._weight + (1 - powers)  # 1 - beta**t, debiasing
        # deviation_j = (1-beta) * sum_i beta**(j-i) * d_i, as one cumulative sum of d_i / beta**i.
        scaled = np.cumsum((values - centre) / (powers / beta)) if beta else values - centre
        deviations = (1 - beta) * (powers / beta) * scaled if beta else scaled
        means = centre + deviations / weights
        self._mean, self._weight = float(means[-1]), float(weights[-1])
        return means


def _low_key(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), np.inf, values)  # NaN never wins "lowest"


def _high_key(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), -np.inf, values)


def _argmin(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    return _low_key(np.asarray(values, np.float64)).argmin(axis=axis)


def _argmax(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    return _high_key(np.asarray(values, np.float64)).argmax(axis=axis)


def checked_max_points(max_points: int) -> int:
    """``max_points`` as an int (8.7 is refused, not cut to 8), or a ValueError saying what to pass."""
    return whole_number(max_points, "max_points", 8, "500")


def checked_smoothing(smoothing: float) -> float:
    """``smoothing`` as a float, or a ValueError saying what to pass."""
    return number_in(smoothing, "smoothing", 0, 1, "0.9", high_open=True)
