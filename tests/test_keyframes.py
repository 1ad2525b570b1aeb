"""Rewind without a copy per step: keyframes plus exact replay (issue 15).

Every test compares, bit for bit, the loop's whole state (weights, buffers, optimizer and
scheduler state, random state, place in the epoch, counters) after a rewind with the state
recorded by ``snapshot()`` when the run first passed that step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import trainlab as tl


def same(a, b) -> bool:
    """Nested dicts/lists of tensors and numbers, equal bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN equals NaN here


def assert_at(loop: tl.Loop, recorded: tl.Snapshot) -> None:
    now = loop.snapshot()
    assert now.step == recorded.step
    for key in recorded.state:
        assert same(now.state[key], recorded.state[key]), f"{key} differs after the rewind"
    assert len(loop.history) == recorded.step


def run(loop: tl.Loop, steps: int, states: dict[int, tl.Snapshot], changes: dict[int, callable] = {}) -> None:
    """Step ``steps`` times, recording the state at every step and making ``changes`` at given steps."""
    for _ in range(steps):
        states[loop.state.step] = loop.snapshot()
        if loop.state.step in changes:
            changes[loop.state.step](loop)
            if loop.next_stage == "forward":  # between batches: the next batch starts from the change
                states[loop.state.step] = loop.snapshot()
        loop.step()
    states[loop.state.step] = loop.snapshot()


def check_every_rewind(make, steps: int, changes: dict = {}, amounts=(1, 3, 7, 15, 16, 17, 30)) -> tl.Loop:
    """For each amount: the same run afresh (``make()``, ``steps`` steps, ``changes``), rewound by it, compared."""
    for amount in amounts:
        loop, states = make(), {}
        run(loop, steps, states, changes)
        assert amount <= loop.rewind_depth
        loop.rewind(amount)
        assert_at(loop, states[steps - amount])
    return loop


class Dropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x)


def moons_loop_run(steps: int, changes: dict) -> tl.Loop:
    loop = moons_loop()
    run(loop, steps, {}, changes)
    return loop


def moons_loop(**options) -> tl.Loop:
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    torch.manual_seed(0)
    settings = dict(optimizer="adam", lr=0.01, batch_size=16, validation_split=0.2, seed=0)
    settings.update(options)
    return tl.Loop(Dropout(), (X, y), "cross_entropy", **settings)


def test_the_loop_keeps_a_keyframe_every_16_steps_not_a_copy_per_step():
    loop = moons_loop()
    for _ in range(64):
        loop.step()
    assert [frame.step for frame in loop._time.keyframes._frames] == [0, 16, 32, 48]
    assert loop.rewind_depth == 64


def test_rewind_is_exact_with_adam_dropout_and_live_changes_between_keyframes():
    def mid_batch_lr(lp):  # a learner changing lr between backward and update
        lp.forward(); lp.loss(); lp.backward()
        lp.lr = 0.003

    changes = {5: lambda lp: setattr(lp, "lr", 0.05), 9: lambda lp: setattr(lp, "batch_size", 7),
               21: mid_batch_lr, 27: lambda lp: setattr(lp, "batch_size", 32)}
    check_every_rewind(moons_loop, 40, changes, amounts=(1, 2, 5, 11, 14, 15, 19, 20, 31, 35))


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_rewind_is_exact_with_a_scheduler(interval):
    def make():
        return moons_loop(scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7),
                          scheduler_interval=interval, optimizer="sgd", momentum=0.9, lr=0.1)

    check_every_rewind(make, 45)
    loop = make()
    loop.fit(epochs=4)
    assert len(set(loop.history.steps["lr"])) >= 2  # the scheduler did change it


class Augmented(Dataset):
    """Images with random noise added on every fetch (torch's random stream, as torchvision's transforms)."""

    def __init__(self, n: int = 96) -> None:
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(1, 6, 6), self.y[i]


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def test_rewind_is_exact_with_a_dataloader_augmentation_and_batchnorm():
    def make():
        loader = DataLoader(Augmented(), batch_size=10, shuffle=True)
        return tl.Loop(bn_model(), loader, "cross_entropy", optimizer="adamw", lr=0.01)

    check_every_rewind(make, 35, {12: lambda lp: setattr(lp, "batch_size", 4)})


def test_rewind_is_exact_across_batches_skipped_as_non_finite():
    X, y = tl.datasets.moons(n=120, noise=0.2, seed=0)
    X[[7, 50, 90]] = float("nan")  # every batch holding one of these is skipped
    torch.manual_seed(0)
    loop = tl.Loop(nn.Linear(2, 2), (X, y), "cross_entropy", lr=0.1, batch_size=8, on_nonfinite="skip_batch")
    states: dict[int, tl.Snapshot] = {}
    for _ in range(60):
        loop.step()
        if loop.last_log["status"] == "updated":
            states[loop.state.step] = loop.snapshot()
    assert loop.state.skipped > 3
    end = loop.state.step
    for amount in (1, 4, 9, 17, 23):
        loop.rewind(amount)
        snapshot = loop.snapshot()
        # The point reached is the one the next update started from: after the skips before it.
        assert same(snapshot.state["model"], states[end - amount].state["model"])
        assert same(snapshot.state["optimizer"], states[end - amount].state["optimizer"])
        while loop.state.step < end:
            loop.step()
        assert_at(loop, states[end])


def test_a_weight_edited_between_steps_gets_a_keyframe_so_rewind_stays_exact():
    def edit(lp):
        with torch.no_grad():
            lp.model.net[0].weight[0, 0] = 3.0  # a teacher's demonstration, in a cell

    loop = check_every_rewind(moons_loop, 30, {20: edit}, amounts=(3, 9, 10, 11, 25))
    assert 20 in [frame.step for frame in moons_loop_run(30, {20: edit})._time.keyframes._frames]


def test_a_handler_that_changes_the_step_gets_a_keyframe_every_step_an_observer_does_not():
    seen, handles = [], []

    def make():
        loop = moons_loop()
        handles.append(loop.on("after_backward", lambda lp: lp.model.net[0].weight.grad.add_(torch.randn(16, 2))))
        loop.on("after_backward", lambda lp: seen.append(lp.state.step), observer=True)
        return loop

    loop = check_every_rewind(make, 20, amounts=(1, 6))
    assert [frame.step for frame in loop._time.keyframes._frames] == list(range(15))  # up to 20 - 6, one a step
    handles[-1].remove()
    before = len(loop._time.keyframes)
    for _ in range(5):
        loop.step()
    assert len(loop._time.keyframes) == before  # only the observer is left: no copy per step
    assert len(seen) > 20


class NumpyNoise(Dataset):
    """Augmentation with numpy's own random numbers: outside the loop's stream, so no replay is exact."""

    def __init__(self) -> None:
        self.x, self.y = tl.datasets.moons(n=64, noise=0.2, seed=0)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + torch.from_numpy(np.random.normal(0, 0.5, 2).astype(np.float32)), self.y[i]


def test_a_replay_that_cannot_be_exact_is_refused_and_changes_nothing():
    torch.manual_seed(0)
    loop = tl.Loop(nn.Linear(2, 2), DataLoader(NumpyNoise(), batch_size=8, shuffle=True), "cross_entropy", lr=0.1)
    for _ in range(20):
        loop.step()
    before, n_history, branches = loop.snapshot(), len(loop.history), len(loop.history.branches)
    with pytest.raises(tl.ReplayError, match="snapshot"):
        loop.rewind(3)
    assert_at(loop, before)
    assert len(loop.history) == n_history and len(loop.history.branches) == branches
    loop.rewind(4)  # a keyframe's own step needs no replay (20 -> 16)
    assert loop.state.step == 16


def fails_once_at(epoch_to_fail: int):
    """An lr schedule that raises the first time it reaches an epoch: a scheduler's bug.

    A plain function (LambdaLR saves a callable object's attributes with its state, not a function's).
    """
    failed = []

    def schedule(epoch: int) -> float:
        if epoch == epoch_to_fail and not failed:
            failed.append(epoch)
            raise RuntimeError("the schedule broke")
        return 0.9 ** epoch

    return schedule


def test_an_update_whose_scheduler_raises_leaves_everything_as_it_was_without_a_copy_per_step():
    schedule = fails_once_at(23)
    loop = moons_loop(scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                      scheduler_interval="step")
    twin = moons_loop(scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.9 ** e),
                      scheduler_interval="step")
    for _ in range(22):
        loop.step(); twin.step()
    loop.forward(); loop.loss(); loop.backward()
    grads = [p.grad.clone() for p in loop.model.parameters()]
    at_update = loop.snapshot()
    with pytest.raises(RuntimeError, match="the schedule broke"):
        loop.update()
    assert loop.next_stage == "update" and loop.state.step == 22
    assert_at(loop, at_update)
    assert all(torch.equal(p.grad, g) for p, g in zip(loop.model.parameters(), grads))
    loop.update()  # called again, it goes through
    twin.step()
    assert same(loop.snapshot().state, twin.snapshot().state)


def test_update_ratios_are_measured_on_demand_and_match_a_hand_computation():
    loop = moons_loop()
    loop.fit(epochs=2)
    last = loop.state.step
    assert loop._ratios.latest is None  # a plain fit measured nothing
    ratios = loop.update_ratios()
    loop.rewind(1)
    before = {name: p.detach().clone() for name, p in loop.model.named_parameters()}
    loop.step()
    assert loop.state.step == last
    for name, p in loop.model.named_parameters():
        expected = ((p.detach() - before[name]).norm() / before[name].norm()).item()
        assert ratios[name] == pytest.approx(expected, rel=1e-6)
    # While a dashboard plays it asks for recent ones: the next update measures them.
    assert loop.update_ratios() == loop.update_ratios(recent=True) == ratios
    loop.step()
    assert loop._ratios.latest[0] == loop.state.step


def test_rewind_from_a_background_snapshot_and_update_ratios_leave_the_run_unchanged():
    loop, twin = moons_loop(), moons_loop()
    for _ in range(25):
        loop.step(); twin.step()
        loop.update_ratios()  # replays the last update each time: must not disturb anything
    for _ in range(10):
        loop.step(); twin.step()
    assert same(loop.snapshot().state, twin.snapshot().state)
    assert np.array_equal(loop.history.steps["loss"], twin.history.steps["loss"])


def test_a_quiet_fit_looks_for_no_change_between_its_steps_but_notices_one_made_between_calls():
    """Issue 27: in a fit no handler listens to, nothing runs between steps, so the revision is not read at each
    step; a weight edited before the fit, or after it, still gets its keyframe, and rewind stays exact."""
    def edit(lp):
        with torch.no_grad():
            lp.model.net[0].weight[0, 0] += 1.0  # a teacher's demonstration, in a cell

    loop, reference = moons_loop(), moons_loop()
    loop.fit(epochs=1)  # 10 steps
    edit(loop)
    loop.fit(epochs=2)
    edit(loop)
    for _ in range(5):
        loop.step()
    assert [frame.step for frame in loop._time.keyframes._frames] == [0, 10, 26, 30]  # 26: 16 after 10

    for _ in range(10):
        reference.step()
    edit(reference)
    for _ in range(13):
        reference.step()
    loop.rewind(12)  # to step 23: replayed from the keyframe the first edit made (10)
    assert loop.state.step == 23
    expected = reference.model.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loop.model.state_dict().items())
