"""The learning-rate finder: a range test that leaves the loop exactly as it found it."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import trainlab as tl
from loops import moons_loop
from trainlab.lr_finder import _valley


@pytest.fixture
def make_loop():
    """``make_loop(**options)``: a fresh moons loop (a small MLP, SGD, lr 0.1, validation)."""
    return lambda **options: moons_loop(**{"batch_size": 32, "validation_split": 0.2, "seed": 0, **options})


def _twin_loops():
    """Two identical loops with everything that could leak: dropout, Adam, a shuffling DataLoader, validation."""
    def make():
        X, y = tl.datasets.moons(n=300, noise=0.2, seed=0)
        Xv, yv = tl.datasets.moons(n=100, noise=0.2, seed=1)
        loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True,
                            generator=torch.Generator().manual_seed(0))
        model = tl.models.mlp(2, [16, 16], 2, seed=0, dropout=0.2)
        return tl.Loop(model, loader, "cross_entropy", optimizer="adam", lr=0.01, val_data=(Xv, yv), seed=0)
    return make(), make()


def _same_state(a, b):
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for key in sa["state"]:
        for field, value in sa["state"][key].items():
            assert torch.equal(value, sb["state"][key][field]), (key, field)
    assert a.state == b.state and a.lr == b.lr and a.batch_size == b.batch_size
    assert a.epoch_progress == b.epoch_progress
    assert a.history.changes == b.history.changes
    assert len(a.history.branches) == len(b.history.branches)
    assert a.history.history == b.history.history
    for key, column in a.history.steps.items():
        assert np.array_equal(column, b.history.steps[key], equal_nan=True), key


def test_the_finder_leaves_the_loop_bit_identical_to_a_twin_that_never_ran_it():
    used, twin = _twin_loops()
    for loop in (used, twin):
        for _ in range(7):  # mid-epoch: the data position matters
            loop.step()
        loop.lr = 0.02  # a change already recorded, which must stay the only one
    result = used.find_lr(start=1e-5, end=1.0, steps=30)
    assert len(result.lrs) > 5
    assert tl.Loop.__dict__["find_lr"].__doc__  # a documented method
    _same_state(used, twin)
    assert used.history.changes == [(7, "lr", 0.02)]  # none of the finder's lrs
    for loop in (used, twin):  # the run goes on as if the finder never ran: dropout masks, order, moments
        loop.fit(epochs=2)
    _same_state(used, twin)


def test_the_result_has_growing_lrs_smoothed_losses_and_a_named_suggestion(make_loop):
    loop = make_loop()
    result = loop.find_lr(start=1e-4, end=10, steps=60)
    n = len(result.lrs)
    assert n >= 5 and len(result.losses) == len(result.raw_losses) == n
    assert result.lrs[0] == pytest.approx(1e-4)
    ratios = result.lrs[1:] / result.lrs[:-1]
    assert np.allclose(ratios, (10 / 1e-4) ** (1 / 59))  # exponential growth
    assert result.rule == "valley" and result.suggestion in result.lrs
    assert result.losses[0] == pytest.approx(result.raw_losses[0])  # debiased: the first point is not pulled to 0
    assert "valley" in repr(result)
    steepest = loop.find_lr(start=1e-4, end=10, steps=60, rule="steepest")
    assert steepest.rule == "steepest" and steepest.suggestion in steepest.lrs
    lowest = int(np.argmin(steepest.losses))
    assert steepest.suggestion <= steepest.lrs[lowest]  # before the minimum


def test_it_stops_early_when_the_loss_blows_up(make_loop):
    loop = make_loop(lr=0.1)
    result = loop.find_lr(start=1e-3, end=1e6, steps=100)
    assert len(result.lrs) < 100
    assert "blew up" in result.stop_reason
    assert loop.state.step == 0 and len(loop.history) == 0 and loop.lr == 0.1


def test_valley_picks_two_thirds_down_the_longest_descent():
    losses = np.array([5, 4, 3, 2, 1, 0.5, 2, 8], float)  # descends over 0..5
    # fastai's arithmetic: the run of 6 ends at 5, start = 5 - 6 = -1, a third = 2, so -1 + 2 + int(2 / 2) = 2
    assert _valley(losses) == 2


@pytest.mark.parametrize("kwargs, words", [
    ({"start": 0}, "start is a learning rate"),
    ({"start": -1}, "start is a learning rate"),
    ({"end": math.nan}, "end is a learning rate"),
    ({"start": 1.0, "end": 0.1}, "must grow"),
    ({"steps": 2}, "steps is how many batches"),
    ({"steps": 10.5}, "steps is how many batches"),
    ({"steps": True}, "steps is how many batches"),
    ({"steps": 10**9}, "steps is how many batches to try, a whole number from 5 to 10,000"),
    ({"rule": "magic"}, "unknown rule"),
    ({"smoothing": 1.0}, "smoothing"),
    ({"diverge": 1}, "diverge"),
])
def test_bad_arguments_are_refused_and_change_nothing(make_loop, kwargs, words):
    loop = make_loop()
    loop.step()
    before = {k: v.clone() for k, v in loop.model.state_dict().items()}
    with pytest.raises(ValueError, match=words):
        loop.find_lr(**kwargs)
    assert loop.state.step == 1 and loop.history.changes == []
    assert all(torch.equal(v, loop.model.state_dict()[k]) for k, v in before.items())


def test_mid_batch_is_refused_with_the_stage_that_is_due(make_loop):
    loop = make_loop()
    loop.forward()
    with pytest.raises(tl.StageError, match=r"between batches.*loss\(\).*loop.step\(\)"):
        loop.find_lr()
    assert loop.next_stage == "loss"
    loop.loss()  # the batch goes on


def test_ctrl_c_during_the_finder_puts_the_loop_back(make_loop):
    """A KeyboardInterrupt in the middle of the finder's batches: everything as it was, then the interrupt."""
    loop, twin = make_loop(), make_loop()
    for each in (loop, twin):
        each.step()
    calls = []

    def interrupt_on_the_tenth_forward(module, args):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt

    handle = loop.model.register_forward_pre_hook(interrupt_on_the_tenth_forward)
    with pytest.raises(KeyboardInterrupt, match="put back as it was"):
        loop.find_lr(steps=50)
    handle.remove()
    _same_state(loop, twin)
    assert loop.next_stage == "forward"


def test_no_event_handler_sees_the_finders_batches(make_loop):
    loop = make_loop()
    seen = []
    loop.on("after_update", lambda _: seen.append("update"))
    loop.on("after_change", lambda _: seen.append("change"))
    loop.on("after_restore", lambda _: seen.append("restore"))
    loop.find_lr(steps=20)
    assert seen == []
    loop.step()
    assert seen == ["update"]


def test_on_a_trained_model_one_noisy_batch_is_not_a_blow_up():
    """Trained, the losses are small and one unlucky batch is many times the last: no verdict at lr 1e-7."""
    X, y = tl.datasets.spiral(n=400, noise=0.1, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [32, 32], 2, activation="tanh", seed=0), (X, y), "cross_entropy",
                   lr=0.3, batch_size=16, seed=0)
    loop.fit(epochs=80)
    result = loop.find_lr()
    assert result.lrs[-1] > 0.1, result  # it ran on to where a large lr really blows up
    assert 1e-3 < result.suggestion < 1, result


def test_rewind_reaches_behind_the_finder_and_what_the_loop_held_stays(make_loop):
    loop = make_loop()
    loop.history.full_steps = 8  # the finder's batches would thin the history, were they recorded
    for _ in range(9):
        loop.step()
    at_nine = {name: p.detach().clone() for name, p in loop.model.named_parameters()}
    for _ in range(3):
        loop.step()
    loop.model.hidden1.eval()  # modes as the learner left them
    held = (loop.last_log, loop.last_grad_norms, loop.update_ratios(), len(loop.history), loop.history.thinnings)
    grad = loop.model.hidden1.weight.grad.clone()
    loop.find_lr(steps=40)
    assert (loop.last_log, loop.last_grad_norms, loop.update_ratios(), len(loop.history),
            loop.history.thinnings) == held
    assert torch.equal(loop.model.hidden1.weight.grad, grad)
    assert not loop.model.hidden1.training and loop.model.output.training
    assert loop.rewind(3) == 9  # the keyframes are still there
    for name, p in loop.model.named_parameters():
        assert torch.equal(p, at_nine[name]), name


def test_the_finder_leaves_the_scheduler_alone(make_loop):
    """The finder sets the lr itself: a OneCycleLR of 50 steps survives a 100-batch range test."""
    loop = make_loop(momentum=0.9, scheduler_interval="step",
                     scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=50))
    loop.step()
    before = loop.scheduler.state_dict()
    result = loop.find_lr(steps=100)
    assert len(result.lrs) > 50
    assert loop.scheduler.state_dict() == before
    for _ in range(40):
        loop.step()


def test_numpy_numbers_are_numbers(make_loop):
    result = make_loop().find_lr(start=np.float32(1e-5), end=np.float64(1.0), steps=np.int64(10))
    assert len(result.lrs) == 10 and result.lrs[0] == pytest.approx(1e-5) and isinstance(result.lrs[0], float)
