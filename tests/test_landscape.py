"""Where this step lands: the batch's loss along the coming update, with nothing of the loop touched."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl
from loops import moons_loop
from trainlab.landscape import proposed_update


def _loop(optimizer="sgd", model=None, **options):
    return moons_loop(n=200, model=model, optimizer=optimizer, seed=0, **{"lr": 0.5, **options})


def _after_backward(loop, steps_before=3):
    for _ in range(steps_before):
        loop.step()
    loop.forward()
    loop.loss()
    loop.backward()


def _everything(loop):
    """Weights, buffers, gradients and the optimizer's state, copied."""
    return (copy.deepcopy(loop.model.state_dict()),
            {name: p.grad.clone() for name, p in loop.model.named_parameters()},
            copy.deepcopy(loop.optimizer.state_dict()))


def _assert_same(a, b):
    for first, second in zip(a[:2], b[:2]):
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), key
    assert a[2]["param_groups"] == b[2]["param_groups"]
    for key, per_param in a[2]["state"].items():
        for field, value in per_param.items():
            assert torch.equal(value, b[2]["state"][key][field]), (key, field)


def test_t0_is_the_batch_loss_and_t1_is_the_loss_after_the_real_sgd_update():
    loop = _loop()
    _after_backward(loop)
    view = tl.step_landscape(loop)
    assert view.current == loop.last_loss.item()  # the same computation: exactly equal
    assert len(view.t) == 25 and view.t[0] == 0 and view.t[-1] == 3 and 1.0 in view.t
    assert view.step == loop.state.step + 1 and view.lr == loop.lr
    inputs, targets = loop.batch
    loop.update()
    with torch.no_grad():
        after = loop.loss_fn(loop.model(inputs), targets).item()
    assert view.landing == pytest.approx(after, rel=1e-6)


def test_sgd_moves_along_minus_lr_times_the_gradient():
    loop = _loop(lr=0.5)
    _after_backward(loop)
    landed = proposed_update(loop)
    for name, p in loop.model.named_parameters():
        assert torch.allclose(landed[name], p - loop.lr * p.grad)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_nothing_of_the_loop_is_touched(optimizer):
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    loop = _loop(optimizer, model, momentum=0.9) if optimizer == "sgd" else _loop(optimizer, model)
    _after_backward(loop)
    before = _everything(loop)
    rng = torch.get_rng_state()
    view = tl.step_landscape(loop, t_max=2, points=9)
    _assert_same(before, _everything(loop))  # weights, BatchNorm's running statistics, grads, moments
    assert torch.equal(rng, torch.get_rng_state())
    assert view.current == loop.last_loss.item()  # train-mode BatchNorm: the batch's own statistics
    loop.update()  # and the loop goes on as usual


def test_adam_lands_where_the_real_update_lands():
    loop = _loop("adam")
    _after_backward(loop)
    landed = proposed_update(loop)
    loop.update()
    for name, p in loop.model.named_parameters():
        assert torch.equal(landed[name], p.detach()), name


def test_a_large_lr_overshoots():
    loop = _loop(lr=50.0)
    _after_backward(loop, steps_before=0)
    view = tl.step_landscape(loop)
    assert view.landing > view.current


def test_it_needs_the_gradients_of_an_open_batch():
    loop = _loop()
    with pytest.raises(tl.StageError, match=r"after backward\(\).*forward\(\)"):
        tl.step_landscape(loop)
    loop.forward()
    with pytest.raises(tl.StageError, match=r"loss\(\)"):
        tl.step_landscape(loop)


@pytest.mark.parametrize("kwargs", [{"t_max": 0.5}, {"t_max": float("inf")}, {"points": 1}, {"points": 2.5},
                                    {"points": 10**6}, {"t_max": "3"}])
def test_bad_ranges_are_refused(kwargs):
    loop = _loop()
    _after_backward(loop, 0)
    with pytest.raises(ValueError):
        tl.step_landscape(loop, **kwargs)
    loop.update()


def test_numpy_numbers_are_numbers():
    loop = _loop()
    _after_backward(loop, 0)
    view = tl.step_landscape(loop, t_max=np.float32(2.0), points=np.int64(3))
    assert list(view.t) == [0.0, 1.0, 2.0]
