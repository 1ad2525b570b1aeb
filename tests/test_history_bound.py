"""A long run's history stays bounded: the latest steps whole, older ones thinned; time travel stays exact."""

import numpy as np
import pytest

import trainlab as tl

FULL = 64  # steps kept whole in these tests (100,000 by default)


def thinning_loop(full_steps=FULL):
    X, y = tl.datasets.moons(n=64, noise=0.2, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=16, seed=0)
    loop.history.full_steps = full_steps
    return loop


def run(loop, steps):
    for _ in range(steps):
        loop.step()


def test_the_rows_held_stay_bounded_however_long_it_runs():
    loop = thinning_loop()
    lengths, capacities = [], []
    for _ in range(20):
        run(loop, 5 * FULL)
        lengths.append(len(loop.history))
        capacities.append(sum(column.nbytes for column in loop.history._line.scalars.values()))
    assert max(lengths) <= 2 * FULL and loop.history.thinnings > 10
    assert capacities[-1] == capacities[len(capacities) // 2]  # the arrays stopped growing
    steps = loop.history.steps["step"]
    assert steps[-1] == loop.state.step == 100 * FULL
    assert np.all(np.diff(steps) > 0)
    assert steps[-FULL:].tolist() == list(range(loop.state.step - FULL + 1, loop.state.step + 1))  # the latest whole
    stride = loop.history._line.stride  # the older part is every stride-th step: evenly spread, never sparser
    assert np.diff(steps).max() <= stride <= 4 * loop.state.step // FULL
    assert len(loop.history.epoch) == loop.state.epoch == 100 * FULL // 4  # per-epoch lists always whole


def test_the_latest_steps_equal_an_unthinned_run():
    thinned, whole = thinning_loop(), thinning_loop(full_steps=10**6)
    run(thinned, 6 * FULL)
    run(whole, 6 * FULL)
    rows = thinned.history.steps["step"] - 1  # a thinned row is the whole run's row of the same step
    for name in ("loss", "lr", "grad_norm", "epoch"):
        np.testing.assert_array_equal(thinned.history.steps[name], whole.history.steps[name][rows])
    assert thinned.history.history == whole.history.history


def test_rewind_and_restore_after_thinning_are_exact():
    loop = thinning_loop()
    run(loop, 2 * FULL)
    early = loop.snapshot("early")  # its step will be in the thinned part
    run(loop, 6 * FULL)
    assert loop.history.thinnings > 0
    replay_from = loop.state.step - 5
    losses = loop.history.steps["loss"][-5:].copy()
    loop.rewind(5)
    assert loop.state.step == replay_from and loop.history.steps["step"][-1] == replay_from
    run(loop, 5)
    np.testing.assert_array_equal(loop.history.steps["loss"][-5:], losses)  # the same numbers again

    after_early = []
    loop.restore(early)
    assert loop.state.step == early.step and loop.history.steps["step"][-1] <= early.step
    run(loop, 3)
    after_early.append(loop.history.steps["loss"][-3:].copy())
    loop.restore(early)
    run(loop, 3)
    np.testing.assert_array_equal(loop.history.steps["loss"][-3:], after_early[0])
    branch = loop.history.branches[-1]  # the run left behind, with its step numbers
    assert branch.start_step == early.step and branch.steps["step"][0] == early.step + 1


def test_a_thinned_history_survives_a_checkpoint(tmp_path):
    loop = thinning_loop()
    run(loop, 4 * FULL)
    loop.save(tmp_path / "run.pt")
    steps = loop.history.steps["step"].copy()
    run(loop, 10)
    loop.load(tmp_path / "run.pt")
    np.testing.assert_array_equal(loop.history.steps["step"], steps)


def test_full_steps_must_be_a_whole_number():
    with pytest.raises(ValueError, match="full_steps"):
        tl.History(["w"], ["loss"], full_steps=1.5)


@pytest.mark.parametrize("bad", [1.5, 1, "100", True])
def test_setting_full_steps_on_a_loops_history_is_checked_at_once(bad):
    """Not when the next step is recorded, which is after its update: the weights would have moved."""
    loop = thinning_loop()
    run(loop, 3)
    with pytest.raises(ValueError, match="full_steps is a whole number of steps, at least 2"):
        loop.history.full_steps = bad
    assert loop.history.full_steps == FULL
    run(loop, 1)
    assert loop.state.step == 4
