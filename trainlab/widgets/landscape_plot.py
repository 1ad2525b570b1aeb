"""The "where this step lands" plot: the batch's loss along the update about to be made (see ``landscape.py``).

Measured after ``backward()``: when the learner presses Backward (the next redraw
measures it), and while playing from an ``after_backward`` handler, on a budget of its
own, so a dashboard without this plot pays nothing and one with it pays a few forward
passes a few times a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.events import Handle
from trainlab.landscape import StepLandscape, step_landscape
from trainlab.widgets.budget import RenderBudget
from trainlab.widgets.live_plots import new_figure
from trainlab.widgets.plot_style import TRAIN_COLOR, VAL_COLOR

__all__ = ["StepLandscapePlot"]

_WAITING = "Press Backward (or Play): where the next update lands shows here"


class StepLandscapePlot:
    """The open batch's loss at w + t·(update), t from 0 to 3; t = 1 (the update itself) marked."""

    name = "step_landscape"

    def __init__(self, loop: Any, fps: float = 2.0, max_ui_fraction: float = 0.05) -> None:
        self.budget = RenderBudget(fps, max_ui_fraction)
        self.figure = new_figure("Where this step lands", "t  (0 = now, 1 = this update, 2 = twice as far)",
                                 "this batch's loss")
        self.figure.add_scatter(name="loss along the update", mode="lines", line=dict(color=TRAIN_COLOR, width=2))
        self.figure.add_scatter(name="now (t = 0)", mode="markers", marker=dict(color="#555555", size=9))
        self.figure.add_scatter(name="after this update (t = 1)", mode="markers",
                                marker=dict(color=VAL_COLOR, size=11, symbol="diamond"))
        self.figure.add_vline(x=1, line=dict(color="gray", dash="dot"))
        self.figure.send_layout(annotations=[_note(_WAITING)])
        self.latest: StepLandscape | None = None
        self._measured: tuple | None = None  # the batch the latest landscape belongs to
        self._drawn: StepLandscape | None = None

    def attach(self, loop: Any) -> list[Handle]:
        """Measure after every backward the budget allows (playing, or code driving the loop)."""
        return [loop.on("after_backward", self._after_backward, observer=True)]  # it only reads the loop

    def reset(self) -> None:
        """Nothing to forget: a landscape belongs to one batch, and says which."""

    def redraw(self, loop: Any) -> None:
        """Show the latest landscape; measure the open batch's first if it has its gradients and none was taken."""
        if loop.next_stage == "update" and self._measured != _batch_key(loop):
            self._measure(loop)
        view = self.latest
        if view is None or view is self._drawn:
            return
        self._drawn = view
        losses = np.where(np.isfinite(view.losses), view.losses, np.nan)  # a blown-up loss is a gap, not a spike
        self.figure.send_traces([0, 1, 2], x=[view.t, np.array([0.0]), np.array([1.0])],
                                y=[losses, np.array([view.current]), np.array([view.landing])])
        change = view.landing - view.current
        verdict = "down" if change < 0 else "UP: the step overshoots"
        self.figure.send_layout(annotations=[_note(
            f"update {view.step}, lr {view.lr:.3g}: loss {view.current:.4g} → {view.landing:.4g} ({verdict})")])

    def _after_backward(self, loop: Any) -> None:
        if self.budget.due():
            with self.budget.spending():
                self._measure(loop)

    def _measure(self, loop: Any) -> None:
        self.latest = step_landscape(loop)
        self._measured = _batch_key(loop)


def _batch_key(loop: Any) -> tuple:
    """Which batch the loop is in: its step and its loss tensor (a new one for every batch)."""
    return loop.state.step, id(loop.last_loss)


def _note(text: str) -> dict:
    return dict(text=text, x=0, y=1.0, xref="paper", yref="paper", xanchor="left", yanchor="bottom",
                showarrow=False, font=dict(size=10, color="#555"))
