"""Live learning rate, batch size, weight decay and optimizer: checked, applied when due, recorded."""

import math

import numpy as np
import pytest
import torch

import trainlab as tl
from loops import moons_loop

BAD_VALUES = [0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, "0.1", None, [0.1], 1 + 2j]


def make_loop(**options):
    return moons_loop(n=100, hidden=[8], noise=0.1, batch_size=10, **options)


def test_lr_reaches_every_parameter_group_for_the_next_update():
    loop = make_loop()
    loop.forward(); loop.loss(); loop.backward()
    before = [p.detach().clone() for p in loop.model.parameters()]
    grads = [p.grad.clone() for p in loop.model.parameters()]
    loop.lr = 0.5  # set mid-batch: applies to this batch's update, which has not happened yet
    loop.update()
    for b, g, p in zip(before, grads, loop.model.parameters()):
        assert torch.allclose(p, b - 0.5 * g, atol=1e-7)
    assert all(group["lr"] == 0.5 for group in loop.optimizer.param_groups)
    assert loop.history.steps["lr"][-1] == 0.5


def test_batch_size_applies_from_the_next_batch_never_mid_batch():
    loop = make_loop()
    loop.forward()
    loop.batch_size = 25
    assert len(loop.batch[0]) == 10
    loop.step()
    loop.forward()
    assert len(loop.batch[0]) == 25
    assert np.array_equal(loop.history.steps["batch_size"], [10])


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_bad_values_are_refused_and_change_nothing(value):
    loop = make_loop()
    loop.step()
    for name in ("lr", "batch_size"):
        before = getattr(loop, name)
        with pytest.raises(ValueError, match=name.replace("_", " ").replace("lr", "learning rate")):
            setattr(loop, name, value)
        assert getattr(loop, name) == before
    with pytest.raises(ValueError):
        loop.weight_decay = value if value not in (0, False) else -1
    assert loop.history.changes == []


def test_fractional_batch_size_and_numpy_numbers():
    loop = make_loop()
    with pytest.raises(ValueError, match="whole number"):
        loop.batch_size = 2.5
    loop.batch_size = np.int64(12)
    loop.lr = np.float32(0.25)
    assert loop.batch_size == 12 and isinstance(loop.batch_size, int)
    assert loop.lr == pytest.approx(0.25)


def test_every_change_is_recorded_with_the_step_it_was_made_at():
    loop = make_loop()
    loop.lr = 0.2
    loop.step(); loop.step()
    loop.batch_size = 5
    loop.weight_decay = 1e-3
    loop.step()
    loop.set_optimizer("adam")
    assert loop.history.changes == [(0, "lr", 0.2), (2, "batch_size", 5), (2, "weight_decay", 1e-3),
                                    (3, "optimizer", "adam")]
    assert isinstance(loop.optimizer, torch.optim.Adam)
    assert loop.lr == 0.2 and loop.weight_decay == 1e-3  # the new optimizer keeps the knobs


def test_options_and_names_at_build_time():
    loop = make_loop(optimizer="sgd", momentum=0.9, weight_decay=1e-4)
    group = loop.optimizer.param_groups[0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4
    plain = make_loop()
    assert plain.optimizer.param_groups[0]["momentum"] == 0  # PyTorch's own default: no momentum
    for name, cls in [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)]:
        assert isinstance(make_loop(optimizer=name).optimizer, cls)


def test_defaults_match_the_contract():
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [4], 2), (X, y), "cross_entropy")
    assert loop.lr == 0.01 and loop.batch_size == 32 and loop.seed == 0
    assert loop.optimizer_name == "sgd" and not loop.has_validation and loop.classification


def test_an_optimizer_object_keeps_its_own_lr_unless_one_is_given():
    X, y = tl.datasets.moons(n=100, seed=0)
    model = tl.models.mlp(2, [4], 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.5)
    loop = tl.Loop(model, (X, y), "cross_entropy", optimizer=optimizer)
    assert loop.optimizer is optimizer and loop.lr == 0.3


def test_scheduler_steps_per_epoch_or_per_update():
    X, y = tl.datasets.moons(n=100, seed=0)
    per_epoch = tl.Loop(tl.models.mlp(2, [4], 2), (X, y), "cross_entropy", lr=0.1, batch_size=50,
                        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    per_epoch.fit(epochs=2)
    assert per_epoch.lr == pytest.approx(0.025)
    assert per_epoch.history.steps["lr"].tolist() == pytest.approx([0.1, 0.1, 0.05, 0.05])
    per_step = tl.Loop(tl.models.mlp(2, [4], 2), (X, y), "cross_entropy", lr=0.1, batch_size=50,
                       scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
                       scheduler_interval="step")
    per_step.fit(epochs=1)
    assert per_step.lr == pytest.approx(0.025)
