"""The render budget limits redraws to a few per second and keeps them a small share of the time."""

import time

import pytest

from trainlab.widgets.budget import RenderBudget


def test_a_redraw_is_due_at_once_then_not_before_the_frame_interval():
    budget = RenderBudget(fps=10)
    assert budget.due()
    with budget.spending():
        pass
    assert not budget.due()
    time.sleep(0.12)
    assert budget.due()
    assert budget.redraws == 1


def test_a_slow_redraw_pushes_the_next_one_out_to_stay_under_the_share():
    budget = RenderBudget(fps=100, max_ui_fraction=0.05)
    budget.spent(0.02)  # 20 ms: at 5% the next may start 400 ms after this one did, not 10 ms
    time.sleep(0.05)
    assert not budget.due()
    assert budget.ui_seconds == pytest.approx(0.02)


def test_redraws_are_counted_in_cpu_time_not_wall_time():
    """A frame descheduled halfway (a shared machine) is not charged for the time it waited."""
    budget = RenderBudget(fps=10, max_ui_fraction=0.05)
    with budget.spending():
        time.sleep(0.1)  # waiting, as a descheduled thread waits: no CPU
    assert budget.ui_seconds < 0.01
    time.sleep(0.01)
    assert budget.due()  # start to start: the 100 ms frame interval began when the frame did


def test_a_frame_may_come_a_little_early_so_it_does_not_miss_its_turn():
    budget = RenderBudget(fps=10, max_ui_fraction=0.5)
    budget.spent(0.0, started=time.perf_counter() - 0.098)  # due in 2 ms
    assert budget.due()
    budget.spent(0.0, started=time.perf_counter() - 0.05)  # due in 50 ms
    assert not budget.due()


def test_ui_fraction_is_the_share_of_time_spent_redrawing():
    budget = RenderBudget(fps=4)
    time.sleep(0.05)
    budget.spent(0.05)
    assert 0.3 < budget.ui_fraction() <= 1.0
    budget.restart()
    assert budget.ui_fraction() == 0.0 and budget.due()


@pytest.mark.parametrize("fps, share", [(0, 0.05), (-1, 0.05), (4, 0), (4, 1.5)])
def test_bad_settings_are_refused(fps, share):
    with pytest.raises(ValueError):
        RenderBudget(fps, share)


def test_a_dashboards_budgets_split_its_max_ui_fraction(dashboards, loop):
    """Each budget keeps to its own share, so their shares must add up to the dashboard's, not exceed it."""
    for plots, budgets in ((None, 2), (("loss", "step_landscape"), 3)):
        dash = dashboards(loop, plots=plots, max_ui_fraction=0.08)
        shares = [budget.max_ui_fraction for budget in dash._budgets()]
        assert len(shares) == budgets and sum(shares) == pytest.approx(0.08)
        dash.close()


def _busy(seconds: float) -> None:
    """Use this thread's CPU for ``seconds`` (the budget counts CPU time: a sleep costs nothing)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_slow_redraws_all_together_stay_under_max_ui_fraction(dashboards, loop, monkeypatch):
    dash = dashboards(loop, fps=50, boundary_fps=50, max_ui_fraction=0.1)
    for plot in dash.plots.values():  # every figure takes 20 ms of CPU to draw, the boundary too
        redraw = plot.redraw
        monkeypatch.setattr(plot, "redraw", lambda loop, redraw=redraw: _busy(0.02) or redraw(loop))
    dash.play()
    time.sleep(3)
    share = sum(budget.ui_fraction() for budget in dash._budgets())
    dash.pause()
    assert 0.05 < share <= 0.1 + 0.005, share


@pytest.mark.parametrize("share", [0, 1, 1.5, -0.1])
def test_a_dashboard_refuses_a_share_outside_0_and_1_and_says_what_it_is(dashboards, loop, share):
    with pytest.raises(ValueError, match="share of time redraws may take"):
        dashboards(loop, max_ui_fraction=share)


def test_the_first_redraws_after_restart_are_paid_back_before_the_next():
    budget = RenderBudget(fps=100, max_ui_fraction=0.05)
    budget.spent(0.02)  # the first redraw, due at once: 100% of the time so far
    budget._next = 0.0  # past the pause a slow redraw sets: only the share since restart() holds it back now
    assert not budget.due()
    time.sleep(0.9)  # (0.02 + 0.02) / (0.9 + 0.02) < 5%
    assert budget.due()
