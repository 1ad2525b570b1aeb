"""The "confusion" plot: which classes the model mistakes for which (``tl.confusion``), live.

A heatmap of the validation data (the training data when there is none): a row per true class, a
column per predicted class, each cell coloured by its share of the row and labelled with its
count. Clicking a cell picks it (click it again to let go): the "mistakes" plot, when shown, then
shows only those samples. It runs the model over the data, so the dashboard draws it on its data
budget, in turn with the other views that do.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import ipywidgets as widgets
import numpy as np

from trainlab.confusion import confusion, row_shares
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure, note_above

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["ConfusionPlot", "plot_errors"]

_BLUES = [[0.0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1.0, "#08306b"]]
_PICKED = "#e6550d"


class ConfusionPlot(Plot):
    """Counts of (true class, predicted class) on the validation data, coloured by row share; a cell can be picked."""

    def __init__(self, loop: Loop) -> None:
        self.which = "validation" if loop.has_validation else "training"
        self.figure = new_figure(f"Confusion matrix ({self.which} data)", "predicted class", "true class",
                                 width=400, height=380)
        self.figure.add_heatmap(x=[], y=[], z=[], text=[], texttemplate="%{text}", textfont=dict(size=10),
                                colorscale=_BLUES, zmin=0, zmax=1, showscale=False, name="share of the true class",
                                hovertemplate="true %{y}, predicted %{x}: %{text} samples (%{z:.0%} of the true "
                                              "%{y}s)<extra></extra>")
        self.figure.add_scatter(x=[], y=[], mode="lines", line=dict(color=_PICKED, width=3), hoverinfo="skip",
                                showlegend=False, name="picked")
        self.figure.send_layout(annotations=[note_above("colour: share of the row · click a cell to see its samples")])
        self.figure.on_click(self._clicked)
        self.picked: tuple[int, int] | None = None  # (true class, predicted class) of the picked cell
        self.counts: np.ndarray | None = None  # the matrix drawn last
        self._listeners: list[Callable[[tuple[int, int] | None], None]] = []
        self._key: Any = None

    def on_pick(self, listener: Callable[[tuple[int, int] | None], None]) -> None:
        """Call ``listener((true, predicted))`` when a cell is picked, ``listener(None)`` when let go."""
        self._listeners.append(listener)

    def pick(self, cell: tuple[int, int] | None) -> None:
        """Pick a cell (true class, predicted class), or None to let go; as a click on it does."""
        self.picked = cell
        self._draw_pick()
        for listener in self._listeners:
            listener(cell)

    def reset(self) -> None:
        self._key = None

    def redraw(self, loop: Loop) -> None:
        """Count again if the weights changed since the last redraw (a forward pass over the data)."""
        key = loop.revision
        if key == self._key:
            return
        counts = confusion(loop)
        self._key = key
        classes = len(counts)
        if self.counts is None or len(self.counts) != classes:  # the first: the axes get their classes
            cells = dict(tickmode="array", tickvals=list(range(classes)), ticktext=[str(c) for c in range(classes)],
                         range=[-0.5, classes - 0.5], autorange=False)  # fixed: the light renderer needs a range
            self.figure.send_layout(xaxis=dict(self.figure.layout.xaxis.to_plotly_json(), **cells),
                                    yaxis=dict(self.figure.layout.yaxis.to_plotly_json(), **cells))
        self.counts = counts
        cells = np.arange(classes, dtype=np.float64)
        self.figure.send_traces([0], x=[cells], y=[cells], z=[row_shares(counts)],
                                text=[[[str(int(n)) for n in row] for row in counts]])

    def _clicked(self, point: dict[str, Any]) -> None:
        """A click in the page: the cell under it, picked (or let go, if it was the picked one)."""
        if self.counts is None or not all(math.isfinite(point[name]) for name in ("x", "y")):
            return
        cell = (int(round(point["y"])), int(round(point["x"])))
        if not all(0 <= c < len(self.counts) for c in cell):
            return
        self.pick(None if cell == self.picked else cell)

    def _draw_pick(self) -> None:
        """An outline round the picked cell (none when nothing is picked)."""
        if self.picked is None:
            x = y = np.empty(0)
        else:
            t, p = self.picked
            x = np.array([p - 0.5, p + 0.5, p + 0.5, p - 0.5, p - 0.5])
            y = np.array([t - 0.5, t - 0.5, t + 0.5, t + 0.5, t - 0.5])
        self.figure.send_traces([1], x=[x], y=[y])



def plot_errors(loop: Loop, k: int = 9) -> widgets.Widget:
    """The confusion matrix beside the ``k`` worst mistakes, drawn once for the loop as it is now; click a
    cell of the matrix to see its samples (the model runs again when the kernel is free).

    Example: ``tl.plot_errors(loop)`` after ``loop.fit(...)`` on the digits.
    """
    from trainlab.widgets.mistakes_plot import MistakesPlot  # it builds on this module

    confusion, mistakes = ConfusionPlot(loop), MistakesPlot(loop, k=k)
    mistakes.connect({"confusion": confusion})
    for plot in (confusion, mistakes):
        plot.redraw_now(loop)
    return widgets.HBox([confusion.widget, mistakes.widget], layout=widgets.Layout(flex_flow="row wrap"))
