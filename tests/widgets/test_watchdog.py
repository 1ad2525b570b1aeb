"""A dashboard nobody watches pauses itself: a closed tab must not train forever."""

import pytest

from trainlab.widgets.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_silence_longer_than_the_timeout_means_abandoned():
    clock = Clock()
    watchdog = Watchdog(timeout=10, clock=clock)
    watchdog.start()
    heard = clock.now
    clock.now += 9
    assert not watchdog.abandoned(heard)
    clock.now += 2
    assert watchdog.abandoned(heard)
    assert not watchdog.abandoned(clock.now - 1)  # a view spoke a second ago


def test_a_dashboard_no_view_ever_showed_is_never_abandoned():
    clock = Clock()
    watchdog = Watchdog(timeout=10, clock=clock)
    clock.now += 1000
    assert not watchdog.abandoned(None)


def test_silence_before_play_and_while_a_cell_runs_does_not_count():
    clock = Clock()
    watchdog = Watchdog(timeout=10, clock=clock)
    heard = clock.now
    clock.now += 60  # paused for a minute: nothing to draw, nothing heard
    watchdog.start()
    assert not watchdog.abandoned(heard)
    watchdog.cell_running(True)  # a cell runs: the kernel reads no messages from the page
    clock.now += 60
    assert not watchdog.abandoned(heard)
    watchdog.cell_running(False)
    clock.now += 5
    assert not watchdog.abandoned(heard)
    clock.now += 6
    assert watchdog.abandoned(heard)


def test_a_bad_timeout_is_refused():
    with pytest.raises(ValueError, match="timeout"):
        Watchdog(timeout=0)


def test_a_dashboard_whose_page_went_quiet_pauses_and_says_why(loop, dashboards, page, until):
    dash = dashboards(loop, watch_timeout=0.5)
    shown = [page(figure) for figure in dash.figures.values()]
    dash.play()
    for _ in range(5):  # the page draws for a while...
        for one in shown:
            one.draw()
        dash.wait(steps=5, timeout=5)
    assert dash.playing
    assert until(lambda: not dash.playing, timeout=5)  # ...then the tab is closed
    assert "no page has shown the dashboard" in dash.alert.value
    assert "paused" in dash.status.value


def test_a_dashboard_no_page_ever_showed_plays_on(loop, dashboards):
    dash = dashboards(loop, watch_timeout=0.2)
    dash.play()
    dash.wait(timeout=1.0)
    assert dash.playing
    dash.pause()


def test_the_pages_are_asked_to_say_alive_only_while_playing(loop, dashboards):
    """A paused dashboard's page keeps quiet: every message would keep its kernel from looking idle."""
    dash = dashboards(loop)
    assert not any(figure.watched for figure in dash.figures.values())
    dash.play()
    assert all(figure.watched for figure in dash.figures.values())
    dash.wait(steps=5, timeout=5)
    dash.pause()
    assert not any(figure.watched for figure in dash.figures.values())
    loop.on("after_update", lambda loop: loop.stop("enough"))  # playing ends by itself: the pages keep quiet again
    dash.play()
    dash.wait(timeout=5)
    assert not dash.playing and not any(figure.watched for figure in dash.figures.values())
