"""The "where this step lands" plot: the batch's loss along the update about to be made (see ``landscape.py``).

Measured after ``backward()``: when the learner presses Backward (the next redraw
measures it), and while playing from an ``after_backward`` handler, on a budget of its
own, so a dashboard without this plot pays nothing and one with it pays a few forward
passes a few times a second. A live change before the update (the lr slider, clipping,
the optimizer, weights edited in a cell) changes where the step lands: the next redraw
measures again. A measurement that fails is shown in the plot, never raised: it must
not stop the training it only watches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from trainlab.errors import LoopBusyError
from trainlab.events import Handle
from trainlab.landscape import StepLandscape, step_landscape
from trainlab.widgets.budget import RenderBudget
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import TRAIN_COLOR, VAL_COLOR, new_figure, note_above

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["StepLandscapePlot"]

_WAITING = "Press Backward (or Play): where the next update lands shows here"


class StepLandscapePlot(Plot):
    """The open batch's loss at w + t·(update), t from 0 to 3; t = 1 (the update itself) marked."""

    def __init__(self, loop: Loop, fps: float = 2.0, max_ui_fraction: float = 0.05) -> None:
        self.budget = RenderBudget(fps, max_ui_fraction)
        self.figure = new_figure("Where this step lands", "t  (0 = now, 1 = this update, 2 = twice as far)",
                                 "this batch's loss")
        self.figure.add_scatter(name="loss along the update", mode="lines", line=dict(color=TRAIN_COLOR, width=2))
        self.figure.add_scatter(name="now (t = 0)", mode="markers", marker=dict(color="#555555", size=9))
        self.figure.add_scatter(name="after this update (t = 1)", mode="markers",
                                marker=dict(color=VAL_COLOR, size=11, symbol="diamond"))
        self.figure.add_vline(x=1, line=dict(color="gray", dash="dot"))
        self.figure.send_layout(annotations=[note_above(_WAITING)])
        self.latest: StepLandscape | None = None
        self.failure: str | None = None  # why the last measurement failed, as the plot says it
        self._measured: tuple | None = None  # the batch (and settings) the latest landscape belongs to
        self._drawn: Any = _WAITING  # what the figure shows: a landscape, a failure, or the waiting note

    def attach(self, loop: Loop) -> list[Handle]:
        """Measure after every backward the budget allows; measure again after a live change."""
        return [loop.on("after_backward", self._after_backward, observer=True),  # both only read the loop
                loop.on("after_change", self._after_change, observer=True)]

    def reset(self) -> None:
        """Forget the landscape (the loop moved in time): the next redraw shows the waiting note."""
        self.latest, self.failure, self._measured = None, None, None

    def redraw(self, loop: Loop) -> None:
        """Show the latest landscape; measure the open batch's first if it has its gradients and none was taken."""
        if loop.next_stage == "update" and self._measured != _batch_key(loop):
            self._measure(loop)
        shown = self.latest if self.latest is not None else self.failure or _WAITING
        if shown is self._drawn:
            return
        self._drawn = shown
        if isinstance(shown, str):
            self._show_note(shown)
        else:
            self._show_landscape(shown)

    def _show_landscape(self, view: StepLandscape) -> None:
        losses = np.where(np.isfinite(view.losses), view.losses, np.nan)  # a blown-up loss is a gap, not a spike
        self.figure.send_traces([0, 1, 2], x=[view.t, np.array([0.0]), np.array([1.0])],
                                y=[losses, np.array([view.current]), np.array([view.landing])])
        change = view.landing - view.current
        verdict = "down" if change < 0 else "UP: the step overshoots"
        self.figure.send_layout(annotations=[note_above(
            f"update {view.step}, lr {view.lr:.3g}: loss {view.current:.4g} → {view.landing:.4g} ({verdict})")])

    def _show_note(self, text: str) -> None:
        """An empty plot that says why: waiting for a backward, or what went wrong."""
        self.figure.send_traces([0, 1, 2], x=[_EMPTY] * 3, y=[_EMPTY] * 3)
        self.figure.send_layout(annotations=[note_above(text)])

    def _after_backward(self, loop: Loop) -> None:
        if self.budget.due():
            with self.budget.spending():
                self._measure(loop)

    def _after_change(self, loop: Loop) -> None:
        """The lr, clipping, weight decay or optimizer changed: the open batch's update lands elsewhere now."""
        self._measured = None

    def _measure(self, loop: Loop) -> None:
        """Measure the open batch's landscape; a failure is kept to be shown, never raised into the step."""
        key = _batch_key(loop)
        try:
            self.latest, self.failure = step_landscape(loop), None
        except LoopBusyError:  # another thread trains: its own after_backward measures
            return
        except Exception as error:  # a model that cannot run as the landscape runs it: say so, keep training
            self.latest, self.failure = None, _short(f"could not measure: {type(error).__name__}: {error}")
        self._measured = key


_EMPTY = np.empty(0, np.float64)


def _batch_key(loop: Loop) -> tuple:
    """Which batch the loop is in (its step, its loss tensor: a new one for every batch), and the weights,
    optimizer and lrs as they are (``loop.revision``): edited in a cell, the update lands elsewhere."""
    return loop.state.step, id(loop.last_loss), loop.revision


def _short(text: str, limit: int = 200) -> str:
    """One line that fits above the plot."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
