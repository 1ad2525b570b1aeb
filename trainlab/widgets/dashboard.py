"""The dashboard: controls, a stage view and live plots around one loop, as one ipywidgets VBox.

Who draws, when (only ever one thread at a time):

- while playing: the runner thread, between batches, when the render budget allows, and
  once more when playing ends (still owning the loop);
- otherwise: the thread that acted, once at the end of each button action or setting
  change; and while code drives the loop from a cell (``loop.fit()``, ``loop.forward()``)
  the loop's events redraw on the budget, with a last redraw when the cell ends.

While playing, a watchdog (``watchdog.py``) pauses the loop when no page has shown the
dashboard for ``watch_timeout`` seconds: a closed tab must not keep a core training forever.
"""

from __future__ import annotations

import collections
import time
import traceback
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import ipywidgets as widgets
import numpy as np

from trainlab.callbacks import attach_all
from trainlab.errors import LoopBusyError
from trainlab.events import STAGES
from trainlab.arguments import positive_number, positive_or_none, real_number, short, whole_number
from trainlab.widgets.budget import RenderBudget
from trainlab.widgets.cells import on_cells
from trainlab.widgets.controls import ACTIONS, Controls, status_html, wrapping_row
from trainlab.widgets.heartbeat import Heartbeat
from trainlab.widgets.live_figure import LiveFigure, frames_together
from trainlab.widgets.lr_finder_panel import LRFinderPanel
from trainlab.widgets.plot import Plot
from trainlab.widgets.playground_panel import PlaygroundPanel, shown_controls
from trainlab.widgets.plots import PLOTS, PlotOptions, default_plots
from trainlab.widgets.runner import Runner, pause_all
from trainlab.widgets.series import checked_max_points, checked_smoothing
from trainlab.widgets.shortcuts import CONTAINER_CLASS, Shortcuts
from trainlab.widgets.stage_view import StageView
from trainlab.widgets.watchdog import Watchdog

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Dashboard"]

_STAGE_EVENTS = tuple(f"after_{stage}" for stage in STAGES)
# While playing, the controls, the stage table and the status line are redrawn every this many
# frames (twice a second at the default fps): text nobody reads at 12 Hz, and each costs the
# page a layout.
_TEXT_EVERY = 6


class Dashboard(widgets.VBox):
    """Drive a loop by stage, batch, epoch or continuously; turn its knobs; watch it learn.

    Example::

        dash = tl.Dashboard(loop)   # display(dash), or leave it last in a cell
        dash.play(); dash.wait(steps=200); dash.pause()

    Options: ``fps`` (plot redraws per second while playing), ``boundary_fps`` (the
    decision boundary's, which costs more), ``max_points`` per trace, ``grid`` (decision
    boundary resolution), ``ghosts`` (earlier runs drawn faintly), ``smoothing`` (the loss
    curve's EMA weight), ``callbacks`` (e.g. ``tl.EarlyStopping``, attached until ``close()``),
    ``max_ui_fraction`` (redraws, all together, never take more of the time than this), ``plots`` (which
    figures to show, by name: ``trainlab.widgets.plots.PLOTS`` lists them all with a line each; the loss is always
    shown; default: ``DEFAULT_PLOTS``, all that fit except those that cost forward passes of their own,
    like "network" and "step_landscape", which are asked for by name),
    ``speed`` (Play's pace in steps per second, also on the "speed" menu; None: full speed),
    ``watch_timeout`` (seconds without any page showing the dashboard before playing pauses itself),
    ``controls`` (which playground controls show: a preset like ``"data"`` or families and names, see
    ``playground_panel.PRESETS``; None: all).
    The page gets plotly.js once (about 5 MB), however many figures it shows; each figure costs a
    plotly.js redraw per update, so on a slow machine ``plots=("loss", "decision_boundary")``
    keeps the dashboard light.
    """

    #: Every figure a dashboard can show, in the order shown (the registry ``plots.PLOTS`` says what each is).
    PLOT_NAMES = tuple(PLOTS)
    #: The figures shown when ``plots`` is not given.
    DEFAULT_PLOTS = default_plots()

    def __init__(self, loop: Loop, *, fps: float = 12.0, boundary_fps: float = 6.0, max_points: int = 500,
                 grid: int = 60, ghosts: int = 5, smoothing: float = 0.9, callbacks: Sequence[Any] = (),
                 max_ui_fraction: float = 0.05, plots: Sequence[str] | None = None,
                 speed: float | None = None, watch_timeout: float = 10.0,
                 controls: Sequence[str] | None = None) -> None:
        self._controls_shown = shown_controls(controls)  # the playground's controls (a ValueError names unknown ones)
        _check_options(fps=fps, boundary_fps=boundary_fps, max_points=max_points, grid=grid, ghosts=ghosts,
                       smoothing=smoothing, speed=speed)
        wanted = _wanted_plots(plots)
        shares = _ui_shares(max_ui_fraction, own=sum(PLOTS[name].own_budget for name in wanted))
        self._budget = RenderBudget(fps, shares["plots"])
        self._data_budget = RenderBudget(boundary_fps, shares["data"])
        self._watchdog = Watchdog(watch_timeout)
        # Callbacks now: one that refuses this loop (ValueError) is a bad argument too, and leaves no handler behind.
        self._handles = attach_all(callbacks, loop)
        # One dashboard plays at a time: a re-run cell's new dashboard stops the one it replaced,
        # whose thread would otherwise train on, out of reach, at half the machine's speed. Now,
        # once the arguments are known good and before anything is built: the plots made below
        # look at the loop, which the old dashboard's runner must not be training meanwhile.
        pause_all("a new dashboard was opened (one plays at a time); press Play to go on")
        try:
            self._build(loop, wanted, shares, max_points, ghosts, smoothing, fps, grid, max_ui_fraction, speed)
        except BaseException:
            for handle in self._handles + getattr(self, "_plot_handles", []):  # the callbacks attached above, the plots'
                handle.remove()
            raise
        self._safe_redraw()

    def _build(self, loop: Loop, wanted: set[str], shares: dict[str, float], max_points: int, ghosts: int,
               smoothing: float, fps: float, grid: int, max_ui_fraction: float, speed: float | None) -> None:
        """The widgets, the runner, and the handlers that keep them up to date (the arguments are checked)."""
        self.loop = loop
        self.max_ui_fraction = max_ui_fraction
        # First: anywidget gives each widget's script 2 s to start, and the plots' big script,
        # started by the figures made below, can hold the page longer than that.
        self._heartbeat = Heartbeat()  # the page says so when this kernel is gone
        self._shortcuts = Shortcuts(self._on_key, layout=widgets.Layout(display="none"))
        self.controls = Controls(loop, self._on_action, self._on_setting)
        # Its own sideways scroll on a phone (a wide sample table), never the whole dashboard's.
        self.stage_view = StageView(layout=widgets.Layout(flex="1 1 420px", max_width="560px", overflow="auto"))
        self._plot_spec = (wanted, PlotOptions(max_points, ghosts, smoothing, grid, fps, shares["own"]))  # remake_plots
        self._use_plots(_make_plots(loop, *self._plot_spec))
        self.lr_finder = LRFinderPanel(self._find_lr, self._apply_lr)
        self._runner = Runner(loop, on_batch=self._on_batch, on_stop=self._on_stop)
        self.controls.speed_dropdown.observe(self._on_speed, names="value")
        self.speed = speed
        self.error: str | None = None  # the last error's message, also shown in the dashboard
        self.exception: BaseException | None = None  # the last error itself, for a closer look
        self._acting = False  # a button action is running: it redraws once, at its end
        self._dirty = False  # code moved the loop and the plots are behind
        self._rate = _Rate()
        self._ui_fraction: float | None = None  # the UI's share of a core while playing (the last Play's, paused)
        self._stopping = False  # the runner is drawing its last frame: show the controls as paused
        self._frame = 0  # live frames drawn: picks whose turn it is among the secondary plots
        self._thinnings = loop.history.thinnings  # the history thinned its old rows: plots start again
        self.playground = PlaygroundPanel(self, self._controls_shown)  # data, architecture, time travel, Share
        super().__init__(children=self._layout())
        self.add_class(CONTAINER_CLASS)
        self._handles += [loop.on("after_change", self._on_loop_change),
                          loop.on("after_restore", self._on_loop_restore)]
        self._handles += [loop.on(event, self._on_code_stage, observer=True) for event in _STAGE_EVENTS]
        self._unregister_cell_hook = on_cells(started=self._before_cell, ended=self._after_cell)

    def __repr__(self) -> str:
        if not hasattr(self, "_runner"):  # failed while being built
            return "Dashboard(<not built>)"
        return f"Dashboard({self.loop!r}, playing={self.playing}, figures={list(self.figures)})"

    # --- the widgets, for notebooks and tests ---------------------------------------------

    @property
    def buttons(self) -> dict[str, widgets.Button]:
        """label -> Button: Forward, Loss, Backward, Update, Step, Epoch, Play (Play/Pause), Rewind, Reset."""
        return self.controls.buttons

    @property
    def lr_slider(self) -> widgets.FloatLogSlider:
        """The learning-rate slider (log scale, 1e-5 ... 10)."""
        return self.controls.lr_slider

    @property
    def batch_size_slider(self) -> widgets.IntSlider:
        """The batch-size slider (1 ... the number of training samples)."""
        return self.controls.batch_size_slider

    @property
    def optimizer_dropdown(self) -> widgets.Dropdown:
        """The optimizer choice (sgd, adam, adamw, rmsprop); disabled when a scheduler drives the optimizer."""
        return self.controls.optimizer_dropdown

    @property
    def weight_decay(self) -> widgets.FloatText:
        """The weight-decay box."""
        return self.controls.weight_decay

    @property
    def status(self) -> widgets.HTML:
        """The status line: epoch, step, steps/s and samples/s, loss, the stage due, the UI's share of a core."""
        return self.controls.status

    @property
    def alert(self) -> widgets.HTML:
        """Where errors (and why playing stopped) are shown."""
        return self.controls.alert

    # --- playing ----------------------------------------------------------------------------

    @property
    def speed(self) -> float | None:
        """Play's pace in steps per second (None: as fast as the machine goes); live, even while playing.

        Example: ``dash.speed = 10`` to watch the decision boundary move batch by batch.
        """
        return self._runner.steps_per_second

    @speed.setter
    def speed(self, value: float | None) -> None:
        self.controls.show_speed(_checked_speed(value) or 0)  # the menu's observer tells the runner

    def _on_speed(self, change: dict[str, Any]) -> None:
        self._runner.steps_per_second = float(change["new"]) or None

    @property
    def playing(self) -> bool:
        """Whether the loop is playing in the background."""
        return self._runner.playing

    def play(self) -> None:
        """Start training in the background; returns at once (the loop refuses cell calls until pause())."""
        if self.playing:
            return
        self._clear_error()
        for budget in self._budgets():
            budget.restart()
        self._rate.restart(self.loop)
        self._watchdog.start()
        self._watch(True)
        # Show "playing" before the thread starts, so its own last frame (after an instant error) wins.
        self.controls.refresh(self.loop, playing=True)
        try:
            self._runner.play()
        except Exception as error:  # the loop is busy elsewhere: nothing can be drawn from it now
            self._watch(False)
            self._show_error(error)
            self.controls.refresh(self.loop, playing=False)

    def pause(self, finish_batch: bool = False) -> None:
        """Stop at the next stage boundary; returns once the background thread has stopped.

        ``finish_batch=True`` stops only between batches, so ``forward()`` is due next
        (a notebook's own pause, before a text that says "press Forward").
        """
        self._runner.pause(finish_batch=finish_batch)

    def wait(self, steps: int | None = None, timeout: float | None = None) -> int:
        """Block until ``steps`` more batches are done, or playing stops, or ``timeout`` seconds pass.

        Returns the number of batches done meanwhile. Example: ``dash.play(); dash.wait(steps=100)``.
        """
        return self._runner.wait(steps, timeout)

    def close(self) -> None:
        """Stop playing, stop listening to the loop, and close every widget."""
        if not hasattr(self, "_unregister_cell_hook"):  # failed while being built (Widget.__del__ calls close)
            super().close()
            return
        self.pause()
        for handle in self._handles + self._plot_handles + self.playground.handles:
            handle.remove()
        self._handles = self._plot_handles = self.playground.handles = []
        self._unregister_cell_hook()
        for child in self.children:
            _close_tree(child)
        super().close()

    # --- drawing -------------------------------------------------------------------------------

    def redraw(self, data: bool = True) -> None:
        """Show the loop's current state everywhere (``data=False`` skips the decision boundary).

        While playing, only the runner thread draws (on its budget): a call from elsewhere does nothing.
        """
        if self._runner.playing and not self._runner.on_runner_thread:
            return
        self._draw(self._turns, self._data_plots if data else [])
        self._dirty = False

    def _live_frame(self) -> None:
        """One frame while training runs: the loss plot, one of the others in turn, and every few frames the text.

        Sending two figures per frame, and none to a figure whose page is behind (``behind``),
        keeps a slow browser responsive: it is never sent more than it can draw.
        """
        self._frame += 1
        loss, others = self._turns[0], self._turns[1:]
        plots = [loss, _in_turn(others, self._frame)]
        data = [_in_turn(self._data_plots, self._frame)] if self._data_budget.due() else []
        self._draw([plot for plot in plots if plot is not None and not plot.figure.behind],
                   [plot for plot in data if plot is not None and not plot.figure.behind],
                   text=self._frame % _TEXT_EVERY == 1)

    def _watch(self, playing: bool) -> None:
        """Tell the pages the dashboard plays: they draw light, and say they are there every 2 s (the watchdog listens)."""
        for figure in self.figures.values():
            figure.watched = playing

    def _last_heard(self) -> float | None:
        """When a page showing one of the figures last spoke to the kernel (None: never)."""
        heard = [figure.last_heard for figure in self.figures.values() if figure.last_heard is not None]
        return max(heard, default=None)

    def _draw(self, plots: list[Plot], data_plots: list[Plot], text: bool = True) -> None:
        loop = self.loop
        if loop.history.thinnings != self._thinnings:  # their cached rows are gone
            self._thinnings = loop.history.thinnings
            for plot in self.plots.values():
                plot.reset()
        with frames_together():  # every figure's frame in one message
            with self._budget.spending():
                playing = self._runner.playing and not self._stopping
                if text:
                    self.controls.refresh(loop, playing)
                    self.playground.refresh(playing)
                    self.stage_view.redraw(loop, playing)
                for plot in plots:
                    with plot.figure.batch():  # one frame per plot and redraw
                        plot.redraw(loop)
                if text:
                    self._show_status(playing)
            if data_plots:
                with self._data_budget.spending():
                    for plot in data_plots:
                        with plot.figure.batch():
                            plot.redraw(loop)

    def _show_status(self, playing: bool) -> None:
        if self._runner.playing:  # plots and decision boundary together, since Play was pressed
            self._ui_fraction = sum(budget.ui_fraction() for budget in self._budgets())  # at most max_ui_fraction
            self._rate.measure(self.loop)
        self.controls.show_status(status_html(self.loop, playing, self._rate.steps, self._rate.samples,
                                              self._ui_fraction, self.max_ui_fraction))

    def _budgets(self) -> list[RenderBudget]:
        """Every budget that draws or measures: the plots', the decision boundary's, and a plot's own."""
        return [self._budget, self._data_budget] + [plot.budget for plot in self.plots.values() if plot.budget]

    def _safe_redraw(self, data: bool = True) -> None:
        """Redraw; a failure is shown in the dashboard instead of escaping into a random cell."""
        try:
            self.redraw(data)
        except Exception as error:
            self._show_error(error, prefix="the dashboard could not redraw")

    # --- runner callbacks (on the runner thread) ---------------------------------------------

    def _on_batch(self) -> None:
        """After every batch while playing: redraw if the budget allows (the only per-step work)."""
        if self._budget.due():
            if self._watchdog.abandoned(self._last_heard()):  # nobody watching: stop at once
                self._runner.stop_reason = self._watchdog.reason()
                self._runner.pause()  # on the runner thread: it only asks, and playing ends after this batch
                return
            try:
                self._live_frame()
            except Exception as error:  # stops the runner: a dashboard that cannot draw must say so
                raise RuntimeError(f"the dashboard could not redraw: {type(error).__name__}: {error}") from error

    def _on_stop(self) -> None:
        """Playing ended (paused, stopped by a callback, or failed): say why and draw the last frame."""
        self._watch(False)
        runner = self._runner
        if runner.error is not None:
            self._show_error(runner.error)
        elif runner.stop_reason:
            self.controls.show_alert(f"Paused: {runner.stop_reason}", kind="notice")
        self._stopping = True
        try:
            self._safe_redraw()
        finally:
            self._stopping = False

    # --- what the learner does -----------------------------------------------------------------

    def _on_key(self, label: str) -> None:
        """A keyboard shortcut: press the button, as a click would (a disabled one does nothing)."""
        self.buttons[label].click()

    def _on_action(self, label: str) -> None:
        """A button was pressed: run its loop call, show any error, redraw once."""
        if label == "Play":
            if self.playing:
                self.pause()
            else:
                self.play()
            return
        if self.playing:
            self.controls.show_alert("The loop is playing: press Pause first.", kind="notice")
            return
        self._clear_error()
        self._acting = True
        try:
            ACTIONS[label](self.loop)
        except Exception as error:  # StageError, NonFiniteError, a bug in the model...: shown, not lost
            self._show_error(error)
        finally:
            self._acting = False
            self._safe_redraw()

    def _on_setting(self, name: str, value: Any) -> None:
        """A slider/dropdown/box changed: apply it to the loop, or show why not and snap back."""
        loop = self.loop
        if value == _setting(loop, name):
            return

        def apply() -> None:
            try:
                _change_setting(loop, name, value)
            except (ValueError, LoopBusyError) as error:  # the loop refused it: nothing changed
                self._show_error(error)
                self.controls.show_settings(loop)

        if name == "optimizer":  # swapping the optimizer must not land in the middle of a batch
            self._runner.call_at_boundary(apply)
        else:
            apply()
        if not self.playing:
            self._safe_redraw(data=False)  # mark the change on the plots

    def _find_lr(self) -> Any:
        """The Find lr button: the range test from where the loop stands (paused only); None if refused."""
        if self.playing:
            self.controls.show_alert("The loop is playing: press Pause first, then Find lr (the finder trains "
                                     "from where the loop stands, then puts it back).", kind="notice")
            return None
        self._clear_error()
        try:
            return self.loop.find_lr()
        except Exception as error:  # mid-batch (StageError), a model that fails...: shown, the loop unchanged
            self._show_error(error)
            return None

    def _apply_lr(self, lr: float) -> None:
        """Use the finder's suggestion: the same path as the lr slider, so it is recorded as a change."""
        self._on_setting("lr", lr)

    # --- what the loop tells us ----------------------------------------------------------------

    def _on_loop_change(self, loop: Loop) -> None:
        """A hyperparameter changed (from code, or a scheduler): show it on the widgets now, not at the next redraw."""
        self.controls.show_settings(loop)

    def _on_loop_restore(self, loop: Loop) -> None:
        """The loop moved in time (rewind, restore, reset, load): its history is a new one."""
        for plot in self.plots.values():
            plot.reset()
        self.controls.show_settings(loop)
        self._dirty = True

    def _on_code_stage(self, loop: Loop) -> None:
        """A stage ran because code called it (not Play, not a button): keep up, on the budget."""
        if self._acting or self._runner.playing:
            return
        self._dirty = True  # the cell's end draws everything
        if self._budget.due():
            try:
                self._live_frame()
            except Exception as error:
                self._show_error(error, prefix="the dashboard could not redraw")

    def _before_cell(self, *args: Any) -> None:
        """A notebook cell starts: until it ends, the kernel cannot hear the page."""
        self._watchdog.cell_running(True)

    def _after_cell(self, *args: Any) -> None:
        """A notebook cell ended: draw what code did to the loop, if the plots are behind."""
        self._watchdog.cell_running(False)
        if self._dirty and not self._runner.playing:
            self._safe_redraw()

    # --- errors -----------------------------------------------------------------------------

    def _show_error(self, error: BaseException, prefix: str = "") -> None:
        message = f"{type(error).__name__}: {error}"
        self.error = f"{prefix}: {message}" if prefix else message
        self.exception = error
        details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.controls.show_alert(self.error, kind="error", details=details)

    def _clear_error(self) -> None:
        self.error = None
        self.exception = None
        self.controls.show_alert(None)

    # --- layout -------------------------------------------------------------------------------

    def _layout(self) -> list[widgets.Widget]:
        figures = [plot.widget for plot in self._data_plots + self._turns]  # the data view first
        # One wrapping row: as many plots side by side as the screen holds, the rest below. A plot
        # wider than a phone scrolls in its own box, never the whole dashboard sideways. The inner box
        # keeps the plot's full width: a shrunk plot would be clipped (a widget hides its overflow),
        # leaving its box nothing to scroll to.
        boxes = [widgets.Box([widgets.Box([figure], layout=widgets.Layout(flex="0 0 auto"))],
                             layout=widgets.Layout(max_width="100%", overflow="auto")) for figure in figures]
        return [self._heartbeat, self.controls.widget, self.playground.top, self.lr_finder.widget,
                widgets.HBox([self.stage_view, *boxes], layout=wrapping_row()), self.playground.bottom, self._shortcuts]

    def _use_plots(self, plots: dict[str, Plot]) -> None:
        """Show these plots (name -> Plot, the loss first): each drawn in turn or on the data budget, connected to
        the others (a confusion cell picks the mistakes shown), attached to the loop's events if it measures."""
        for handle in getattr(self, "_plot_handles", []):  # the plots these replace
            handle.remove()
        #: name -> Plot: every plot shown, in the registry's order (the loss first).
        self.plots = plots
        self._turns = [plot for name, plot in plots.items() if PLOTS[name].budget == "turns"]
        self._data_plots = [plot for name, plot in plots.items() if PLOTS[name].budget == "data"]
        self.figures: dict[str, LiveFigure] = {name: plot.figure for name, plot in plots.items()}
        for plot in plots.values():
            plot.connect(plots)
        self._plot_handles = [handle for plot in plots.values() for handle in plot.attach(self.loop)]

    def remake_plots(self) -> None:
        """Build every plot again for the loop as it is now: its data or model was rebuilt (the playground)."""
        old = self.plots
        self._use_plots(_make_plots(self.loop, *self._plot_spec))
        self.children = self._layout()
        for plot in old.values():
            _close_tree(plot.widget)


def _setting(loop: Loop, name: str) -> Any:
    """The loop's current value of a control's setting ("lr", "batch_size", "weight_decay", "optimizer")."""
    return loop.optimizer_name if name == "optimizer" else getattr(loop, name)


def _change_setting(loop: Loop, name: str, value: Any) -> None:
    """Set a control's setting on the loop; the loop checks the value (a ValueError changes nothing)."""
    if name == "optimizer":
        loop.set_optimizer(value)
    else:
        setattr(loop, name, value)


def _check_options(fps: Any, boundary_fps: Any, max_points: Any, grid: Any, ghosts: Any, smoothing: Any,
                   speed: Any) -> None:
    """Refuse a dashboard's number options that it cannot use, each in words that say what to pass."""
    positive_number(fps, "fps", "12")
    positive_number(boundary_fps, "boundary_fps", "6")
    checked_max_points(max_points)
    whole_number(grid, "grid", 2, "60")
    whole_number(ghosts, "ghosts", 0, "5")
    checked_smoothing(smoothing)
    _checked_speed(speed)


def _checked_speed(speed: Any) -> float | None:
    """A pace in steps per second as a float (None: full speed), or a ValueError saying what to pass."""
    return positive_or_none(speed, "speed is steps per second, a number above 0 like speed=10, or None for as "
                                   "fast as the machine goes")


class _Rate:
    """Steps and samples per second while playing, over the last second or so (no per-step work)."""

    WINDOW = 1.0  # seconds: a rate over a single frame swings wildly (a redraw, a validation pass)

    def __init__(self) -> None:
        self.steps: float | None = None  # the last rates measured, kept when playing stops
        self.samples: float | None = None
        self._marks: collections.deque[tuple[float, int]] = collections.deque()  # (time, history length)

    def restart(self, loop: Loop) -> None:
        self._marks.clear()
        self._marks.append((time.perf_counter(), len(loop.history)))

    def measure(self, loop: Loop) -> None:
        now, n = time.perf_counter(), len(loop.history)
        if self._marks and n < self._marks[-1][1]:  # the history was replaced meanwhile
            self._marks.clear()
        self._marks.append((now, n))
        while len(self._marks) > 2 and now - self._marks[1][0] >= self.WINDOW:
            self._marks.popleft()  # keep one mark at least a window old
        first, elapsed = self._marks[0][1], now - self._marks[0][0]
        if n > first and elapsed > 0:
            self.steps = (n - first) / elapsed
            self.samples = float(np.sum(loop.history.steps["batch_size"][first:n])) / elapsed


def _ui_shares(max_ui_fraction: float, own: int) -> dict[str, float]:
    """``max_ui_fraction`` split among the dashboard's render budgets, so that together they stay under it.

    Each budget keeps its own redraws under its share; the plots (with the status line and the
    stage table) get three parts, the data views one, and each plot with a budget of its own one.
    """
    share = real_number(max_ui_fraction)
    if share is None or not 0 < share < 1:
        raise ValueError(f"max_ui_fraction is the share of time redraws may take, between 0 and 1, like "
                         f"max_ui_fraction=0.05; got {short(max_ui_fraction)}")
    unit = share / (4 + own)
    return {"plots": 3 * unit, "data": unit, "own": unit}


def _wanted_plots(plots: Iterable[str] | None) -> set[str]:
    """The names of the plots asked for (the defaults when None), checked; the loss is always among them."""
    if plots is None:
        return set(default_plots()) | {"loss"}
    names = list(plots) if isinstance(plots, Iterable) and not isinstance(plots, str) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ValueError(f"plots is a list of plot names, like plots=('loss', 'accuracy'); got {plots!r}")
    unknown = sorted(set(names) - set(PLOTS))
    if unknown:
        raise ValueError(f"unknown plots {unknown}; choose from {tuple(PLOTS)}")
    return set(names) | {"loss"}


def _make_plots(loop: Loop, wanted: set[str], options: PlotOptions) -> dict[str, Plot]:
    """The plots asked for that fit the loop, in the registry's order (the loss first)."""
    made = {name: kind.make(loop, options) for name, kind in PLOTS.items() if name in wanted}
    return {name: plot for name, plot in made.items() if plot is not None}


def _in_turn(plots: list[Plot], frame: int) -> Plot | None:
    """The plot whose turn it is at this frame (None when there are none)."""
    return plots[frame % len(plots)] if plots else None


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()

