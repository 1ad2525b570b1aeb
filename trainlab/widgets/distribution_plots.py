"""The "weight_distributions" and "grad_distributions" plots: a layer's weights (or gradients) over the steps,
as bands of percentiles (TensorBoard's distributions): the whole range, the middle 90%, the middle half, the median.

A learner sees the weights spread out as the model learns, or fly apart when the learning rate is
too high; gradients shrink towards 0 (vanish) or blow up. A menu under the plot picks the layer
(each parameter: ``hidden1.weight``, ``hidden1.bias``...).

Recorded by ``tl.Distributions`` from an ``after_update`` handler, on a budget of the plot's own
(a few records a second, their CPU time counted in the dashboard's UI share), at most ``max_points``
records kept (older ones thinned). The two plots share one recorder when both are shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np

from trainlab.distributions import Distributions
from trainlab.widgets.budget import RenderBudget
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import TRAIN_COLOR, VAL_COLOR, new_figure, note_above

if TYPE_CHECKING:
    from trainlab.events import Handle
    from trainlab.loop import Loop

__all__ = ["DistributionPlot", "plot_distributions"]

_RECORDS_PER_SECOND = 4.0
# The bands, widest first: (lower percentile's column, upper's, the band's name, its opacity).
_BANDS = ((0, 6, "min to max", 0.15), (1, 5, "5% to 95%", 0.25), (2, 4, "25% to 75%", 0.4))
_MEDIAN = 3
_WAITING = "recorded a few times a second as the loop trains: press Step or Play"


class DistributionPlot(Plot):
    """One layer's weights (``kind="weights"``) or gradients (``"grads"``) over the steps, as percentile bands."""

    def __init__(self, loop: Loop, kind: str, max_points: int = 500, share: float = 0.01,
                 recorder: Distributions | None = None) -> None:
        self.kind = kind
        self.recorder = recorder or Distributions(loop, every=1, max_rows=max_points, attach=False)
        self.budget: RenderBudget | None = RenderBudget(_RECORDS_PER_SECOND, share)  # recording's, not drawing's
        self._loop = loop
        self._shared = False  # recorded by the other distribution plot
        colour = TRAIN_COLOR if kind == "weights" else VAL_COLOR
        what = "Weights" if kind == "weights" else "Gradients"
        self.figure = new_figure(f"{what} over time", "step", "weight value" if kind == "weights" else "gradient value")
        for low, high, name, opacity in _BANDS:
            self.figure.add_scatter(x=[], y=[], mode="lines", line=dict(width=0, color=colour), showlegend=False,
                                    hoverinfo="skip", name=f"{name} (from)")
            self.figure.add_scatter(x=[], y=[], mode="lines", line=dict(width=0, color=colour), fill="tonexty",
                                    fillcolor=_rgba(colour, opacity), name=name)
        self.figure.add_scatter(x=[], y=[], mode="lines", line=dict(width=2, color=colour), name="median")
        self._note: str | None = None
        self._say(_WAITING)
        names = self.recorder.names
        weights = [name for name in names if name.endswith("weight")]
        self.menu = widgets.Dropdown(description="layer", options=names, value=(weights or names or [None])[0],
                                     style={"description_width": "initial"}, layout=widgets.Layout(width="300px"))
        self.menu.observe(lambda change: self.redraw_now(self._loop), names="value")
        self._widget = widgets.VBox([self.figure, self.menu])
        self._key: Any = None

    @property
    def widget(self) -> widgets.Widget:
        return self._widget

    def connect(self, plots: dict[str, Plot]) -> None:
        """With the other distribution plot shown, record once for both: the weights plot records."""
        other = next((plot for plot in plots.values() if isinstance(plot, DistributionPlot) and plot is not self), None)
        if other is not None and self.kind == "grads" and not other._shared:
            self.recorder, self.budget, self._shared = other.recorder, None, True

    def attach(self, loop: Loop) -> list[Handle]:
        """Record now (the starting weights), then after updates as the budget allows; forget undone steps."""
        if self._shared:
            return []
        self.recorder.record()
        return [loop.on("after_update", self._after_update, observer=True),
                loop.on("after_restore", self._after_restore, observer=True)]

    def _after_update(self, loop: Loop) -> None:
        if self.budget is not None and self.budget.due():
            with self.budget.spending():
                self.recorder.record()

    def _after_restore(self, loop: Loop) -> None:
        self.recorder.rows.drop_after(loop.state.step)
        if not len(self.recorder):
            self.recorder.record()

    def reset(self) -> None:
        self._key = None

    def redraw(self, loop: Loop) -> None:
        """Draw the chosen layer's records (skipped if none came since the last redraw)."""
        rows = self.recorder.rows
        key = (len(rows), int(rows.steps[-1]) if len(rows) else None, rows.thinnings, self.menu.value)
        if key == self._key:
            return
        self._key = key
        name = self.menu.value
        table = getattr(self.recorder, self.kind).get(name, np.empty((0, 7))) if name is not None else np.empty((0, 7))
        steps = self.recorder.steps.astype(np.float64)
        finite = np.isfinite(table).all(1) if len(table) else np.zeros(0, bool)  # gradients: none before a backward
        x = steps[finite]
        columns = [table[finite, i].astype(np.float64) for i in range(table.shape[1])]
        order = [column for low, high, _, _ in _BANDS for column in (low, high)] + [_MEDIAN]
        self.figure.send_traces(list(range(len(order))), x=[x] * len(order), y=[columns[i] for i in order])
        what = "weights" if self.kind == "weights" else "gradients"
        self._say(f"{name}: the spread of its {what} at each record" if len(x) else _WAITING)

    def _say(self, text: str) -> None:
        """The line above the plot (sent only when it changes: a layout update costs the page a relayout)."""
        if text != self._note:
            self._note = text
            self.figure.send_layout(annotations=[note_above(text)])


def _rgba(colour: str, opacity: float) -> str:
    n = int(colour[1:], 16)
    return f"rgba({n >> 16},{(n >> 8) & 255},{n & 255},{opacity})"



def plot_distributions(recorder: Distributions, layer: str | None = None, kind: str = "weights") -> widgets.Widget:
    """What a ``tl.Distributions`` recorded, drawn once: a layer's weights (``kind="weights"``) or gradients
    (``"grads"``) as percentile bands over the steps, with a menu for the other layers.

    Example::

        dist = tl.Distributions(loop, every=1)
        loop.fit(epochs=5)
        tl.plot_distributions(dist, "hidden1.weight")
    """
    if kind not in ("weights", "grads"):
        raise ValueError(f"kind is 'weights' or 'grads'; got {kind!r}")
    if layer is not None and layer not in recorder.names:
        raise ValueError(f"no parameter named {layer!r} was recorded; choose one of {recorder.names}")
    plot = DistributionPlot(recorder.loop, kind, recorder=recorder)
    plot.budget = None  # nothing is recorded for it: it only draws
    if layer is not None:
        plot.menu.value = layer  # (its observer draws)
    plot.redraw_now(recorder.loop)
    return plot.widget
