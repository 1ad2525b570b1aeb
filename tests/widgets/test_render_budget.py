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
    budget.spent(0.02)  # 20 ms: at 5% the next may come 380 ms later, not 10 ms
    time.sleep(0.05)
    assert not budget.due()
    assert budget.ui_seconds == pytest.approx(0.02)


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
