"""The "activations" plot: every layer's activations over the steps, on a probe batch (``tl.ActivationStats``).

A menu picks what to see:

- "dead units, every layer": each rectifier's share of units that no probe sample makes positive
  (a ReLU unit there no longer learns), a line per layer;
- "mean" and "spread (std), every layer": a line per layer (activations that drift or collapse);
- "<layer>: values over time": fastai's "colorful dimension", a histogram of that layer's values at
  each record, side by side (a column per record, brighter where more values fall), its mean over it.

Recorded from an ``after_update`` handler on a budget of the plot's own (the probe batch, 64 training
samples, is a forward pass: about a record a second, its CPU time counted in the dashboard's UI share).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np

from trainlab.activations import RECTIFIERS, ActivationStats
from trainlab.errors import LoopBusyError
from trainlab.widgets.budget import RenderBudget
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure, note_above

if TYPE_CHECKING:
    from trainlab.events import Handle
    from trainlab.loop import Loop

__all__ = ["ActivationsPlot", "colorful_dimension"]

_RECORDS_PER_SECOND = 2.0
_COLUMNS = 200  # records shown side by side in the colorful dimension, at most
_BINS = 40
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf"]  # plotly's own, in its order
_VIRIDIS = [[0.0, "#440154"], [0.25, "#3b528b"], [0.5, "#21918c"], [0.75, "#5ec962"], [1.0, "#fde725"]]
_VIEWS = {"dead": ("dead units, every layer", "share of dead units"),
          "mean": ("mean, every layer", "mean activation"),
          "std": ("spread (std), every layer", "spread (std)")}
_WAITING = "recorded about once a second as the loop trains: press Step or Play"


class ActivationsPlot(Plot):
    """Dead units, mean and spread of every layer over the steps, or one layer's values as a colorful dimension."""

    def __init__(self, loop: Loop, max_points: int = 500, share: float = 0.01, samples: int = 64) -> None:
        self.recorder = ActivationStats(loop, every=1, samples=samples, bins=_BINS, max_rows=min(max_points, 300),
                                        attach=False)
        self.budget = RenderBudget(_RECORDS_PER_SECOND, share)
        self._loop = loop
        self.failure: str | None = None
        self._record()  # the starting activations, and which layers there are
        self.layers = list(self.recorder.layers)
        rectifiers = [name for name in self.layers if self.recorder.kinds.get(name) in RECTIFIERS]
        self.figure = new_figure("Activations over time", "step", _VIEWS["dead" if rectifiers else "mean"][1])
        for i, name in enumerate(self.layers):  # a colour of its own (not by its place among the shown ones)
            self.figure.add_scatter(x=[], y=[], mode="lines", line=dict(width=1.5, color=_COLOURS[i % len(_COLOURS)]),
                                    name=name)
        self.figure.add_heatmap(x=[], y=[], z=[], colorscale=_VIRIDIS, zmin=0, zmax=1, showscale=False,
                                hoverinfo="skip", name="values", visible=False)
        self.figure.add_scatter(x=[], y=[], mode="lines", line=dict(width=1.5, color="#ffffff", dash="dot"),
                                name="mean", visible=False)
        views = [(label, key) for key, (label, _) in _VIEWS.items() if key != "dead" or rectifiers]
        views += [(f"{name}: values over time", name) for name in self.layers]
        self.menu = widgets.Dropdown(description="show", options=views, style={"description_width": "initial"},
                                     layout=widgets.Layout(width="320px"))
        self.menu.observe(lambda change: self.redraw_now(self._loop), names="value")
        self._widget = widgets.VBox([self.figure, self.menu])
        self._note: str | None = None
        self._key: Any = None
        self._view: str | None = None
        self._span: list[float] | None = None  # the value axis's range in a colorful dimension

    @property
    def widget(self) -> widgets.Widget:
        return self._widget

    def attach(self, loop: Loop) -> list[Handle]:
        return [loop.on("after_update", self._after_update, observer=True),
                loop.on("after_restore", self._after_restore, observer=True)]

    def _record(self) -> None:
        """A record now; a model the probe cannot run is said in the plot, never raised into a step."""
        try:
            self.recorder.record()
        except LoopBusyError:
            pass
        except Exception as error:  # noqa: BLE001 - shown in the plot instead
            self.failure = f"could not run the probe batch: {type(error).__name__}: {error}"[:200]

    def _after_update(self, loop: Loop) -> None:
        if self.failure is None and self.budget.due():
            with self.budget.spending():
                self._record()

    def _after_restore(self, loop: Loop) -> None:
        self.recorder.rows.drop_after(loop.state.step)

    def reset(self) -> None:
        self._key = None

    def redraw(self, loop: Loop) -> None:
        """Draw the chosen view of the records (skipped if no record came and the view is the same)."""
        rows = self.recorder.rows
        view = self.menu.value
        key = (len(rows), int(rows.steps[-1]) if len(rows) else None, rows.thinnings, view)
        if key == self._key:
            return
        self._key = key
        if view != self._view:
            self._show_view(view)
        if view in _VIEWS:
            self._draw_lines(view)
        else:
            self._draw_colorful(view)
        if self.failure:
            self._say(self.failure)
        elif not len(rows):
            self._say(_WAITING)
        else:
            self._say(f"on {self.recorder.samples} training samples, at each record" if view in _VIEWS else
                      f"{view}: where its values fall at each record (brighter: more of them); dotted: their mean")

    def _show_view(self, view: str) -> None:
        """Show the traces of a view and title its axis."""
        self._view, self._span = view, None
        lines = view in _VIEWS
        kinds = self.recorder.kinds
        visible = [lines and (view != "dead" or kinds.get(name) in RECTIFIERS) for name in self.layers]
        self.figure.send_traces(list(range(len(self.layers) + 2)), visible=visible + [not lines, not lines])
        title = _VIEWS[view][1] if lines else "activation value"
        axis = dict(title=dict(text=title, standoff=4), type="linear")
        self.figure.send_layout(yaxis=dict(axis, range=[0, 1.02]) if view == "dead" else dict(axis, autorange=True))

    def _draw_lines(self, view: str) -> None:
        column = getattr(self.recorder, view)
        steps = self.recorder.steps.astype(np.float64)
        self.figure.send_traces(list(range(len(self.layers))), x=[steps] * len(self.layers),
                                y=[np.asarray(column[name], np.float64) for name in self.layers])

    def _draw_colorful(self, layer: str) -> None:
        x, y, z = colorful_dimension(self.recorder.steps, self.recorder.histograms[layer], self.recorder.ranges[layer])
        mean = np.asarray(self.recorder.mean[layer], np.float64)
        i = len(self.layers)
        self.figure.send_traces([i], x=[x], y=[y], z=[z], zmax=[float(z.max()) if z.size and z.max() > 0 else 1.0])
        self.figure.send_traces([i + 1], x=[self.recorder.steps.astype(np.float64)], y=[mean])
        span = [float(y[0] - (y[1] - y[0]) / 2), float(y[-1] + (y[1] - y[0]) / 2)] if len(y) > 1 else None
        if span is not None and span != self._span:  # the value axis spans the histograms (else the light
            self._span = span  # renderer would scale it to the mean's line)
            self.figure.send_layout(yaxis=dict(title=dict(text="activation value", standoff=4), type="linear",
                                               range=span, autorange=False))

    def _say(self, text: str) -> None:
        if text != self._note:
            self._note = text
            self.figure.send_layout(annotations=[note_above(text)])


def colorful_dimension(steps: np.ndarray, histograms: np.ndarray, ranges: np.ndarray, columns: int = _COLUMNS,
                       bins: int = _BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histograms of one layer over time on one value axis: ``(x, y, z)`` for a heatmap, z = log(1 + count).

    Each record's histogram spans its own range; they are put on the range of all of them (each bin
    counted where its centre falls), at evenly spaced steps (the record at or before each; at most
    ``columns``), so the picture is true to time even where old records were thinned.
    """
    good = np.isfinite(ranges).all(1) & np.isfinite(histograms).all(1)
    steps, histograms, ranges = np.asarray(steps, np.float64)[good], histograms[good], ranges[good]
    if not len(steps):
        return np.empty(0), np.empty(0), np.empty((0, 0))
    low, high = float(ranges[:, 0].min()), float(ranges[:, 1].max())
    if high <= low:
        low, high = low - 1, high + 1
    x = np.linspace(steps[0], steps[-1], min(len(steps), columns)) if len(steps) > 1 else steps
    rows = np.clip(np.searchsorted(steps, x, side="right") - 1, 0, len(steps) - 1)
    own = histograms.shape[1]
    left, right = ranges[rows, :1], ranges[rows, 1:]
    centres = left + (np.arange(own) + 0.5) * (right - left) / own  # (columns, own bins)
    target = np.clip(((centres - low) / (high - low) * bins).astype(np.int64), 0, bins - 1)
    z = np.zeros((bins, len(x)))
    np.add.at(z, (target, np.broadcast_to(np.arange(len(x))[:, None], target.shape)), histograms[rows])
    y = low + (np.arange(bins) + 0.5) * (high - low) / bins
    return x, y, np.log1p(z)
