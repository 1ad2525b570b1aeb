"""What the live and the static plots share: their colours, axes, an empty styled figure, and how a
hyperparameter change is marked.

A change is a dotted vertical line where it was made, labelled "lr=0.3". Changes made at
the same step share one mark, keeping each name's last value, so dragging a slider back
and forth between two updates makes one mark, not hundreds.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import plotly.graph_objects as go

from trainlab.widgets.live_figure import LiveFigure

__all__ = ["TRAIN_COLOR", "VAL_COLOR", "GHOST_COLOR", "GHOST_OPACITY", "RAW_COLOR", "RAW_OPACITY",
           "CHANGE_COLOR", "MAX_CHANGE_MARKS", "LOG_AXIS", "LINEAR_AXIS", "EPOCH_AXIS", "LEGEND", "MODEBAR",
           "change_marks", "new_figure", "y_axis", "note_above"]

TRAIN_COLOR = "#1f77b4"  # plotly's first colour: training curves
VAL_COLOR = "#ff7f0e"  # its second: validation curves
GHOST_COLOR = "#969696"  # runs left behind by a rewind/restore, where one colour is enough (the live loss plot)
GHOST_OPACITY = 0.4  # ghosts stay faint: the current run is the one to read
# Each batch's own loss, under its smoothed curve: faint on a white plot (contrast 1.7), yet readable
# on a dark one (3.4; the first colour at a quarter opacity was 1.3 there: nearly invisible).
RAW_COLOR = "#5fa8e0"
RAW_OPACITY = 0.6
CHANGE_COLOR = "#7f7f7f"
MAX_CHANGE_MARKS = 20  # only the latest steps that had a change are marked: more would hide the curves

# Plotly's default log axis labels the 2s and 5s of each decade in small digits ("2 5 2 5"),
# unreadable at this size: fewer ticks, each labelled in full ("0.02", "1e-5"). At most 3 ticks'
# worth: over one or two decades plotly then labels 1, 2 and 5 of each (more, and it labels every
# digit: "0.05 0.06 0.07 0.08 0.09" pile up at the top of a decade); over more, whole decades.
LOG_AXIS = dict(type="log", nticks=3, tickformat="~g", minor=dict(ticks="outside", ticklen=3))
LINEAR_AXIS = dict(type="linear")
# Epochs are whole numbers: never "1.2, 1.4" on a short run (the range spans at least 0..5, so
# the ticks are whole; the format drops any fraction left).
EPOCH_AXIS = dict(tickformat="d", autorangeoptions=dict(include=[0, 5]))
# The legend stands outside the plotting area, on its right, where neither the curves nor the
# change marks' labels can cover it (plotly widens the right margin to hold it).
LEGEND = dict(font=dict(size=10), x=1.02, xanchor="left", y=1, yanchor="top")
# The toolbar shows on hover at the top right, over a long title: keep only zoom, pan, reset
# and download, which leaves the title clear.
MODEBAR = dict(remove=["lasso2d", "select2d", "zoomIn2d", "zoomOut2d", "autoScale2d"])

Change = tuple[int, str, Any]  # (step, name, value), as in ``history.changes``


def change_marks(changes: Sequence[Change], x_of_step: Callable[[int], float | None] = float,
                 axes: Sequence[str] = ("",)) -> tuple[list[dict], list[dict]]:
    """Plotly shapes (dotted vertical lines) and annotations ("lr=0.3") for hyperparameter changes.

    ``x_of_step`` places a step on the x axis (None leaves its mark out); every subplot named
    in ``axes`` ("" for x/y, "2" for x2/y2, ...) gets every mark.
    Example: ``shapes, notes = change_marks(loop.history.changes)``.
    """
    by_step: dict[int, dict[str, Any]] = {}
    for step, name, value in changes:
        by_step.setdefault(step, {})[name] = value
    shapes, annotations = [], []
    for i, step in enumerate(sorted(by_step)[-MAX_CHANGE_MARKS:]):
        x = x_of_step(step)
        if x is None:
            continue
        text = ", ".join(f"{name}={_short(value)}" for name, value in by_step[step].items())
        for axis in axes:
            xref, yref = f"x{axis}", f"y{axis} domain"  # y in the subplot's own 0..1, whatever its data
            shapes.append(dict(type="line", xref=xref, yref=yref, x0=x, x1=x, y0=0, y1=1,
                               line=dict(color=CHANGE_COLOR, width=1, dash="dot")))
            # Three heights in turn, so labels of nearby changes do not cover each other.
            annotations.append(dict(x=x, y=1 - 0.08 * (i % 3), xref=xref, yref=yref, xanchor="left", yanchor="top",
                                    showarrow=False, text=text, font=dict(size=10, color=CHANGE_COLOR),
                                    bgcolor="rgba(255,255,255,0.7)"))
    return shapes, annotations


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def new_figure(title: str, x_title: str, y_title: str, *, log_y: bool = False,
               width: int = 460, height: int = 280) -> LiveFigure:
    """An empty, compact live figure; ``uirevision`` keeps the learner's zoom across redraws.

    No template: the page picks a light or a dark one, as its theme is.
    """
    return LiveFigure(layout=go.Layout(
        title=dict(text=title, font=dict(size=14)), width=width, height=height,
        margin=dict(l=50, r=10, t=36, b=36), uirevision="keep", modebar=MODEBAR,
        xaxis=dict(title=dict(text=x_title, standoff=4), **(EPOCH_AXIS if x_title == "epoch" else {})),
        yaxis=y_axis(y_title, log_y), legend=LEGEND,
    ))


def y_axis(title: str, log: bool) -> dict[str, Any]:
    """A y axis titled ``title``, on a log or a linear scale."""
    return dict(title=dict(text=title, standoff=4), **(LOG_AXIS if log else LINEAR_AXIS))


def note_above(text: str) -> dict[str, Any]:
    """A plot's one-line note just above its plotting area (what it shows, or why it shows nothing yet)."""
    return dict(text=text, x=0, y=1.0, xref="paper", yref="paper", xanchor="left", yanchor="bottom",
                showarrow=False, font=dict(size=10, color="#555"))
