"""Buttons and hyperparameter widgets drive the loop exactly as the contract says (button.click(), no browser)."""

import math

import pytest
import torch

import trainlab as tl

STAGE_LABELS = {"forward": "Forward", "loss": "Loss", "backward": "Backward", "update": "Update"}


def _enabled_stage_buttons(dash):
    return [label for label in STAGE_LABELS.values() if not dash.buttons[label].disabled]


def test_the_dashboard_is_the_widget_and_exposes_its_parts(dash):
    assert set(dash.buttons) == {"Forward", "Loss", "Backward", "Update", "Step", "Epoch", "Play", "Rewind", "Reset"}
    assert "learning rate" in dash.lr_slider.description
    assert "batch size" in dash.batch_size_slider.description
    assert (dash.lr_slider.min, dash.lr_slider.max) == (-5, 1)  # exponents: 1e-5 ... 10
    assert (dash.batch_size_slider.min, dash.batch_size_slider.max) == (1, dash.loop.n_train)
    assert set(dash.optimizer_dropdown.options) >= {"sgd", "adam", "adamw", "rmsprop"}
    assert "loss" in dash.figures
    assert any(trace.name == "loss" for trace in dash.figures["loss"].data)
    assert dash.buttons["Play"].description == "Play"
    assert not dash.playing and dash.error is None


def test_each_stage_button_runs_the_due_stage_and_only_the_due_one_is_enabled(dash, loop):
    for stage, next_stage in (("forward", "loss"), ("loss", "backward"), ("backward", "update"),
                              ("update", "forward")):
        assert loop.next_stage == stage
        assert _enabled_stage_buttons(dash) == [STAGE_LABELS[stage]]
        assert dash.buttons[STAGE_LABELS[stage]].button_style == "primary"
        dash.buttons[STAGE_LABELS[stage]].click()
        assert loop.next_stage == next_stage, dash.error
    assert loop.state.step == 1 and dash.error is None
    assert _enabled_stage_buttons(dash) == ["Forward"]


def test_clicking_a_disabled_button_does_what_a_browser_does_nothing(dash, loop):
    dash.buttons["Backward"].click()  # not due: disabled
    assert loop.next_stage == "forward" and dash.error is None
    dash.buttons["Rewind"].click()  # nothing to undo yet: disabled
    assert loop.state.step == 0 and dash.buttons["Rewind"].disabled


def test_step_epoch_rewind_and_reset_buttons(dash, loop):
    dash.buttons["Forward"].click()
    dash.buttons["Step"].click()  # finishes the open batch
    assert loop.state.step == 1 and loop.next_stage == "forward"
    dash.buttons["Epoch"].click()
    assert loop.state.epoch == 1 and loop.state.step == 10  # 320 training samples / 32
    assert not dash.buttons["Rewind"].disabled
    dash.buttons["Rewind"].click()
    assert loop.state.step == 9
    dash.buttons["Reset"].click()
    assert loop.state.step == 0 and loop.state.epoch == 0
    assert dash.error is None
    assert "step 0" in dash.status.value
    assert loop.history.branches[-1].name == "before reset"  # the ghost's legend: "earlier run (before reset)"


def test_status_line_shows_progress_loss_due_stage_and_ui_share(dash):
    dash.buttons["Step"].click()
    dash.buttons["Forward"].click()
    dash.buttons["Loss"].click()
    status = dash.status.value
    for part in ("epochs done: 0", "epoch 1: 32/", "step 1", "– steps/s", "loss ", "next: backward()", "UI"):
        assert part in status, status
    assert "drawing plots instead of training" in status  # the UI share explained, as a tooltip


def test_the_lr_slider_sets_the_loop_lr(dash, loop):
    dash.lr_slider.value = 0.3
    assert loop.lr == pytest.approx(0.3)
    assert loop.history.changes[-1][1:] == ("lr", pytest.approx(0.3))


def test_the_batch_size_slider_sets_the_next_batch_not_the_open_one(dash, loop):
    dash.buttons["Forward"].click()
    dash.batch_size_slider.value = 10
    assert loop.batch_size == 10
    assert len(loop.batch[0]) == 32  # never mid-batch
    dash.buttons["Step"].click()
    dash.buttons["Forward"].click()
    assert len(loop.batch[0]) == 10


def test_invalid_values_never_reach_the_loop_and_the_widget_snaps_back(dash, loop):
    changes = len(loop.history.changes)
    dash.lr_slider.value = math.nan  # a slider can hold NaN when set from code
    assert loop.lr == 0.1
    assert dash.lr_slider.value == 0.1
    assert "learning rate" in dash.error and "learning rate" in dash.alert.value
    dash.weight_decay.value = -1.0
    assert loop.weight_decay == 0.0 and dash.weight_decay.value == 0.0
    assert "weight_decay" in dash.error
    dash.batch_size_slider.value = 0  # the slider's own bounds turn this into 1
    assert loop.batch_size == dash.batch_size_slider.value == 1
    assert len(loop.history.changes) == changes + 1  # only the valid batch size was recorded


def test_changes_made_from_code_appear_on_the_widgets(dash, loop):
    loop.lr = 0.02
    loop.batch_size = 17
    loop.weight_decay = 1e-3
    loop.set_optimizer("adam")
    assert dash.lr_slider.value == pytest.approx(0.02)
    assert dash.batch_size_slider.value == 17
    assert dash.weight_decay.value == pytest.approx(1e-3)
    assert dash.optimizer_dropdown.value == "adam"
    # ...and showing them did not record them a second time
    assert [name for _, name, _ in loop.history.changes][-4:] == ["lr", "batch_size", "weight_decay", "optimizer"]


def test_a_value_beyond_the_slider_range_set_from_code_is_not_overridden(dash, loop):
    loop.lr = 50.0  # the slider stops at 10
    assert dash.lr_slider.value == 10.0
    assert loop.lr == 50.0


def test_sliders_follow_a_rewind(dash, loop):
    dash.buttons["Step"].click()
    dash.lr_slider.value = 0.5
    dash.batch_size_slider.value = 8
    dash.buttons["Step"].click()
    dash.buttons["Rewind"].click()  # back to the start of step 2: the old optimizer state, lr included
    assert dash.lr_slider.value == pytest.approx(loop.lr)
    assert dash.batch_size_slider.value == loop.batch_size


def test_the_optimizer_dropdown_switches_the_optimizer(dash, loop):
    dash.optimizer_dropdown.value = "adam"
    assert isinstance(loop.optimizer, torch.optim.Adam)
    dash.buttons["Step"].click()
    assert dash.error is None and loop.state.step == 1


def test_the_optimizer_dropdown_is_disabled_when_a_scheduler_drives_the_optimizer(make_loop, dashboards):
    loop = make_loop(scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5))
    dash = dashboards(loop)
    assert dash.optimizer_dropdown.disabled


def test_a_stage_error_from_code_paths_is_shown_not_raised(dash, loop):
    loop.forward()  # from a cell: the dashboard is not playing, so this is allowed
    dash.redraw()
    assert _enabled_stage_buttons(dash) == ["Loss"]
    dash.buttons["Forward"].disabled = False  # force a click the browser could not make
    dash.buttons["Forward"].click()
    assert "forward() is not due" in dash.error
    assert isinstance(dash.exception, tl.StageError)
    dash.buttons["Loss"].click()  # the next action clears the error
    assert dash.error is None and dash.alert.value == ""


def test_close_stops_listening_to_the_loop(loop):
    dash = tl.Dashboard(loop)
    dash.close()
    loop.lr = 0.02
    assert dash.lr_slider.value == pytest.approx(0.1)
    loop.step()  # the loop works on without it


def test_a_schedulers_lr_change_reaches_the_slider(make_loop, dashboards):
    loop = make_loop(scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    dash = dashboards(loop)
    for _ in range(3):
        dash.buttons["Epoch"].click()
    assert loop.lr == pytest.approx(0.0125)
    assert dash.lr_slider.value == pytest.approx(loop.lr)
    # shown, not sent back: each lr change is recorded once, by the loop
    assert [value for _, name, value in loop.history.changes if name == "lr"] == pytest.approx([0.05, 0.025, 0.0125])


def test_every_redraw_shows_the_loops_lr_even_between_recorded_changes(make_loop, dashboards):
    # A per-step scheduler moves the lr at every update; the loop records a change only once an epoch.
    loop = make_loop(scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
                     scheduler_interval="step")
    dash = dashboards(loop)
    dash.buttons["Step"].click()
    dash.buttons["Step"].click()
    assert loop.lr == pytest.approx(0.025)
    assert dash.lr_slider.value == pytest.approx(loop.lr)
    dash.play()
    dash.wait(steps=3, timeout=10)
    dash.pause()
    assert dash.lr_slider.value == pytest.approx(max(loop.lr, 10.0 ** dash.lr_slider.min))  # the slider stops at 1e-5
