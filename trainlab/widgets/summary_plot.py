"""The "summary" plot: the model, layer by layer, as a table (``tl.summary``): type, output shape for one batch,
trainable and frozen parameters, and each layer's gradient norm at the last backward pass.

The shapes and counts do not change as the loop trains; the gradient norms do, so while a dashboard
plays the table is redrawn at most every ``_EVERY`` seconds (a table is drawn by plotly.js, never by
the light renderer: it costs the page a full redraw).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from trainlab.summary import summary
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure, note_above

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["SummaryPlot"]

_EVERY = 2.0  # seconds between redraws while the gradient norms change
_HEADER = ["layer", "type", "output shape", "trainable", "frozen", "grad norm"]
_ROW_HEIGHT = 20
_ALIGN = ["left"] * 3 + ["right"] * 3


class SummaryPlot(Plot):
    """``tl.summary(loop)`` as a table widget."""

    def __init__(self, loop: Loop) -> None:
        self._rows = len(list(loop.model.modules()))
        height = min(120 + _ROW_HEIGHT * self._rows, 560)
        self.figure = new_figure("Model summary", "", "", width=560, height=height)
        self.figure.add_trace(go.Table(header=dict(values=_HEADER, align="left", font=dict(size=11)),
                                       cells=dict(values=[[] for _ in _HEADER], align=_ALIGN,
                                                  font=dict(family="monospace", size=11), height=_ROW_HEIGHT),
                                       columnwidth=[3, 2, 3, 2, 1.5, 1.8]))
        self.figure.send_layout(margin=dict(l=10, r=10, t=56, b=10))
        self.summary: Any = None  # the summary drawn last
        self._key: Any = None
        self._drawn_at = -float("inf")

    def reset(self) -> None:
        self._key = None
        self._drawn_at = -float("inf")

    def redraw(self, loop: Loop) -> None:
        """Summarise again when the loop moved (a forward pass on one batch), at most every few seconds."""
        key = (loop.revision, loop.next_stage)
        if key == self._key or (self.figure.watched and time.monotonic() - self._drawn_at < _EVERY):
            return  # (while a dashboard plays, at most every few seconds)
        self.summary = table = summary(loop)
        self._key, self._drawn_at = key, time.monotonic()
        cells = table.table()
        self.figure.send_traces([0], cells=[dict(values=[list(column) for column in zip(*cells)],
                                                 align=_ALIGN,
                                                 font=dict(family="monospace", size=11), height=_ROW_HEIGHT)])
        self.figure.send_layout(title=dict(text=f"Model summary: {table.total:,} parameters ({table.trainable:,} "
                                                f"trainable, {table.frozen:,} frozen)", font=dict(size=14)),
                                annotations=[note_above(table.caption())])
