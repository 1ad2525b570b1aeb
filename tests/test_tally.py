"""Accuracy counted in bulk while fit runs (issue 27, tally.py): the same numbers as counting each step.

Every test trains two loops alike: one as ``fit`` runs it when nobody reads between steps (the
right predictions kept and counted together), and one with an observer on ``after_update``
(each step counted as it ends, the way every step was counted before). They must agree exactly:
the history's rows, the epochs, the logs, the epoch's running sums and the weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl
from trainlab import tally


def blobs(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three noisy classes in 4-d: accuracy moves from step to step."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=generator)
    X = torch.randn(n, 4, generator=generator) + y[:, None].float()
    return X, y


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def pair(model=classifier, data=None, **options) -> tuple[tl.Loop, tl.Loop]:
    """(counted in bulk, counted step by step): two loops alike, the second watched by an observer."""
    data = data if data is not None else blobs()
    options = {"lr": 0.1, "batch_size": 16, "validation_split": 0.2, **options}
    bulk = tl.Loop(model(), data, "cross_entropy", **options)
    each = tl.Loop(model(), data, "cross_entropy", **options)
    each.on("after_update", lambda loop: None, observer=True)
    return bulk, each


@pytest.fixture
def counts(monkeypatch) -> list[int]:
    """How many steps each bulk count took (so a test knows the bulk path really ran)."""
    seen: list[int] = []
    count = tally.Tally.count

    def counting(self):
        seen.append(len(self.labels))
        return count(self)

    monkeypatch.setattr(tally.Tally, "count", counting)
    return seen


def assert_same_run(a: tl.Loop, b: tl.Loop) -> None:
    """The same history, logs, counters (with the epoch's sums) and weights."""
    steps_a, steps_b = a.history.steps, b.history.steps
    assert steps_a.keys() == steps_b.keys()
    for key in steps_a:
        np.testing.assert_array_equal(steps_a[key], steps_b[key], err_msg=key)
    assert a.history.history == b.history.history
    assert a.last_log == b.last_log and a.last_epoch_log == b.last_epoch_log
    state_a, state_b = a.snapshot().state, b.snapshot().state
    assert state_a["counters"] == state_b["counters"]
    assert all(torch.equal(state_a["model"][k], state_b["model"][k]) for k in state_a["model"])


def test_fit_counts_in_bulk_and_gives_the_numbers_of_each_step(counts):
    bulk, each = pair()
    bulk.fit(epochs=2)
    each.fit(epochs=2)
    assert_same_run(bulk, each)
    # 30 steps an epoch, counted every 16 steps, before each keyframe (steps 16, 32, 48) and at each epoch's
    # end; the watched loop never in bulk.
    assert counts == [16, 14, 2, 16, 12]
    assert not np.isnan(bulk.history.steps["accuracy"]).any()
    assert bulk.last_epoch_log["accuracy"] > 0.5


def test_run_epoch_and_a_fit_that_stops_midway_leave_every_step_counted(counts):
    bulk, each = pair()
    for loop in (bulk, each):
        loop.run_epoch()
        loop.step()  # a step on its own is counted at once
        loop.fit(epochs=1, callbacks=[tl.StopAtTarget("accuracy", 0.0)])  # a callback listens: step by step
        loop.fit(epochs=1)
    assert_same_run(bulk, each)
    assert bulk.state.step == 90 and sum(counts) == 60  # all but the lone step and the 29 the callback watched


def test_a_non_finite_gradient_still_stops_the_step_that_made_it(counts):
    """Steps counted in bulk before it are counted when fit raises; the loop is where each-step counting leaves it."""

    class PoisonGradient(torch.autograd.Function):
        """The identity on the hidden layer, whose gradient is NaN for a batch holding a marked sample."""

        @staticmethod
        def forward(ctx, hidden, x):
            ctx.poisoned = bool((x[:, 0] == 99.0).any())
            return hidden.clone()

        @staticmethod
        def backward(ctx, grad):
            return (grad * float("nan") if ctx.poisoned else grad), None

    class Poisonable(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = classifier()

        def forward(self, x):
            hidden = PoisonGradient.apply(self.net[0](x), x)
            return self.net[2](self.net[1](hidden))

    X, y = blobs(480)
    X[16 * 20, 0] = 99.0  # the 21st batch of the first epoch (no shuffling)
    bulk, each = pair(Poisonable, (X, y), shuffle=False, validation_split=0.0)
    for loop in (bulk, each):
        with pytest.raises(tl.NonFiniteError, match="at step 21"):
            loop.fit(epochs=1)
        assert loop.state.step == 20 and loop.next_stage == "forward"
    assert_same_run(bulk, each)
    assert counts == [16, 4]


def test_an_update_that_fails_midway_puts_back_the_same_loop(counts):
    """The replay that undoes a failed update starts from a keyframe: the steps before it are counted first."""

    class FailsOnce(torch.optim.SGD):
        calls = 0

        def step(self, closure=None):
            type(self).calls += 1
            if type(self).calls == 24:
                raise RuntimeError("the optimizer failed")
            return super().step(closure)

    bulk, each = (tl.Loop(model := classifier(), blobs(), "cross_entropy",
                          optimizer=FailsOnce(model.parameters(), lr=0.1), batch_size=16, validation_split=0.2)
                  for _ in range(2))
    each.on("after_update", lambda loop: None, observer=True)
    for loop in (bulk, each):
        FailsOnce.calls = 0
        with pytest.raises(RuntimeError, match="the optimizer failed"):
            loop.fit(epochs=1)
        assert loop.state.step == 23 and loop.next_stage == "update"
        loop.fit(epochs=1)  # finishes the open batch, then the epoch
    assert_same_run(bulk, each)
    assert counts == [16, 7, 7]  # before the failure; then the failed step (its scores kept) and the epoch's rest


def test_thinned_history_and_rewind_after_a_bulk_count(counts):
    bulk, each = pair()
    for loop in (bulk, each):
        loop.history.full_steps = 4  # older rows thinned while steps wait to be counted
        loop.fit(epochs=2)
        assert loop.history.thinnings > 0
        loop.rewind(5)
    assert_same_run(bulk, each)
    assert counts


def test_multi_label_and_per_token_accuracy_are_counted_each_step(counts):
    """Only class scores (n, classes) against labels (n,) wait; other kinds count as before."""
    torch.manual_seed(0)
    X, y = torch.randn(64, 4), (torch.rand(64, 3) > 0.5).float()
    loop = tl.Loop(nn.Linear(4, 3), (X, y), "bce", batch_size=16)
    loop.fit(epochs=1)
    assert counts == [] and not np.isnan(loop.history.steps["accuracy"]).any()
