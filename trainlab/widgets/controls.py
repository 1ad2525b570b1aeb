"""Controls: the buttons, hyperparameter widgets and status line that drive a loop.

The controls only build widgets, show the loop's state on them and report what the
learner did (``on_action(label)``, ``on_setting(name, value)``); the dashboard decides
what happens (run it now, refuse it while playing, queue it for the runner thread).
They keep no copy of the loop's hyperparameters: every refresh reads them from the loop,
so a change the loop made itself (a scheduler's lr) shows too.
"""

from __future__ import annotations

import html
import math
import threading
from typing import TYPE_CHECKING, Any, Callable

import ipywidgets as widgets

from trainlab.events import STAGES
from trainlab.options import OPTIMIZERS
from trainlab.widgets.stage_view import STAGE_SENTENCES

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Controls", "ACTIONS", "STAGE_BUTTONS", "BUTTON_LABELS", "OPTIMIZER_NAMES", "SPEEDS", "status_html",
           "round_lr", "wrapping_row"]

#: The stage buttons, by the stage they run.
STAGE_BUTTONS: dict[str, str] = {stage: stage.capitalize() for stage in STAGES}

#: What each button (other than Play/Pause) asks of the loop.
ACTIONS: dict[str, Callable[[Any], object]] = {
    "Forward": lambda loop: loop.forward(),
    "Loss": lambda loop: loop.loss(),
    "Backward": lambda loop: loop.backward(),
    "Update": lambda loop: loop.update(),
    "Step": lambda loop: loop.step(),
    "Epoch": lambda loop: loop.run_epoch(),
    "Rewind": lambda loop: loop.rewind(1),
    "Reset": lambda loop: loop.reset(),
}

#: Every button, in display order; "Play" is the one Play/Pause button.
BUTTON_LABELS = ("Forward", "Loss", "Backward", "Update", "Step", "Epoch", "Play", "Rewind", "Reset")

#: The optimizers a learner can switch between: the ones the loop knows by name.
OPTIMIZER_NAMES = tuple(OPTIMIZERS)

#: Play's paces, in steps per second (0: as fast as the machine goes): slow enough to watch a
#: decision boundary move, or a curve grow point by point.
SPEEDS = (0, 300, 100, 30, 10, 3, 1)

_TOOLTIPS = {
    **{label: STAGE_SENTENCES[stage] for stage, label in STAGE_BUTTONS.items()},
    "Step": "Run what is left of this batch (or a whole new batch): one update. Key: S, once the dashboard "
            "has focus (click it)",
    "Epoch": "Finish this pass over the training data, then validate",
    "Play": "Train continuously in the background; the controls stay live. Keys: P plays or pauses, S steps, "
            "once the dashboard has focus (click it)",
    "Rewind": "Undo the last update",
    "Reset": "Back to the initial weights, step 0 (the run so far stays as a ghost curve)",
}
# A label without a tooltip shows one reading "null" (ipywidgets 8 sets the label's title from it).
_SETTING_TIPS = {
    "lr": "How big a step each update takes (log scale); applies from the next update",
    "batch_size": "How many training samples each step uses; applies from the next batch",
    "weight_decay": "How much each update also shrinks the weights towards 0; applies from the next update",
}
_ICONS = {"Step": "step-forward", "Epoch": "forward", "Play": "play", "Rewind": "undo", "Reset": "refresh"}
_LR_RANGE = (-5, 1)  # exponents: 1e-5 ... 10
# The slider moves in steps of 10**0.01 (2.3%), and what it gives is rounded to two significant
# digits: so 0.3, 0.05, 1 and 3 are exactly reachable (10**-0.52 = 0.302 gives 0.3), and a
# learner who drags back to "0.3" gets the notebook's 0.3, not 0.316.
_LR_STEP = 0.01
_LR_DIGITS = 2
_WIDE = {"description_width": "initial"}  # so "learning rate" is not cut off
# Narrow screens (a phone, a projector at 150% zoom): rows wrap instead of scrolling sideways,
# buttons keep their width (a shrunk button cuts its label to "Forw…"), sliders keep a track
# wide enough to drag.
_SLIDER_LAYOUT = dict(flex="1 1 300px", min_width="250px", max_width="420px")


class Controls:
    """The dashboard's buttons, sliders, optimizer choice, weight decay, status line and alert area."""

    def __init__(self, loop: Loop, on_action: Callable[[str], None],
                 on_setting: Callable[[str, Any], None]) -> None:
        self._on_action = on_action
        self._on_setting = on_setting
        self._local = threading.local()  # .syncing: this thread is copying loop values onto the widgets
        self.buttons = {label: self._button(label) for label in BUTTON_LABELS}
        self.lr_slider = widgets.FloatLogSlider(
            value=_clamp(loop.lr, 10.0 ** _LR_RANGE[0], 10.0 ** _LR_RANGE[1]), base=10,
            min=_LR_RANGE[0], max=_LR_RANGE[1], step=_LR_STEP, description="learning rate",
            tooltip=_SETTING_TIPS["lr"], readout_format=".2", continuous_update=False, style=_WIDE,
            layout=widgets.Layout(**_SLIDER_LAYOUT))
        self.batch_size_slider = widgets.IntSlider(
            value=_clamp(loop.batch_size, 1, loop.n_train), min=1, max=loop.n_train, description="batch size",
            tooltip=_SETTING_TIPS["batch_size"], continuous_update=False, style=_WIDE,
            layout=widgets.Layout(**_SLIDER_LAYOUT))
        self.optimizer_dropdown = widgets.Dropdown(
            options=_optimizer_options(loop), value=loop.optimizer_name, description="optimizer",
            disabled=loop.scheduler is not None, style=_WIDE, layout=widgets.Layout(width="180px", flex="0 0 auto"),
            tooltip="a scheduler drives this loop's optimizer" if loop.scheduler is not None else "")
        self.weight_decay = widgets.FloatText(
            value=loop.weight_decay, step=1e-4, description="weight decay", tooltip=_decay_tooltip(loop),
            style=_WIDE, layout=widgets.Layout(width="200px", flex="0 0 auto"))
        self.speed_dropdown = widgets.Dropdown(
            options=[(_speed_label(speed), speed) for speed in SPEEDS], value=0, description="speed",
            style=_WIDE, layout=widgets.Layout(width="170px", flex="0 0 auto"), tooltip="how fast Play trains")
        self.status = widgets.HTML()
        self.alert = widgets.HTML()  # errors (red) and stop reasons (blue)
        # continuous_update=False: a drag is one change (one mark on the plots), applied on release.
        for name, widget in (("lr", self.lr_slider), ("batch_size", self.batch_size_slider),
                             ("optimizer", self.optimizer_dropdown), ("weight_decay", self.weight_decay)):
            widget.observe(self._setting_observer(name), names="value")
        stage_row = [self.buttons[label] for label in STAGE_BUTTONS.values()]
        run_row = [self.buttons[label] for label in ("Step", "Epoch", "Play", "Rewind", "Reset")]
        self.widget = widgets.VBox([
            widgets.HBox(stage_row + [widgets.HTML("&nbsp;│&nbsp;")] + run_row, layout=wrapping_row()),
            widgets.HBox([self.lr_slider, self.batch_size_slider, self.optimizer_dropdown, self.weight_decay,
                          self.speed_dropdown], layout=wrapping_row()),
            self.status,
            self.alert,
        ])

    def show_speed(self, speed: float) -> None:
        """Show ``speed`` (steps per second, 0: max) on its dropdown, adding it if it is not a listed pace."""
        if speed not in [value for _, value in self.speed_dropdown.options]:  # fastest first, as listed
            options = [*self.speed_dropdown.options, (_speed_label(speed), speed)]
            self.speed_dropdown.options = sorted(options, key=lambda option: -option[1] if option[1] else -math.inf)
        self.speed_dropdown.value = speed

    def refresh(self, loop: Loop, playing: bool) -> None:
        """Show the loop as it is now: its hyperparameters, and which buttons work (the due stage, or Pause)."""
        self.show_settings(loop)
        due = loop.next_stage
        for stage, label in STAGE_BUTTONS.items():
            button = self.buttons[label]
            with button.hold_sync():
                button.disabled = playing or stage != due
                button.button_style = "primary" if stage == due and not playing else ""
        for label in ("Step", "Epoch", "Reset"):
            self.buttons[label].disabled = playing
        self.buttons["Rewind"].disabled = playing or loop.rewind_depth == 0
        play = self.buttons["Play"]
        with play.hold_sync():
            play.description = "Pause" if playing else "Play"
            play.icon = "pause" if playing else "play"
            play.button_style = "warning" if playing else "success"
        self.optimizer_dropdown.disabled = loop.scheduler is not None

    def show_settings(self, loop: Loop) -> None:
        """Show the loop's hyperparameters on the widgets, without sending them back to the loop."""
        self._local.syncing = True  # the observers must not send these values back to the loop
        try:
            self.lr_slider.value = _clamp(loop.lr, 10.0 ** self.lr_slider.min, 10.0 ** self.lr_slider.max)
            self.batch_size_slider.value = _clamp(loop.batch_size, 1, self.batch_size_slider.max)
            name = loop.optimizer_name
            if name not in self.optimizer_dropdown.options:
                self.optimizer_dropdown.options = (*self.optimizer_dropdown.options, name)
            self.optimizer_dropdown.value = name
            self.weight_decay.value = loop.weight_decay
            self.weight_decay.tooltip = _decay_tooltip(loop)
        finally:
            self._local.syncing = False

    def show_status(self, text: str) -> None:
        """Set the status line (HTML)."""
        self.status.value = text

    def show_alert(self, message: str | None, kind: str = "error", details: str = "") -> None:
        """Show an error (red) or a notice (blue) under the status line; None clears it."""
        if not message:
            self.alert.value = ""
            return
        # JupyterLab's theme colours, light or dark; the light ones where a page has none.
        color, background = (("var(--jp-error-color0, #a40000)", "var(--jp-error-color3, #fde8e8)") if kind == "error"
                             else ("var(--jp-info-color0, #0b5394)", "var(--jp-info-color3, #e8f0fe)"))
        more = (f"<details><summary>details</summary><pre style='white-space:pre-wrap'>{html.escape(details)}</pre>"
                "</details>") if details else ""
        self.alert.value = (f"<div style='color:{color};background:{background};padding:4px 8px;"
                            f"border-radius:4px'>{html.escape(message)}{more}</div>")

    # --- wiring -------------------------------------------------------------------------

    def _button(self, label: str) -> widgets.Button:
        button = widgets.Button(description=label, tooltip=_TOOLTIPS[label], icon=_ICONS.get(label, ""),
                                layout=widgets.Layout(width="auto", flex="0 0 auto"))

        def clicked(b: widgets.Button) -> None:
            if not b.disabled:  # button.click() from code ignores disabled; a browser click cannot happen
                self._on_action(label)

        button.on_click(clicked)
        return button

    def _setting_observer(self, name: str) -> Callable[[dict], None]:
        def observe(change: dict) -> None:
            if not getattr(self._local, "syncing", False):
                value = change["new"]
                self._on_setting(name, round_lr(value) if name == "lr" else value)

        return observe


def status_html(loop: Loop, playing: bool, steps_per_second: float | None, samples_per_second: float | None,
                ui_fraction: float | None, max_ui_fraction: float = 0.05) -> str:
    """The status line: epoch, step, speed, current loss, the stage that is due, the UI's share of a core."""
    done, total = loop.epoch_progress
    if steps_per_second and playing:
        speed = f"{steps_per_second:,.0f} steps/s ({samples_per_second:,.0f} samples/s)"
    else:
        speed = "– steps/s"
    if ui_fraction is None:
        ui = "UI: –"
    else:  # measured while playing; paused, the last Play's (the idle minutes since say nothing)
        ui = f"UI: {100 * ui_fraction:.0f}% of a core" + ("" if playing else " (last Play)")
    parts = [
        "▶ playing" if playing else "■ paused",
        f"epochs done: {loop.state.epoch}",
        f"epoch {loop.state.epoch + 1}: {done}/{total} samples",
        f"step {loop.state.step}",
        speed,
        f"loss {_current_loss(loop)}",
        f"next: {loop.next_stage}()",
        f"<span title='{_UI_TIP.format(100 * max_ui_fraction)}'>{ui}</span>",
    ]
    return "<span style='font-family:monospace'>" + " · ".join(parts) + "</span>"


# No apostrophes: it goes inside a single-quoted HTML attribute.
_UI_TIP = ("How much of one core the dashboard spends drawing plots instead of training. It keeps this low "
           "(under {:.0f}%) by drawing less often when drawing gets slow. Measured while playing; paused, it "
           "shows what the last Play took.")


def _current_loss(loop: Loop) -> str:
    if loop.next_stage in ("backward", "update") and loop.last_loss is not None:
        return f"{float(loop.last_loss.detach()):.4g}"  # this batch's, once loss() has run
    value = loop.last_log.get("loss")
    if value is None and len(loop.history):  # moved in time: the loss of the update that led here
        value = float(loop.history.steps["loss"][-1])
    return f"{value:.4g}" if value is not None and math.isfinite(value) else "–"


def wrapping_row() -> widgets.Layout:
    """A flex row that wraps onto the next line when the screen is narrow, instead of scrolling sideways."""
    return widgets.Layout(flex_flow="row wrap", align_items="center")


def round_lr(value: float) -> float:
    """A learning rate from the slider, rounded to two significant digits (0.30199 -> 0.3)."""
    if not (isinstance(value, float) and math.isfinite(value) and value > 0):
        return value  # the loop refuses it with its own message
    return float(f"{value:.{_LR_DIGITS}g}")


def _speed_label(speed: float) -> str:
    if not speed:
        return "max"
    return f"{speed:g} step/s" if speed == 1 else f"{speed:g} steps/s"


def _decay_tooltip(loop: Loop) -> str:
    """The weight-decay box's tooltip; with several parameter groups, which of them it moves."""
    n = len(loop.optimizer.param_groups)
    moved = getattr(loop, "weight_decay_groups", list(range(n)))
    if n == 1:
        return _SETTING_TIPS["weight_decay"]
    return (f"{_SETTING_TIPS['weight_decay']}. Moves parameter groups {', '.join(map(str, moved))} of {n} (those "
            "built with a weight decay, keeping their ratios); the others stay at 0")


def _optimizer_options(loop: Loop) -> tuple[str, ...]:
    name = loop.optimizer_name
    return OPTIMIZER_NAMES if name in OPTIMIZER_NAMES else (*OPTIMIZER_NAMES, name)


def _clamp(value: float, low: float, high: float) -> Any:
    """A value the widget can hold: the loop may be set from code beyond a slider's range."""
    if isinstance(value, float) and math.isnan(value):
        return low
    return min(max(value, low), high)
