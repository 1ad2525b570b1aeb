"""What every dashboard plot is: a live figure the dashboard lays out, redraws and resets.

A plot subclasses ``Plot`` and writes ``__init__`` (make ``self.figure`` and its traces once) and
``redraw(loop)`` (send the figure what changed). The rest has do-nothing defaults that a plot
overrides when it needs them:

- ``widget``: what the dashboard lays out (the figure; or a box with a checkbox under it);
- ``reset()``: forget cached rows when the history was replaced (restore, rewind, reset, load) or thinned;
- ``attach(loop)``: handlers a plot needs during a step (the step's landscape measures after backward);
  the dashboard removes them when it closes;
- ``budget``: a plot that measures on a budget of its own (not only when drawn) gives it here, so
  the status line's "UI: n% of a core" counts it;
- ``connect(plots)``: plots that work together find each other, once the dashboard has made them all
  (a picked confusion cell narrows the mistakes shown).

A plot with controls of its own (a menu) draws at once when the learner uses them: ``redraw_now``.

Which plots there are, which are on by default, and how each is built: ``plots.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainlab.errors import LoopBusyError

if TYPE_CHECKING:
    import ipywidgets as widgets

    from trainlab.events import Handle
    from trainlab.loop import Loop
    from trainlab.widgets.budget import RenderBudget
    from trainlab.widgets.live_figure import LiveFigure

__all__ = ["Plot"]


class Plot:
    """A dashboard plot: ``figure``, ``redraw(loop)``; ``widget``, ``reset``, ``attach`` and ``budget`` default."""

    figure: LiveFigure
    #: Its own render budget, if it measures outside its redraws (None: drawn on the dashboard's).
    budget: RenderBudget | None = None

    @property
    def widget(self) -> widgets.Widget:
        """What the dashboard lays out: the figure itself, unless a plot adds controls around it."""
        return self.figure

    def redraw(self, loop: Loop) -> None:
        """Show the loop as it is now (send the figure only what changed since the last redraw)."""
        raise TypeError(f"{type(self).__name__} is a Plot and must define redraw(loop)")

    def reset(self) -> None:
        """Forget cached state: the loop's history was replaced or thinned, so draw it again from the start."""

    def attach(self, loop: Loop) -> list[Handle]:
        """Handlers this plot needs on the loop's events (removed when the dashboard closes); none by default."""
        return []

    def connect(self, plots: dict[str, Plot]) -> None:
        """Find the other plots of the dashboard (name -> plot) this one works with; nothing by default."""

    def redraw_now(self, loop: Loop) -> None:
        """Redraw at once, as one frame, if no other thread trains the loop (a dashboard playing: its next turn
        draws it). For a plot's own controls, whose handlers run on the kernel's thread."""
        try:
            with loop.hold(), self.figure.batch():
                self.redraw(loop)
        except LoopBusyError:
            pass
