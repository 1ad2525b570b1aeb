"""Play/Pause: the loop trains in a background thread while the controls stay live."""

import re
import threading
import time

import pytest

import trainlab as tl


def _loss_points(dash) -> int:
    trace = next(t for t in dash.figures["loss"].data if t.name == "loss")
    return len(trace.y) if trace.y is not None else 0


def test_play_trains_in_the_background_and_the_loss_plot_grows(dash, loop, until):
    steps, points = loop.state.step, _loss_points(dash)
    dash.play()
    assert dash.playing
    assert dash.buttons["Play"].description == "Pause"
    assert until(lambda: loop.state.step > steps + 5 and _loss_points(dash) > points, timeout=1.0)
    dash.pause()
    assert not dash.playing
    assert dash.buttons["Play"].description == "Play"


def test_pause_returns_once_the_thread_has_stopped_at_a_stage_boundary(dash, loop, within):
    dash.play()
    dash.wait(steps=20, timeout=5)
    within(5, dash.pause)
    step, stage = loop.state.step, loop.next_stage
    time.sleep(0.2)
    assert (loop.state.step, loop.next_stage) == (step, stage)
    loop.forward() if stage == "forward" else loop.step()  # the loop is ours again


def test_stage_calls_from_another_thread_are_refused_while_playing(dash, loop):
    dash.play()
    try:
        for call in (loop.forward, loop.step, loop.reset, lambda: loop.fit(1)):
            with pytest.raises(tl.LoopBusyError, match="[Pp]ause"):
                call()
    finally:
        dash.pause()
    loop.step()


def test_while_playing_only_pause_is_enabled_and_clicks_are_refused_politely(dash, loop):
    dash.play()
    try:
        disabled = {label for label, button in dash.buttons.items() if button.disabled}
        assert disabled == {"Forward", "Loss", "Backward", "Update", "Step", "Epoch", "Rewind", "Reset"}
        dash.buttons["Step"].disabled = False  # a click the browser could not make
        dash.buttons["Step"].click()
        assert "Pause" in dash.alert.value and dash.error is None
    finally:
        dash.buttons["Play"].click()  # the same button pauses
    assert not dash.playing
    assert not dash.buttons["Step"].disabled


def test_wait_blocks_for_n_more_steps_and_returns(dash, loop):
    dash.play()
    done = dash.wait(steps=30, timeout=10)
    dash.pause()
    assert done >= 30
    assert dash.wait(steps=10, timeout=1) == 0  # not playing: returns at once


def test_sliders_apply_while_playing(dash, loop, until):
    dash.play()
    try:
        dash.lr_slider.value = 0.05
        dash.batch_size_slider.value = 8
        assert loop.lr == pytest.approx(0.05)
        assert until(lambda: loop.history.steps["batch_size"][-1] == 8 if len(loop.history) else False)
        assert loop.history.steps["lr"][-1] == pytest.approx(0.05)
    finally:
        dash.pause()


def test_switching_the_optimizer_while_playing_lands_at_a_batch_boundary(dash, loop, until):
    dash.play()
    try:
        dash.optimizer_dropdown.value = "adam"
        assert until(lambda: loop.optimizer_name == "adam")
        steps = len(loop.history)
        assert until(lambda: len(loop.history) > steps + 5)
    finally:
        dash.pause()
    assert dash.error is None
    loop.rewind(3)  # the snapshots taken around the switch are consistent
    loop.step()


def test_hammering_the_sliders_while_playing_neither_crashes_nor_deadlocks(dash, loop, within):
    dash.play()
    try:
        lrs = [0.01, 0.03, 0.1, 0.3]
        sizes = [8, 16, 32, 64, 5]
        for i in range(1000):
            dash.lr_slider.value = lrs[i % len(lrs)]
            dash.batch_size_slider.value = sizes[i % len(sizes)]
        assert dash.playing and dash.error is None
    finally:
        within(5, dash.pause)
    assert loop.lr == pytest.approx(dash.lr_slider.value) == pytest.approx(0.3)
    assert loop.batch_size == dash.batch_size_slider.value == 5
    within(5, loop.step)  # finish whatever batch Pause left open
    done, total = loop.epoch_progress
    loop.forward()
    assert len(loop.batch[0]) == min(5, total - done)  # the last size set is the one in force
    # the plots marked the changes without drawing a thousand lines
    assert 0 < len(dash.figures["loss"].layout.shapes) <= 20


def test_a_callback_that_stops_the_loop_pauses_the_dashboard_and_says_why(dash, loop):
    loop.on("after_update", lambda lp: lp.stop("enough for today") if lp.state.step == 25 else None)
    dash.play()
    dash.wait(timeout=10)
    assert not dash.playing
    assert loop.state.step == 25
    assert "enough for today" in dash.alert.value
    assert dash.error is None
    dash.play()  # the old stop request does not end the next run at once
    dash.wait(steps=10, timeout=10)
    dash.pause()
    assert loop.state.step >= 35


def test_callbacks_given_to_the_dashboard_are_attached_while_it_lives(loop, dashboards):
    dash = dashboards(loop, callbacks=[tl.StopAtTarget("accuracy", 0.0)])
    dash.play()
    dash.wait(timeout=10)
    assert loop.state.epoch == 1 and not dash.playing
    assert "target reached" in dash.alert.value


def test_the_ui_share_and_the_speed_are_measured_and_shown(dash, loop, until):
    assert "UI: –" in dash.status.value  # nothing measured before the first Play
    dash.play()
    dash.wait(steps=200, timeout=10)
    assert until(lambda: re.search(r"[\d,]+ steps/s \([\d,]+ samples/s\)", dash.status.value), timeout=3)
    assert re.search(r"UI: \d+% of a core ·|UI: \d+% of a core<", dash.status.value)
    dash.pause()
    # Paused: no rate rather than a stale one, and the last Play's UI share, said to be that.
    assert "– steps/s" in dash.status.value
    assert re.search(r"UI: \d+% of a core \(last Play\)", dash.status.value)


def test_the_speed_shown_is_smoothed_over_a_second(loop, dashboards, until):
    dash = dashboards(loop, speed=100)  # a steady pace: the readout must sit near it, frame after frame
    dash.play()
    try:
        dash.wait(steps=150, timeout=10)
        readings = []
        for _ in range(10):
            time.sleep(0.15)
            readings.append(dash._rate.steps)
    finally:
        dash.pause()
    assert all(60 < r < 130 for r in readings), readings


def test_a_new_dashboard_pauses_the_one_playing_so_none_trains_out_of_reach(make_loop, dashboards):
    """Re-running a notebook cell replaces its dashboard; the old one's thread must not train on."""
    old_loop = make_loop()
    old = dashboards(old_loop)
    old.play()
    old.wait(steps=20, timeout=10)
    dashboards(make_loop())  # the re-run cell's new dashboard
    assert not old.playing
    steps = old_loop.state.step
    time.sleep(0.2)
    assert old_loop.state.step == steps
    old_loop.step()  # the old loop is free again


@pytest.mark.parametrize("options", [dict(fps=0), dict(max_points=2), dict(smoothing=1.5), dict(watch_timeout=0),
                                     dict(callbacks=[object()]), dict(plots=("losses",))])
def test_a_new_dashboard_with_bad_arguments_leaves_the_playing_one_alone(make_loop, dashboards, within, options):
    old_loop = make_loop()
    old = dashboards(old_loop)
    old.play()
    old.wait(steps=5, timeout=10)
    handlers = {event: len(fns) for event, fns in old_loop.events._handlers.items()}
    with pytest.raises(ValueError):
        tl.Dashboard(old_loop, **options)
    assert old.playing
    within(5, old.pause)
    assert {event: len(fns) for event, fns in old_loop.events._handlers.items()} == handlers


def test_speed_paces_play_and_pause_still_stops_at_once(make_loop, dashboards):
    loop = make_loop()
    dash = dashboards(loop, speed=10)
    assert dash.speed == 10 and dash.controls.speed_dropdown.value == 10
    dash.play()
    time.sleep(1.0)
    started = time.perf_counter()
    dash.pause()
    assert time.perf_counter() - started < 0.5  # Pause does not wait out the pace
    assert 3 <= loop.state.step <= 15  # ~10 in a second, not the thousands of full speed
    dash.controls.speed_dropdown.value = 0  # "max" on the menu
    assert dash.speed is None
    dash.play()
    dash.wait(steps=200, timeout=10)
    dash.pause()
    assert loop.state.step > 200


def test_a_pace_can_be_set_from_code_and_bad_paces_are_refused(make_loop, dashboards):
    dash = dashboards(make_loop())
    dash.speed = 2.5  # not on the menu: added to it
    assert dash.controls.speed_dropdown.value == 2.5 and dash.speed == 2.5
    for bad in (0, -1, float("nan"), float("inf"), True, "fast"):
        with pytest.raises(ValueError, match="steps per second"):
            dash.speed = bad
    assert dash.speed == 2.5
    dash.speed = None
    assert dash.speed is None and dash.controls.speed_dropdown.value == 0


def test_a_new_pace_ends_a_slow_wait_at_once(make_loop, dashboards):
    loop = make_loop()
    dash = dashboards(loop, speed=0.2)  # a step every 5 s
    dash.play()
    dash.wait(steps=1, timeout=10)
    dash.speed = None  # full speed: the wait under way must not run its 5 s out
    assert dash.wait(steps=50, timeout=2) >= 50
    dash.pause()


def test_a_dashboard_whose_callback_is_refused_leaves_no_handler_on_the_loop(make_loop):
    loop = make_loop(validation_split=0.0)
    before = {name: len(handlers) for name, handlers in loop.events._handlers.items()}
    with pytest.raises(ValueError):
        tl.Dashboard(loop, callbacks=[tl.StopAtTarget("accuracy", 0.99), tl.EarlyStopping(monitor="val_loss")])
    assert {name: len(handlers) for name, handlers in loop.events._handlers.items()} == before


def test_dashboards_built_from_two_runner_threads_at_once_do_not_wait_for_each_other(make_loop, dashboards):
    """A handler may build a dashboard on a runner thread; two doing so must not deadlock."""
    loops = [make_loop(), make_loop()]
    built, both_inside = [], threading.Barrier(2, timeout=10)

    def build_once(lp):
        if not built.count(id(lp)):
            built.append(id(lp))
            both_inside.wait()  # both runner threads are here together
            dashboards(make_loop())

    dashes = [dashboards(lp) for lp in loops]
    for lp in loops:
        lp.on("after_update", build_once)
    for dash in dashes:
        dash.play()
    for dash in dashes:
        dash.wait(timeout=20)  # both stop: paused by the other's new dashboard
        assert not dash.playing


def test_switching_the_optimizer_as_playing_ends_waits_for_the_last_frame(make_loop, dashboards):
    loop = make_loop()
    dash = dashboards(loop)
    slow_last_frame = threading.Event()
    original = dash._on_stop

    def on_stop():  # the runner still owns the loop while it draws its last frame
        slow_last_frame.set()
        time.sleep(0.3)
        original()

    dash._runner.on_stop = on_stop
    loop.on("after_update", lambda lp: lp.stop("target reached"))  # play ends by itself, as with a callback
    dash.play()
    assert slow_last_frame.wait(10)
    dash.optimizer_dropdown.value = "adam"  # from the kernel, while the last frame is drawn
    dash.wait(timeout=10)
    assert loop.optimizer_name == "adam" and dash.error is None


def test_a_pace_catches_up_after_a_late_step_but_not_after_a_long_stall(loop):
    from trainlab.widgets.runner import Runner

    runner = Runner(loop, on_batch=lambda: None, on_stop=lambda: None)
    runner.steps_per_second = 300
    now = time.monotonic()
    late = now - 0.01  # the last batch started 10 ms ago: 3.3 ms late for 300 steps/s
    assert runner._keep_pace(late) == late + 1 / 300  # the schedule is kept: no time lost
    stalled = now - 5.0  # five seconds behind: start again from now, no burst of catch-up steps
    assert runner._keep_pace(stalled) >= now
