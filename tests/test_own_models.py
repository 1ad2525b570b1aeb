"""Bring your own model (issue 14): what PyTorch users write trains as in a hand-written loop.

Each test trains a real (tiny) model and checks something that was wrong before the fix:
BatchNorm statistics after a NaN batch, buffers a model reassigns, multi-label accuracy,
all-or-nothing updates, retries after a failed backward, time travel from handlers,
edited checkpoints, frozen BatchNorm, messages, parameter groups, clipping, schedulers.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl

# --- helpers --------------------------------------------------------------------------------

def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every weight and buffer, by name."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """A deep copy of the optimizer's state_dict (moments and settings)."""
    return copy.deepcopy(optimizer.state_dict())


def same_optimizer_state(a: dict, b: dict) -> bool:
    if a["param_groups"] != b["param_groups"] or a["state"].keys() != b["state"].keys():
        return False
    for i in a["state"]:
        sa, sb = a["state"][i], b["state"][i]
        if sa.keys() != sb.keys():
            return False
        for key in sa:
            x, y = sa[key], sb[key]
            if isinstance(x, torch.Tensor):
                if not torch.equal(x, y):
                    return False
            elif x != y:
                return False
    return True


def moons(n: int = 48, seed: int = 0):
    return tl.datasets.moons(n=n, noise=0.2, seed=seed)


class BNNet(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear, the BatchNorm named ``bn``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(2, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def bn_buffers(bn: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in bn.named_buffers()}


# --- item 2: a NaN batch leaves BatchNorm as it was -----------------------------------------------

def nan_batch_loop(on_nonfinite: str) -> tuple[tl.Loop, torch.Tensor, torch.Tensor]:
    X, y = moons(48)
    X_bad = X.clone()
    X_bad[20, 0] = float("nan")  # batch size 16, no shuffle: only the second batch holds it
    loop = tl.Loop(BNNet(), (X_bad, y), "cross_entropy", lr=0.1, batch_size=16, shuffle=False,
                   on_nonfinite=on_nonfinite)
    return loop, X, y


def test_skipped_nan_batch_leaves_batchnorm_statistics_as_they_were():
    loop, X, y = nan_batch_loop("skip_batch")
    first = loop.step()
    assert first["status"] == "updated"
    before = bn_buffers(loop.model.bn)
    weights_before = weights(loop.model)
    log = loop.step()  # the NaN batch
    assert log["status"] == "skipped"
    assert loop.state.step == 1 and loop.state.skipped == 1
    assert same(bn_buffers(loop.model.bn), before)
    assert int(loop.model.bn.num_batches_tracked) == 1
    assert same(weights(loop.model), weights_before)
    assert math.isfinite(loop.evaluate((X, y))["loss"])
    assert torch.isfinite(loop.predict(X)).all()
    assert loop.step()["status"] == "updated"  # the third batch trains as usual
    assert torch.isfinite(loop.model.bn.running_mean).all() and torch.isfinite(loop.model.bn.running_var).all()
    assert int(loop.model.bn.num_batches_tracked) == 2


def test_refused_nan_batch_leaves_batchnorm_statistics_as_they_were():
    loop, X, y = nan_batch_loop("raise")
    loop.step()
    before = bn_buffers(loop.model.bn)
    weights_before = weights(loop.model)
    with pytest.raises(tl.NonFiniteError):
        loop.step()
    assert same(bn_buffers(loop.model.bn), before)
    assert int(loop.model.bn.num_batches_tracked) == 1
    assert same(weights(loop.model), weights_before)
    assert loop.state.step == 1 and loop.next_stage == "forward"
    assert math.isfinite(loop.evaluate((X, y))["loss"])
    assert torch.isfinite(loop.predict(X)).all()


# --- item 3: buffers a model reassigns (d2l's from-scratch BatchNorm) --------------------------

class ScratchBatchNorm(nn.Module):
    """d2l's BatchNorm: the moving statistics are new tensors each step (``self.moving_mean = ...``)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n))
        self.beta = nn.Parameter(torch.zeros(n))
        self.register_buffer("moving_mean", torch.zeros(n))  # persistent: in state_dict
        self.register_buffer("moving_var", torch.ones(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            x_hat = (x - self.moving_mean) / torch.sqrt(self.moving_var + 1e-5)
        else:
            mean = x.mean(dim=0)
            var = ((x - mean) ** 2).mean(dim=0)
            x_hat = (x - mean) / torch.sqrt(var + 1e-5)
            self.moving_mean, self.moving_var = (0.9 * self.moving_mean + 0.1 * mean.detach(),
                                                 0.9 * self.moving_var + 0.1 * var.detach())
        return self.gamma * x_hat + self.beta


def scratch_bn_loop() -> tuple[tl.Loop, ScratchBatchNorm]:
    torch.manual_seed(0)
    bn = ScratchBatchNorm(8)
    model = nn.Sequential(nn.Linear(2, 8), bn, nn.Tanh(), nn.Linear(8, 2))
    X, y = moons(48)
    model(X)  # trained a little before the loop: the buffers at build are already reassigned ones
    return tl.Loop(model, (X, y), "cross_entropy", lr=0.1, batch_size=8), bn


def moving(bn: ScratchBatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    return bn.moving_mean.clone(), bn.moving_var.clone()


def assert_moving(bn: ScratchBatchNorm, expected: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert torch.equal(bn.moving_mean, expected[0]) and torch.equal(bn.moving_var, expected[1])


def test_reassigned_buffers_snapshot_restore_and_rewind():
    loop, bn = scratch_bn_loop()
    at_build = moving(bn)
    for _ in range(3):
        loop.step()
    s = loop.snapshot()
    at_snapshot = moving(bn)
    state_at_snapshot = weights(loop.model)
    assert not torch.equal(at_snapshot[0], at_build[0])  # the test means something
    for _ in range(3):
        loop.step()
    assert not torch.equal(bn.moving_mean, at_snapshot[0])
    loop.restore(s)
    assert_moving(bn, at_snapshot)
    assert same(weights(loop.model), state_at_snapshot)

    loop.step()
    after_one = moving(bn)
    loop.step()
    assert not torch.equal(bn.moving_mean, after_one[0])
    loop.rewind(1)
    assert_moving(bn, after_one)

    loop.reset()
    assert_moving(bn, at_build)


def test_reassigned_buffers_save_and_load(tmp_path):
    loop, bn = scratch_bn_loop()
    for _ in range(3):
        loop.step()
    path = tmp_path / "scratch_bn.pt"
    loop.save(path)
    saved = moving(bn)
    saved_weights = weights(loop.model)
    for _ in range(3):
        loop.step()
    assert not torch.equal(bn.moving_mean, saved[0])
    loop.load(path)
    assert_moving(bn, saved)
    assert same(weights(loop.model), saved_weights)

    fresh, fresh_bn = scratch_bn_loop()  # into a new loop
    fresh.load(path)
    assert_moving(fresh_bn, saved)
    # and both go on alike
    assert loop.step()["loss"] == fresh.step()["loss"]
    assert same(weights(loop.model), weights(fresh.model))


# --- item 4: multi-label accuracy ---------------------------------------------------------------

def test_multilabel_accuracy_is_the_share_of_labels_right():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 4, generator=g)
    Y = (torch.rand(40, 3, generator=g) > 0.5).float()  # k = 3 labels per sample
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    loop = tl.Loop(model, (X, Y), "bce", lr=0.1, batch_size=10, validation_split=0.25)
    assert loop.accuracy_kind == "multilabel_logits"
    loop.fit(epochs=2)
    for key in ("accuracy", "val_accuracy"):
        assert all(0.0 <= a <= 1.0 for a in loop.history.history[key]), key
    assert all(0.0 <= a <= 1.0 for a in loop.history.steps["accuracy"])

    def by_hand(x, y):
        model.eval()
        with torch.no_grad():
            right = ((model(x) > 0) == (y > 0.5)).sum().item()
        model.train()
        return right / (len(y) * y.shape[1])

    assert loop.evaluate((X, Y))["accuracy"] == pytest.approx(by_hand(X, Y), abs=1e-6)  # float32 sums
    val_x, val_y = loop.val_data
    assert loop.history.history["val_accuracy"][-1] == pytest.approx(by_hand(val_x, val_y), abs=1e-6)


# --- item 6: a step is all or nothing -------------------------------------------------------------

def test_raising_per_step_scheduler_leaves_the_step_undone():
    X, y = moons(48)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=8,
                   momentum=0.9, scheduler=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=3),
                   scheduler_interval="step")
    for _ in range(3):
        assert loop.step()["status"] == "updated"
    step, n_history, depth = loop.state.step, len(loop.history), loop.rewind_depth
    before_weights, before_opt = weights(loop.model), optimizer_state(loop.optimizer)
    scheduler_before = copy.deepcopy(loop.scheduler.state_dict())
    with pytest.raises(ValueError):  # OneCycleLR: "Tried to step 4 times..."
        loop.step()
    assert loop.state.step == step
    assert len(loop.history) == n_history
    assert same(weights(loop.model), before_weights)
    assert same_optimizer_state(optimizer_state(loop.optimizer), before_opt)
    assert loop.scheduler.state_dict() == scheduler_before
    assert loop.rewind_depth == depth
    assert loop.next_stage == "update"
    with pytest.raises(ValueError):  # again: nothing applied twice
        loop.step()
    assert same(weights(loop.model), before_weights)
    assert loop.state.step == step


class InterruptedSGD(torch.optim.SGD):
    """SGD whose first step moves one parameter, then is interrupted (Ctrl-C)."""

    interrupt = False

    def step(self, closure=None):
        if self.interrupt:
            self.interrupt = False
            with torch.no_grad():
                self.param_groups[0]["params"][0].add_(1.0)
            raise KeyboardInterrupt
        return super().step(closure)


def test_optimizer_interrupted_half_way_leaves_the_weights():
    X, y = moons(48)
    model = tl.models.mlp(2, [8], 2, seed=0)
    reference_model = copy.deepcopy(model)
    loop = tl.Loop(model, (X, y), "cross_entropy", InterruptedSGD(model.parameters(), lr=0.1), batch_size=16)
    reference = tl.Loop(reference_model, (X, y), "cross_entropy", torch.optim.SGD(reference_model.parameters(),
                                                                                    lr=0.1), batch_size=16)
    loop.step()
    reference.step()
    before = weights(loop.model)
    loop.optimizer.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        loop.step()
    assert same(weights(loop.model), before)
    assert loop.state.step == 1 and len(loop.history) == 1
    assert loop.next_stage == "update"
    assert loop.update()["status"] == "updated"  # the same gradients, applied once
    reference.step()
    assert same(weights(loop.model), weights(reference.model))


# --- item 7: an exception inside backward retries the batch from forward -----------------------

class FailingBackward(torch.autograd.Function):
    """The identity, whose backward raises once when armed."""

    armed = False

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if FailingBackward.armed:
            FailingBackward.armed = False
            raise RuntimeError("backward failed")
        return grad


class HookedNet(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(2, 8)
        self.drop = nn.Dropout(0.2)  # random numbers: a retry must draw the same ones
        self.fc2 = nn.Linear(8, 2)
        self.how = how
        self.armed = False

    def forward(self, x):
        h = torch.tanh(self.fc1(x))
        if self.how == "function":
            h = FailingBackward.apply(h)
        elif self.training:
            h.register_hook(self._hook)
        return self.fc2(self.drop(h))

    def _hook(self, grad):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return grad


@pytest.mark.parametrize("how, error", [("function", RuntimeError), ("hook", KeyboardInterrupt)])
def test_exception_in_backward_retries_the_same_batch(how, error):
    X, y = moons(48)
    failing = tl.Loop(HookedNet(how), (X, y), "cross_entropy", lr=0.1, batch_size=16)
    clean = tl.Loop(HookedNet(how), (X, y), "cross_entropy", lr=0.1, batch_size=16)
    failing.step()
    clean.step()
    if how == "function":
        FailingBackward.armed = True
    else:
        failing.model.armed = True
    with pytest.raises(error):
        failing.step()
    FailingBackward.armed = False
    assert failing.next_stage == "forward"
    assert failing.state.step == 1
    for _ in range(3):  # the rest of the epoch, and into the next
        assert failing.step() == clean.step()
        assert same(weights(failing.model), weights(clean.model))


# --- item 8: time travel from handlers -------------------------------------------------------------

def travel_loop(tmp_path) -> tuple[tl.Loop, dict]:
    """A loop two steps in (one epoch of two batches), with a snapshot and a checkpoint at step 1."""
    X, y = moons(32)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=16)
    points = {"w0": weights(loop.model)}
    loop.step()
    points["w1"] = weights(loop.model)
    points["snapshot"] = loop.snapshot()
    points["path"] = tmp_path / "step1.pt"
    loop.save(points["path"])
    loop.step()
    points["w2"] = weights(loop.model)
    assert loop.state.epoch == 1
    return loop, points


def travel(loop: tl.Loop, call: str, points: dict) -> None:
    if call == "restore":
        loop.restore(points["snapshot"])
    elif call == "rewind":
        loop.rewind(1)
    elif call == "reset":
        loop.reset()
    else:
        loop.load(points["path"])


CALLS = ["restore", "rewind", "reset", "load"]
# before_epoch fires as the first batch of an epoch opens (the loop is at an epoch boundary)
BEFORE = ["before_forward", "before_loss", "before_backward", "before_update", "before_epoch"]


@pytest.mark.parametrize("event", BEFORE)
@pytest.mark.parametrize("call", CALLS)
def test_time_travel_from_a_before_handler_is_refused_and_changes_nothing(tmp_path, event, call):
    loop, points = travel_loop(tmp_path)
    stage = {"before_epoch": "forward"}.get(event, event.removeprefix("before_"))
    for earlier in ["forward", "loss", "backward", "update"][:["forward", "loss", "backward", "update"].index(stage)]:
        getattr(loop, earlier)()
    handle = loop.on(event, lambda lp: travel(lp, call, points))
    step, due, before, n_history = loop.state.step, loop.next_stage, weights(loop.model), len(loop.history)
    with pytest.raises(tl.StageError, match=event):
        getattr(loop, stage)()
    assert loop.state.step == step and loop.next_stage == due
    assert same(weights(loop.model), before)
    assert len(loop.history) == n_history
    handle.remove()
    # the loop goes on as one that never met the handler
    X, y = moons(32)
    reference = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=16)
    for _ in range(3):
        reference.step()
    assert loop.step()["status"] == "updated"
    assert same(weights(loop.model), weights(reference.model))


@pytest.mark.parametrize("event", ["after_forward", "after_loss", "after_backward", "after_update"])
@pytest.mark.parametrize("call", CALLS)
def test_time_travel_from_an_after_handler_works(tmp_path, event, call):
    loop, points = travel_loop(tmp_path)
    fired = []

    def handler(lp):
        if not fired:
            fired.append(True)
            travel(lp, call, points)

    loop.on(event, handler)
    log = loop.step()
    assert fired and log["status"] == "restored"
    assert loop.next_stage == "forward"
    if call == "reset":
        expected_step, expected = 0, points["w0"]
    elif call == "rewind" and event == "after_update":  # the third update is undone
        expected_step, expected = 2, points["w2"]
    else:  # restore/load to step 1; rewind(1) mid-batch drops the batch and undoes the second update
        expected_step, expected = 1, points["w1"]
    assert loop.state.step == expected_step
    assert same(weights(loop.model), expected)
    assert loop.step()["status"] == "updated"


# --- item 9: edited optimizer state in a checkpoint ----------------------------------------------

def edited_checkpoint(tmp_path, edit) -> tuple[tl.Loop, object]:
    X, y = moons(48)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", "adam", lr=0.01, batch_size=16)
    loop.step()
    loop.step()
    path = tmp_path / "good.pt"
    loop.save(path)
    payload = torch.load(path, weights_only=True)
    edit(payload["state"]["optimizer"]["state"])
    bad = tmp_path / "edited.pt"
    torch.save(payload, bad)
    loop.step()
    return loop, bad


def drop_exp_avg(state):
    del state[0]["exp_avg"]


def wrong_shape(state):
    state[1]["exp_avg"] = torch.zeros(7)


def extra_index(state):
    state[99] = copy.deepcopy(state[0])


def assert_load_refused(loop: tl.Loop, path) -> None:
    before, step, opt = weights(loop.model), loop.state.step, optimizer_state(loop.optimizer)
    with pytest.raises(tl.CheckpointError):
        loop.load(path)
    assert same(weights(loop.model), before) and loop.state.step == step
    assert same_optimizer_state(optimizer_state(loop.optimizer), opt)
    assert loop.step()["status"] == "updated"
    assert loop.state.step == step + 1


@pytest.mark.parametrize("edit", [drop_exp_avg, wrong_shape, extra_index])
def test_load_refuses_edited_optimizer_state(tmp_path, edit):
    loop, bad = edited_checkpoint(tmp_path, edit)
    assert_load_refused(loop, bad)


# --- item 10: a BatchNorm the user froze stays frozen ---------------------------------------------

def test_frozen_batchnorm_stays_frozen():
    X, y = moons(48)
    model = BNNet()
    model.train()
    for i in range(0, 48, 16):  # some running statistics of its own
        model(X[i:i + 16])
    model.bn.eval()
    frozen = bn_buffers(model.bn)
    start = weights(model)
    loop = tl.Loop(model, (X, y), "cross_entropy", lr=0.1, batch_size=16, validation_split=0.25)
    assert model.bn.training is False and model.training and model.drop.training
    loop.predict(X[:4])
    assert model.bn.training is False and model.drop.training
    loop.evaluate()
    assert model.bn.training is False and model.drop.training
    loop.fit(epochs=1)
    assert model.bn.training is False and model.training and model.drop.training
    assert same(bn_buffers(model.bn), frozen)
    assert not torch.equal(model.bn.weight, start["bn.weight"])  # its affine weights still train


# --- item 11: messages and label types ---------------------------------------------------------------

def test_ignore_index_labels_are_accepted():
    X, y = moons(48)
    y = y.clone()
    y[::5] = -100
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), nn.CrossEntropyLoss(ignore_index=-100),
                   lr=0.1, batch_size=16)
    loop.fit(epochs=1)
    assert all(math.isfinite(v) for v in loop.history.history["loss"])


def test_scheduler_class_is_refused_with_a_lambda_hint():
    X, y = moons(48)
    with pytest.raises(ValueError, match="lambda opt"):
        tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", scheduler=torch.optim.lr_scheduler.StepLR)


@pytest.mark.parametrize("labels", ["torch_int32", "numpy_int32"])
def test_int32_labels_train_like_int64(labels):
    X, y = moons(48)
    y32 = y.to(torch.int32) if labels == "torch_int32" else y.numpy().astype(np.int32)
    a = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y32), "cross_entropy", lr=0.1, batch_size=16)
    b = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=16)
    a.fit(epochs=2)
    b.fit(epochs=2)
    assert same(weights(a.model), weights(b.model))
    assert a.history.history == b.history.history


def test_optimizer_object_with_nan_lr_is_refused():
    X, y = moons(48)
    model = tl.models.mlp(2, [8], 2, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=float("nan"))  # torch itself accepts it
    with pytest.raises(ValueError, match="learning rate|lr"):
        tl.Loop(model, (X, y), "cross_entropy", optimizer)


# --- several parameter groups --------------------------------------------------------------------------

def test_lr_scales_every_parameter_group_keeping_ratios():
    X, y = moons(48)
    model = tl.models.mlp(2, [8], 2, seed=0)
    optimizer = torch.optim.SGD([{"params": model.hidden1.parameters(), "lr": 0.1},
                                 {"params": model.output.parameters(), "lr": 0.01}])
    loop = tl.Loop(model, (X, y), "cross_entropy", optimizer, batch_size=16)
    assert loop.lr == 0.1
    loop.step()
    loop.lr = 0.3
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.3, 0.03], rel=1e-12)
    assert loop.lr == 0.3
    assert loop.history.changes[-1] == (1, "lr", 0.3)
    # the next update uses both groups' new lr
    reference = copy.deepcopy(model)
    ref_opt = torch.optim.SGD([{"params": reference.hidden1.parameters(), "lr": 0.3},
                               {"params": reference.output.parameters(), "lr": optimizer.param_groups[1]["lr"]}])
    loop.forward()
    inputs, targets = loop.batch
    loop.step()
    ref_opt.zero_grad()
    nn.functional.cross_entropy(reference(inputs), targets).backward()
    ref_opt.step()
    assert same(weights(loop.model), weights(reference))


# --- gradient clipping -----------------------------------------------------------------------------------

def clipped_pair() -> tuple[tl.Loop, nn.Module]:
    """Two epochs with clip_grad_norm=0.5 and a large lr, in trainlab and in a hand-written loop."""
    X, y = moons(48)
    model = tl.models.mlp(2, [16], 2, seed=0)
    reference = copy.deepcopy(model)
    loop = tl.Loop(model, (X, y), "cross_entropy", lr=5.0, batch_size=16, shuffle=False, clip_grad_norm=0.5)
    loop.fit(epochs=2)
    optimizer = torch.optim.SGD(reference.parameters(), lr=5.0)
    for _ in range(2):
        for i in range(0, 48, 16):  # shuffle=False: batches are consecutive slices
            optimizer.zero_grad()
            nn.functional.cross_entropy(reference(X[i:i + 16]), y[i:i + 16]).backward()
            torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
            optimizer.step()
    return loop, reference


def test_clip_grad_norm_caps_the_norm_like_torch():
    loop, reference = clipped_pair()
    steps = loop.history.steps
    assert (steps["clipped_grad_norm"] <= 0.5 + 1e-6).all()
    assert (steps["grad_norm"] > 0.5).any()
    assert loop.last_log["status"] == "updated" and "clipped_grad_norm" in loop.last_log
    ours, theirs = weights(loop.model), weights(reference)
    assert all(torch.allclose(ours[k], theirs[k], rtol=1e-5, atol=1e-5) for k in ours)


def test_clip_grad_norm_is_exactly_torch_clip_grad_norm_():
    """The zoo's rule: a hand loop with the same order gives the same weights, bit for bit."""
    loop, reference = clipped_pair()
    ours, theirs = weights(loop.model), weights(reference)
    differences = {k: (ours[k] - theirs[k]).abs().max().item() for k in ours}
    assert same(ours, theirs), differences


def test_clip_grad_norm_is_live_and_checked():
    X, y = moons(48)
    loop = tl.Loop(tl.models.mlp(2, [16], 2, seed=0), (X, y), "cross_entropy", lr=5.0, batch_size=16)
    loop.step()
    loop.clip_grad_norm = 1.0
    assert loop.clip_grad_norm == 1.0
    assert loop.history.changes[-1] == (1, "clip_grad_norm", 1.0)
    log = loop.step()
    assert log["clipped_grad_norm"] <= 1.0 + 1e-6
    changes = list(loop.history.changes)
    for bad in (0, -1, float("nan"), "a", True):
        with pytest.raises(ValueError):
            loop.clip_grad_norm = bad
        assert loop.clip_grad_norm == 1.0
        assert loop.history.changes == changes


# --- a scheduler's lr changes are recorded ---------------------------------------------------------------

def test_epoch_scheduler_lr_changes_are_recorded():
    X, y = moons(48)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=16,
                   scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    loop.fit(epochs=3)
    lr_changes = [(step, value) for step, name, value in loop.history.changes if name == "lr"]
    assert [step for step, _ in lr_changes] == [3, 6, 9]
    assert [value for _, value in lr_changes] == pytest.approx([0.05, 0.025, 0.0125], rel=1e-12)
    assert loop.lr == pytest.approx(0.0125)
    assert list(loop.history.steps["lr"]) == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3)


def test_a_layer_unfrozen_after_the_loop_is_built_trains_like_a_hand_loop():
    X, y = tl.datasets.moons(n=64, seed=0)

    def model():
        torch.manual_seed(1)
        m = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
        m[0].requires_grad_(False)
        return m

    m = model()
    loop = tl.Loop(m, (X, y), "cross_entropy", lr=0.1, batch_size=16, shuffle=False)
    assert loop.step()["status"] == "updated" and loop.last_grad_norms["0.weight"] == 0.0  # frozen: no gradient
    m[0].requires_grad_(True)
    loop.step(), loop.step(), loop.step()
    hand = model()
    optimizer = torch.optim.SGD(hand.parameters(), lr=0.1)
    for i in range(4):
        if i == 1:
            hand[0].requires_grad_(True)
        optimizer.zero_grad()
        nn.functional.cross_entropy(hand(X[16 * i:16 * i + 16]), y[16 * i:16 * i + 16]).backward()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), hand.parameters()))
    assert loop.last_grad_norms["0.weight"] > 0


def test_a_model_with_nothing_to_train_is_refused_at_build():
    X, y = tl.datasets.moons(n=20, seed=0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        tl.Loop(nn.Linear(2, 2).requires_grad_(False), (X, y), "cross_entropy")


def test_a_failed_update_keeps_batchnorm_statistics_from_this_batchs_forward():
    X, y = tl.datasets.moons(n=64, seed=0)

    def make():
        torch.manual_seed(1)
        return tl.Loop(nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), (X, y),
                       "cross_entropy", lr=0.1, batch_size=16)

    failing, clean = make(), make()
    failing.step()
    failing.forward(), failing.loss(), failing.backward()
    step, calls = failing.optimizer.step, []

    def hiccup(*args, **kwargs):
        calls.append(1)
        step(*args, **kwargs)
        if len(calls) == 1:
            raise RuntimeError("optimizer hiccup")

    failing.optimizer.step = hiccup
    with pytest.raises(RuntimeError, match="hiccup"):
        failing.update()
    failing.update()
    clean.step(), clean.step()
    assert all(torch.equal(a, b) for a, b in zip(failing.model.state_dict().values(), clean.model.state_dict().values()))


def test_an_error_at_an_epochs_end_still_announces_the_step_and_the_epoch():
    X, y = tl.datasets.moons(n=40, seed=0)
    one_step = lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=1)  # noqa: E731
    loop = tl.Loop(nn.Linear(2, 2), (X, y), "cross_entropy", batch_size=20, scheduler=one_step)
    events = []
    loop.on("after_update", lambda lp: events.append("update"))
    loop.on("after_epoch", lambda lp: events.append("epoch"))
    with pytest.raises(ValueError, match="Tried to step"):
        loop.fit(epochs=3)
    assert events == ["update", "update", "epoch", "update", "update", "epoch"]
    assert loop.history.epoch == [0, 1] and loop.state.epoch == 2 and loop.scheduler.last_epoch == 1


def test_setting_lr_when_the_first_group_is_at_zero_leaves_the_other_groups_alone():
    X, y = tl.datasets.moons(n=40, seed=0)
    model = tl.models.mlp(2, [8], 2, seed=0)
    params = list(model.parameters())
    optimizer = torch.optim.SGD([{"params": params[:2], "lr": 0.0}, {"params": params[2:], "lr": 0.05}])
    loop = tl.Loop(model, (X, y), "cross_entropy", optimizer)
    loop.lr = 0.2
    assert [g["lr"] for g in optimizer.param_groups] == [0.2, 0.05]
