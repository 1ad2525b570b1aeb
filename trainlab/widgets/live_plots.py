"""The dashboard's live plots, redrawn while the loop trains: loss, accuracy, gradient norms, gradient
histograms, update ratios. (``plot_history`` and ``compare_runs`` are the static ones.)

Each plot is a ``LiveFigure`` (``live_figure.py``: its module docstring describes the interface
``send_traces`` / ``send_layout``; ``plot_style.new_figure`` makes one) with a fixed set of traces made once; a redraw
only sends new numpy arrays to them (as binary buffers), at most ``max_points`` per trace, and
skips what has not changed since the last one.
Time-axis plots mark every hyperparameter change ("lr=0.3") and draw runs left behind
by a rewind/restore as faint "ghost" curves, so a learner can compare.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from trainlab.widgets.live_figure import LiveFigure
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import (GHOST_COLOR, GHOST_OPACITY,
                                         RAW_COLOR, RAW_OPACITY, TRAIN_COLOR, VAL_COLOR, change_marks, new_figure, y_axis)
from trainlab.widgets.series import Downsampler, Ema, downsample

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["LossPlot", "AccuracyPlot", "GradNormPlot", "GradHistogramPlot", "UpdateRatioPlot", "epoch_end_steps"]

_EMPTY = np.empty(0, np.float64)
_HISTOGRAM_BINS = 30
_HISTOGRAM_SAMPLE = 100_000  # gradients bigger than this are subsampled (evenly) for the histogram
# Per-epoch curves show a marker per epoch up to this many epochs; past it the markers merge into a
# thick band that costs the page a shape each and says nothing the line does not.
_MARKERS_UP_TO = 40


def epoch_end_steps(epoch_column: np.ndarray, epochs: list[int], step_column: np.ndarray | None = None) -> np.ndarray:
    """The step at which each recorded epoch ended (its last update), for per-epoch points on a step axis.

    ``step_column`` (``history.steps["step"]``) places them in a long run's thinned rows too (there,
    at the epoch's last row held: within the thinning's stride of its end).
    """
    # Rows are in time order, so the column of epoch indices never decreases within a run.
    rows = np.searchsorted(epoch_column, np.asarray(epochs, np.int64), side="right")
    if step_column is None:
        return rows.astype(np.float64)
    return np.where(rows > 0, np.asarray(step_column)[np.maximum(rows - 1, 0)], 0).astype(np.float64)


class _TimePlot(Plot):
    """What the time-axis plots share: change marks, and a reset after the loop moves in time."""

    def __init__(self, figure: LiveFigure) -> None:
        self.figure = figure
        self._marks_key: tuple | None = None

    def reset(self) -> None:
        """Forget cached state (the history was replaced: restore, rewind, reset, load)."""
        self._marks_key = None

    def _mark_changes(self, changes: list[tuple[int, str, Any]]) -> None:
        key = (len(changes), changes[-1] if changes else None)
        if key == self._marks_key:
            return
        self._marks_key = key
        shapes, annotations = change_marks(changes)
        self.figure.send_layout(shapes=shapes, annotations=annotations)


class LossPlot(_TimePlot):
    """Loss per step (raw, faint; smoothed, named "loss"), per-epoch train/validation loss, ghost runs.

    A "log scale" box under it: after a blow-up (a loss in the hundreds), a linear axis flattens
    everything that follows to 0, while a log one shows the spike and the recovery alike.
    """

    def __init__(self, loop: Loop, max_points: int = 500, ghosts: int = 5, smoothing: float = 0.9) -> None:
        super().__init__(new_figure("Loss", "step", "loss"))
        self.max_points = max_points
        self.ghosts = ghosts
        self.smoothing = smoothing
        fig = self.figure
        fig.add_scatter(name="loss per batch", mode="lines", line=dict(color=RAW_COLOR, width=1), opacity=RAW_OPACITY,
                        hoverinfo="skip")
        fig.add_scatter(name="loss", mode="lines", line=dict(color=TRAIN_COLOR, width=2))
        fig.add_scatter(name="train loss (epoch)", mode="lines+markers", line=dict(color=TRAIN_COLOR, dash="dot"))
        fig.add_scatter(name="val loss (epoch)", mode="lines+markers", line=dict(color=VAL_COLOR),
                        visible=loop.has_validation)
        for _ in range(ghosts):  # fixed slots: adding traces later is slow, filling them is cheap
            fig.add_scatter(mode="lines", line=dict(color=GHOST_COLOR, width=1.5), opacity=GHOST_OPACITY,
                            showlegend=False)
        self._ghost_cache: dict[int, tuple[Any, np.ndarray, np.ndarray]] = {}
        self.log_scale = widgets.Checkbox(value=False, description="log scale", indent=False,
                                          tooltip="Show the loss on a log axis: spikes and small losses both readable",
                                          layout=widgets.Layout(width="auto"))
        self.log_scale.observe(lambda change: self.figure.send_layout(yaxis=y_axis("loss", change["new"])),
                               names="value")
        self._box = widgets.VBox([self.figure, self.log_scale])
        self.reset()

    @property
    def widget(self) -> widgets.Widget:
        """The plot with its log-scale box under it."""
        return self._box

    @property
    def loss_trace(self) -> go.Scatter:
        """The main (smoothed) loss trace."""
        return self.figure.data[1]

    def reset(self) -> None:
        """Forget cached state (the history was replaced)."""
        super().reset()
        self._raw = Downsampler(self.max_points)
        self._smooth = Downsampler(self.max_points)
        self._ema = Ema(self.smoothing)
        self._n_steps: int | None = None
        self._n_epochs: int | None = None
        self._ghost_ids: list[int] | None = None

    def redraw(self, loop: Loop) -> None:
        """Put the history's latest numbers on the figure (skipped if nothing changed)."""
        history = loop.history
        changes = list(history.changes)  # a copy: another thread may append to it
        steps = None
        if len(history) != self._n_steps:
            self._n_steps = len(history)
            steps = history.steps
            self._draw_steps(steps["loss"], steps["step"])
        if len(history.epoch) != self._n_epochs:
            self._n_epochs = len(history.epoch)
            self._draw_epochs(steps or history.steps, history)
        branches = history.branches[-self.ghosts:] if self.ghosts else []
        if [id(b) for b in branches] != self._ghost_ids:
            self._ghost_ids = [id(b) for b in branches]
            self._draw_ghosts(branches)
        self._mark_changes(changes)

    def _draw_steps(self, loss: np.ndarray, step: np.ndarray) -> None:
        (raw_x, raw_y), (smooth_x, smooth_y) = self._raw.points(loss, step), self._smooth.points(self._ema(loss), step)
        self.figure.send_traces([0, 1], x=[raw_x, smooth_x], y=[raw_y, smooth_y])

    def _draw_epochs(self, steps: dict[str, np.ndarray], history: Any) -> None:
        x = epoch_end_steps(steps["epoch"], history.epoch, steps["step"])
        xs, ys = _epoch_points(history, x, ("loss", "val_loss"), self.max_points)
        self.figure.send_traces([2, 3], x=xs, y=ys, mode=[_epoch_mode(x) for x in xs])

    def _draw_ghosts(self, branches: list[Any]) -> None:
        cache = {}
        for branch in branches:
            cached = self._ghost_cache.get(id(branch))
            if cached is None or cached[0] is not branch:
                loss = Ema(self.smoothing)(branch.steps["loss"]).copy()
                rows = downsample(loss, self.max_points)
                cached = (branch, branch.steps["step"][rows].astype(np.float64), loss[rows])
            cache[id(branch)] = cached
        self._ghost_cache = cache
        used = [cache[id(b)] for b in branches]
        unused = self.ghosts - len(used)
        self.figure.send_traces(list(range(4, 4 + self.ghosts)),
                x=[c[1] for c in used] + [_EMPTY] * unused, y=[c[2] for c in used] + [_EMPTY] * unused,
                name=[f"earlier run ({b.name})" for b in branches] + [""] * unused,
                showlegend=[True] * len(used) + [False] * unused)


class GradNormPlot(_TimePlot):
    """Each parameter's gradient norm over time, smoothed, on a log axis (vanishing and exploding gradients show).

    Smoothed like the loss: raw per-step norms of six layers drawn on top of each other
    are an unreadable band of colour.
    """

    def __init__(self, loop: Loop, max_points: int = 500, smoothing: float = 0.9) -> None:
        super().__init__(new_figure("Gradient norm per parameter (smoothed)", "step", "‖gradient‖", log_y=True))
        self.max_points = max_points
        self.smoothing = smoothing
        self.param_names = list(loop.param_names)
        for name in self.param_names:
            self.figure.add_scatter(name=name, mode="lines", line=dict(width=1.5))
        self.reset()

    def reset(self) -> None:
        """Forget cached state (the history was replaced)."""
        super().reset()
        self._downsamplers = [Downsampler(self.max_points) for _ in self.param_names]
        self._emas = [Ema(self.smoothing) for _ in self.param_names]
        self._n: int | None = None

    def redraw(self, loop: Loop) -> None:
        """Put the latest gradient norms on the figure (skipped if no step was added)."""
        history = loop.history
        changes = list(history.changes)
        if len(history) != self._n:
            self._n = len(history)
            steps = history.steps
            points = [sampler.points(ema(steps[f"grad_norm/{name}"]), steps["step"])
                      for name, sampler, ema in zip(self.param_names, self._downsamplers, self._emas)]
            self.figure.send_traces(list(range(len(points))), x=[p[0] for p in points], y=[p[1] for p in points])
        self._mark_changes(changes)


class AccuracyPlot(Plot):
    """Train and validation accuracy per epoch (classification only)."""

    def __init__(self, loop: Loop, max_points: int = 500) -> None:
        per_token = getattr(loop, "accuracy_unit", None) == "token"  # a class per token or pixel
        self.figure = new_figure("Accuracy per epoch" + (" (per token)" if per_token else ""), "epoch", "accuracy")
        self.figure.layout.yaxis.range = [0, 1.02]
        self.max_points = max_points
        self.figure.add_scatter(name="train accuracy", mode="lines+markers", line=dict(color=TRAIN_COLOR))
        self.figure.add_scatter(name="val accuracy", mode="lines+markers", line=dict(color=VAL_COLOR),
                                visible=loop.has_validation)
        self.reset()

    def reset(self) -> None:
        """Forget cached state (the history was replaced)."""
        self._n: int | None = None

    def redraw(self, loop: Loop) -> None:
        """Put the per-epoch accuracies on the figure (skipped if no epoch ended)."""
        history = loop.history
        if len(history.epoch) == self._n:
            return
        self._n = len(history.epoch)
        x = np.asarray(history.epoch, np.float64) + 1  # epochs completed
        xs, ys = _epoch_points(history, x, ("accuracy", "val_accuracy"), self.max_points)
        self.figure.send_traces([0, 1], x=xs, y=ys, mode=[_epoch_mode(x) for x in xs])


class GradHistogramPlot(Plot):
    """The distribution of each parameter's gradient values at the latest backward pass."""

    def __init__(self, loop: Loop) -> None:
        self.figure = new_figure("Gradient values (latest step)", "gradient value", "count", log_y=True)
        self.params = [(name, p) for name, p in loop.model.named_parameters() if p.requires_grad]
        for name, _ in self.params:
            self.figure.add_scatter(name=name, mode="lines", line=dict(shape="hv", width=1.5))
        self.reset()

    def reset(self) -> None:
        """Forget cached state."""
        self._key: tuple | None = None

    def redraw(self, loop: Loop) -> None:
        """Histogram every parameter's current ``.grad`` (skipped if no backward ran since the last time)."""
        key = (loop.state.step, loop.next_stage)
        if key == self._key:
            return
        self._key = key
        histograms = [_histogram(p.grad) for _, p in self.params]
        self.figure.send_traces(list(range(len(histograms))), x=[h[0] for h in histograms],
                y=[h[1] for h in histograms])


class UpdateRatioPlot(Plot):
    """How far the last update moved each parameter relative to its size (‖Δw‖ / ‖w‖), with 1e-3 marked."""

    def __init__(self, loop: Loop) -> None:
        self.figure = new_figure("Update / weight ratio (last update)", "parameter", "‖Δw‖ / ‖w‖", log_y=True)
        self.figure.add_bar(name="update / weight", x=list(loop.param_names), y=np.zeros(len(loop.param_names)))
        # A rule of thumb for big networks: around 1e-3. Small nets learn well above it; near 1 the lr is too high.
        self.figure.add_hline(y=1e-3, line=dict(color="gray", dash="dot"))
        # On a log axis an annotation's y is the log10 of the value: -3 for 1e-3.
        self.figure.add_annotation(x=0, xref="paper", y=-3, yref="y", text="1e-3: rule of thumb (big nets)", showarrow=False,
                                   xanchor="left", yanchor="bottom", font=dict(size=10, color="#555"))
        self.reset()

    def reset(self) -> None:
        """Forget cached state."""
        self._key: int | None = None

    def redraw(self, loop: Loop) -> None:
        """Show the last update's ratios (skipped if no update ran since the last time)."""
        key = loop.state.step
        if key == self._key:
            return
        self._key = key
        ratios = loop.update_ratios(recent=True)  # measured once per frame, not at every update
        values = np.array([ratios.get(name, math.nan) for name in loop.param_names], np.float64)
        values[~np.isfinite(values) | (values <= 0)] = np.nan  # a log axis cannot show 0 or inf
        self.figure.send_traces([0], y=[values])


def _epoch_points(history: Any, x: np.ndarray, keys: tuple[str, ...],
                  max_points: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each per-epoch curve's (x, y), downsampled; empty where the history does not have it (yet)."""
    xs, ys = [], []
    for key in keys:
        y = np.asarray(history.history.get(key, ()), np.float64)
        rows = downsample(y, max_points) if len(y) == len(x) else np.arange(0)
        xs.append(x[rows])
        ys.append(y[rows] if len(rows) else _EMPTY)
    return xs, ys


def _epoch_mode(x: np.ndarray) -> str:
    """A per-epoch curve's plotly mode: a marker per epoch while they can be told apart, then only the line."""
    return "lines+markers" if len(x) <= _MARKERS_UP_TO else "lines"


def _histogram(grad: Any) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and counts of a gradient's values (empty bins as NaN: gaps on a log axis)."""
    if grad is None:
        return _EMPTY, _EMPTY
    values = grad.detach().reshape(-1)
    if values.numel() > _HISTOGRAM_SAMPLE:
        values = values[:: values.numel() // _HISTOGRAM_SAMPLE + 1]
    values = values.double().cpu().numpy()
    values = values[np.isfinite(values)]
    if not len(values):
        return _EMPTY, _EMPTY
    try:
        counts, edges = np.histogram(values, bins=_HISTOGRAM_BINS)
    except ValueError:  # a spread too small for 30 distinct edges at this magnitude (e.g. ~1e30 ± 1)
        counts, edges = np.array([len(values)]), np.array([values.min(), values.max()])
    counts = np.append(counts, counts[-1]).astype(np.float64)  # "hv" steps need the last edge too
    counts[counts == 0] = np.nan
    return edges.astype(np.float64), counts

