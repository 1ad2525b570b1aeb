"""What a workshop room needs beyond the lesson: exact notebook values on the lr slider, a notebook
pause that leaves Forward due, keyboard shortcuts, a heartbeat for a dead kernel."""

import math
import time

import numpy as np
import pytest

from trainlab.widgets.controls import round_lr
from trainlab.widgets.heartbeat import Heartbeat
from trainlab.widgets.shortcuts import CONTAINER_CLASS, KEYS


@pytest.mark.parametrize("wanted", [0.3, 0.1, 0.03, 1.0, 3.0, 0.05, 0.01, 10.0, 1e-5])
def test_the_notebooks_learning_rates_are_on_the_sliders_steps(dash, loop, wanted):
    slider = dash.lr_slider
    position = round((math.log10(wanted) - slider.min) / slider.step)  # the nearest step
    dash.lr_slider.value = slider.base ** (slider.min + position * slider.step)  # what a drag gives
    assert loop.lr == wanted, f"a drag to {wanted} gave lr={loop.lr!r}"


def test_round_lr_keeps_two_significant_digits_and_passes_bad_values_on():
    assert round_lr(10 ** -0.52) == 0.3
    assert round_lr(0.0123) == 0.012
    assert round_lr(float("nan")) != round_lr(float("nan"))  # NaN goes on, for the loop to refuse


def test_a_pause_asked_to_finish_the_batch_leaves_forward_due(dash, loop):
    for _ in range(5):  # each time, whatever stage the thread was in when asked
        dash.play()
        dash.wait(steps=3, timeout=10)
        dash.pause(finish_batch=True)
        assert not dash.playing
        assert loop.next_stage == "forward", loop.next_stage
        assert dash.error is None


def test_the_keyboard_shortcuts_press_play_pause_and_step(dash, loop):
    assert KEYS == {"p": "Play", "s": "Step"} and CONTAINER_CLASS in dash._dom_classes
    assert "P plays or pauses" in dash.buttons["Play"].tooltip and "S" in dash.buttons["Step"].tooltip
    shortcuts = dash._shortcuts
    shortcuts._received(shortcuts, {"press": "Step"}, [])  # what the page sends for the key S
    assert loop.state.step == 1
    shortcuts._received(shortcuts, {"press": "Play"}, [])
    assert dash.playing
    shortcuts._received(shortcuts, {"press": "Step"}, [])  # Step is disabled while playing: nothing happens
    shortcuts._received(shortcuts, {"press": "Play"}, [])  # P again: Pause
    assert not dash.playing and dash.error is None
    steps = loop.state.step
    shortcuts._received(shortcuts, {"press": "Reset"}, [])  # not a shortcut: the page cannot press it
    shortcuts._received(shortcuts, "nonsense", [])
    assert loop.state.step == steps


def test_the_heartbeat_beats_every_second_until_closed():
    heart = Heartbeat(interval=0.05)
    try:
        time.sleep(0.5)
        assert heart.beat >= 3
        assert "not responding" in heart.message and "again" in heart.message
    finally:
        heart.close()
    stopped = heart.beat
    time.sleep(0.3)
    assert heart.beat == stopped


def test_the_heartbeat_stops_when_no_page_asks_so_an_abandoned_kernel_can_go_idle():
    heart = Heartbeat(interval=0.05, linger=0.3)
    try:
        time.sleep(0.6)  # no page pinged since it was made: it beat for a while, then stopped
        stopped = heart.beat
        assert stopped >= 3 and not heart.wanted
        time.sleep(0.3)
        assert heart.beat == stopped
        heart._received(heart, {"ping": 1}, [])  # a page showed it again
        time.sleep(0.2)
        assert heart.beat > stopped
    finally:
        heart.close()


def test_the_dashboard_closes_its_heartbeat(dash):
    heart = dash._heartbeat
    dash.close()
    stopped = heart.beat
    time.sleep(1.5)
    assert heart.beat == stopped


def test_the_plots_follow_a_history_that_thinned_its_old_steps(make_loop, dashboards):
    loop = make_loop()  # 320 training samples, batches of 32: an epoch ends every 10 steps
    loop.history.full_steps = 50
    dash = dashboards(loop)
    for _ in range(400):
        loop.step()
    dash.redraw()
    assert loop.history.thinnings > 0 and len(loop.history) < 400
    figure = dash.figures["loss"]
    smoothed, per_epoch = figure.data[1], figure.data[2]
    assert smoothed.x[-1] == 400 and per_epoch.x[-1] == 400  # the x axis counts steps, not rows held
    ends = np.arange(10, 401, 10)  # where each epoch ended; in the thinned part, its last row held
    assert np.all(np.abs(np.asarray(per_epoch.x) - ends) < loop.history._line.stride)
    assert dash.figures["grad_norm"].data[0].x[-1] == 400
