"""Time travel: snapshot/restore, rewind and reset replay training exactly (bit for bit, on CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl
from loops import regression_loop
from trees import assert_tree_equal, clone_tree

N_TRAIN = 20  # with batch_size 6: batches of 6, 6, 6, 2, so an epoch ends every 4 steps


def make_loop(optimizer="adam", n=N_TRAIN, batch_size=6, dropout=True, seed=0, **options) -> tl.Loop:
    """A tiny regression loop on shuffled data (tests/loops.py), with more dropout, or none."""
    return regression_loop(optimizer, n=n, batch_size=batch_size, seed=seed, dropout=0.3 if dropout else 0,
                           shuffle=True, **options)


def params(loop: tl.Loop) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loop.model.parameters()]


def assert_params_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


class Recorder:
    """Records what each step saw and produced: its batch (inputs), loss, and the parameters after."""

    def __init__(self, loop: tl.Loop) -> None:
        self.loop = loop
        self.batches: list[torch.Tensor] = []
        self.losses: list[float] = []
        self.params: list[list[torch.Tensor]] = []

    def step(self, k: int = 1) -> None:
        handle = self.loop.on("after_forward", lambda lp: self.batches.append(lp.batch[0].clone()))
        try:
            for _ in range(k):
                log = self.loop.step()
                self.losses.append(log["loss"])
                self.params.append(params(self.loop))
        finally:
            handle.remove()

    def assert_same(self, other: "Recorder") -> None:
        assert self.losses == other.losses
        assert len(self.batches) == len(other.batches)
        for x, y in zip(self.batches, other.batches):
            assert torch.equal(x, y)
        for x, y in zip(self.params, other.params):
            assert_params_equal(x, y)


def replay(loop: tl.Loop, calls) -> Recorder:
    """Run a script of calls ("step", ("lr", v), ("batch_size", v)) and record everything."""
    rec = Recorder(loop)
    for call in calls:
        if call == "step":
            rec.step()
        else:
            setattr(loop, *call)
    return rec


# --- snapshot / restore ------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_restore_replays_identical_losses_and_parameters_across_an_epoch_boundary(optimizer):
    loop = make_loop(optimizer, **({"momentum": 0.9} if optimizer == "sgd" else {}))
    for _ in range(2):
        loop.step()
    snap = loop.snapshot("two")
    assert (snap.step, snap.epoch) == (2, 0)
    opt_state = clone_tree(loop.optimizer.state_dict())

    first = replay(loop, ["step"] * 7)  # steps 3..9: epochs end at steps 4 and 8
    assert loop.state.epoch == 2
    torch.rand(1000)  # the global random stream must not matter
    loop.restore(snap)
    assert (loop.state.step, loop.state.epoch, len(loop.history)) == (2, 0, 2)
    assert loop.next_stage == "forward"
    assert_tree_equal(loop.optimizer.state_dict(), opt_state)

    second = replay(loop, ["step"] * 7)
    first.assert_same(second)
    assert len(first.losses) == 7 and len(set(first.losses)) > 1
    assert loop.state.epoch == 2


def test_restore_replays_a_batch_size_and_lr_change():
    calls = ["step", "step", ("batch_size", 4), ("lr", 0.05), "step", "step", "step", ("batch_size", 9),
             "step", "step", "step"]
    loop = make_loop("adam")
    loop.step()
    snap = loop.snapshot()
    first = replay(loop, calls)
    assert (loop.batch_size, loop.lr) == (9, 0.05)
    loop.restore(snap)
    # the hyperparameters go back with the snapshot
    assert loop.batch_size == 6 and loop.lr == pytest.approx(0.01)
    second = replay(loop, calls)
    first.assert_same(second)
    # the batch sizes really did change: 6, 6, then 4s..., then 9 (or what is left of an epoch)
    sizes = [len(b) for b in first.batches]
    assert sizes[:2] == [6, 6] and 4 in sizes and 9 in sizes
    assert loop.history.steps["batch_size"].tolist() == [6] + sizes


def test_restore_gives_the_same_numbers_as_a_fresh_identical_loop():
    """Restoring does not just repeat itself: it reproduces what an untouched loop does."""
    a, b = make_loop("adam"), make_loop("adam")
    snap = a.snapshot()
    for _ in range(5):
        a.step()
    a.restore(snap)
    ra, rb = Recorder(a), Recorder(b)
    ra.step(6)
    rb.step(6)
    ra.assert_same(rb)


@pytest.mark.parametrize("stages_done", [1, 2, 3])
def test_a_snapshot_taken_mid_batch_restores_to_the_start_of_that_batch(stages_done):
    loop = make_loop("adam")
    for _ in range(5):  # into the second epoch
        loop.step()
    before = params(loop)
    loop.forward()
    batch = [t.clone() for t in loop.batch]
    outputs = loop.last_outputs.detach().clone()
    for stage in ["loss", "backward"][: stages_done - 1]:
        getattr(loop, stage)()
    snap = loop.snapshot()
    assert snap.step == 5
    loop.step()  # finishes the batch
    loop.step()
    assert loop.state.step == 7

    loop.restore(snap)
    assert loop.next_stage == "forward" and loop.batch is None
    assert (loop.state.step, len(loop.history)) == (5, 5)
    assert_params_equal(params(loop), before)
    out = loop.forward()
    assert torch.equal(loop.batch[0], batch[0]) and torch.equal(loop.batch[1], batch[1])
    assert torch.equal(out.detach(), outputs)  # the same dropout mask too


def test_a_mid_batch_snapshot_replays_the_epoch_exactly_once():
    loop = make_loop("sgd", dropout=False)
    seen: list[torch.Tensor] = []
    loop.on("after_forward", lambda lp: seen.append(lp.batch[0].clone()))
    loop.step()  # the epoch's first batch: 6 samples
    loop.forward()  # its second batch is open
    snap = loop.snapshot()
    loop.loss()
    loop.restore(snap)
    loop.run_epoch()
    rows = [tuple(r.tolist()) for r in torch.cat([seen[0]] + seen[2:])]
    # first batch + the replayed rest of the epoch = every training sample exactly once
    assert len(rows) == N_TRAIN
    assert set(rows) == {tuple(r.tolist()) for r in loop.train_data[0]}
    assert torch.equal(seen[1], seen[2])  # the batch open at the snapshot came again
    assert loop.state.epoch == 1 and loop.state.step == 4


def test_restore_keeps_the_abandoned_branch():
    loop = make_loop("adam")
    loop.step(); loop.step(); loop.step()
    kept = loop.history.steps["loss"].copy()
    snap = loop.snapshot("fork")
    rec = Recorder(loop)
    rec.step(4)
    n_branches = len(loop.history.branches)
    loop.restore(snap)
    assert len(loop.history.branches) == n_branches + 1
    branch = loop.history.branches[-1]
    assert isinstance(branch, tl.Branch)
    assert isinstance(branch.name, str) and branch.name
    assert branch.start_step == 3
    assert isinstance(branch.steps["loss"], np.ndarray)
    np.testing.assert_array_equal(branch.steps["loss"], np.asarray(rec.losses, np.float32))
    assert set(branch.steps) >= {"loss", "lr", "batch_size", "grad_norm"}
    # the current line keeps only the common past
    np.testing.assert_array_equal(loop.history.steps["loss"], kept)
    assert len(loop.history) == 3


def test_restoring_the_same_snapshot_again_branches_at_the_fork():
    """The second abandoned run also started at the snapshot: its branch holds only its own steps."""
    loop = make_loop("adam")
    for _ in range(3):
        loop.step()
    snap = loop.snapshot()
    for _ in range(4):
        loop.step()
    loop.restore(snap)
    rec = Recorder(loop)
    rec.step(2)
    loop.restore(snap)
    branch = loop.history.branches[-1]
    assert branch.start_step == 3
    np.testing.assert_array_equal(branch.steps["loss"], np.asarray(rec.losses, np.float32))


def test_each_rewind_branches_at_its_own_fork():
    loop = make_loop("adam")
    for _ in range(5):
        loop.step()
    undone = loop.history.steps["loss"][3:].copy()
    loop.rewind(2)
    branch = loop.history.branches[-1]
    assert branch.start_step == 3
    np.testing.assert_array_equal(branch.steps["loss"], undone)
    loop.step()  # step 4 on the new line
    undone = loop.history.steps["loss"][2:].copy()
    loop.rewind(2)  # back to step 2: steps 3 and 4 of this line are left behind
    branch = loop.history.branches[-1]
    assert branch.start_step == 2
    np.testing.assert_array_equal(branch.steps["loss"], undone)


def test_restore_the_same_snapshot_twice_replays_twice():
    loop = make_loop("adam")
    loop.step()
    snap = loop.snapshot()
    recs = []
    for _ in range(3):
        loop.restore(snap)
        rec = Recorder(loop)
        rec.step(5)
        recs.append(rec)
    recs[0].assert_same(recs[1])
    recs[0].assert_same(recs[2])


def test_restore_puts_back_a_scheduler():
    loop = make_loop("sgd", lr=0.1, scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, 0.5),
                     scheduler_interval="step")
    loop.step()
    snap = loop.snapshot()
    first = replay(loop, ["step"] * 5)
    lrs = loop.history.steps["lr"].tolist()
    assert len(set(lrs)) >= 3  # the scheduler did move the lr
    loop.restore(snap)
    assert loop.lr == pytest.approx(lrs[1])
    second = replay(loop, ["step"] * 5)
    first.assert_same(second)
    assert loop.history.steps["lr"].tolist() == lrs


def test_restore_refuses_what_is_not_this_loops_snapshot():
    loop, other = make_loop(), make_loop()
    loop.step()
    before = params(loop)
    for bad in [other.snapshot(), None, "snapshot", {"model": {}}]:
        with pytest.raises(ValueError):
            loop.restore(bad)
    assert_params_equal(params(loop), before)
    assert loop.state.step == 1 and len(loop.history) == 1


# --- rewind --------------------------------------------------------------------------------


@pytest.mark.parametrize("change_batch_size", [False, True])
def test_rewind_equals_restoring_the_snapshot_three_updates_earlier(change_batch_size):
    a, b = make_loop("adam"), make_loop("adam")
    for loop in (a, b):
        for _ in range(2):
            loop.step()
    snap = a.snapshot()
    for loop in (a, b):
        loop.step()
        if change_batch_size:
            loop.batch_size = 5
        loop.step()
        loop.step()  # step 5: crossed the epoch boundary at step 4
        assert loop.state.epoch == 1
    a.restore(snap)
    assert b.rewind(3) == 2

    assert_params_equal(params(a), params(b))
    assert_tree_equal(a.optimizer.state_dict(), b.optimizer.state_dict())
    assert (a.state.step, a.state.epoch) == (b.state.step, b.state.epoch) == (2, 0)
    assert len(a.history) == len(b.history) == 2
    assert (a.lr, a.batch_size) == (b.lr, b.batch_size)
    assert a.next_stage == b.next_stage == "forward"
    out_a, out_b = a.forward(), b.forward()
    assert torch.equal(a.batch[0], b.batch[0]) and torch.equal(a.batch[1], b.batch[1])
    assert torch.equal(out_a, out_b)
    ra, rb = Recorder(a), Recorder(b)
    ra.step(6)
    rb.step(6)
    ra.assert_same(rb)


def test_rewind_depth_counts_updates_and_too_far_changes_nothing():
    loop = make_loop("adam")
    assert loop.rewind_depth == 0
    with pytest.raises(ValueError):
        loop.rewind(1)
    for _ in range(4):
        loop.step()
    assert loop.rewind_depth == 4
    before, opt = params(loop), loop.optimizer.state_dict()
    for bad in [5, 100, 0, -1, True, 1.0, "1"]:
        with pytest.raises(ValueError):
            loop.rewind(bad)
    assert loop.state.step == 4 and len(loop.history) == 4 and loop.rewind_depth == 4
    assert_params_equal(params(loop), before)
    assert_tree_equal(loop.optimizer.state_dict(), opt)
    assert loop.rewind(4) == 0
    assert loop.rewind_depth == 0 and len(loop.history) == 0


def test_rewind_mid_batch_drops_the_open_batch():
    loop = make_loop("sgd")
    loop.step()
    at_one = params(loop)
    loop.step()
    loop.forward()
    loop.loss()
    assert loop.rewind(1) == 1
    assert loop.next_stage == "forward" and loop.batch is None
    assert_params_equal(params(loop), at_one)


def test_step_whose_batch_a_handler_rewound_returns_where_the_loop_is_now():
    loop = make_loop("sgd")
    loop.step()
    loop.step()
    handle = loop.on("after_backward", lambda lp: lp.rewind(1))
    log = loop.step()  # the third batch is dropped by the rewind: no update, no loss to report
    handle.remove()
    assert loop.state.step == 1
    assert log == {"step": 1, "epoch": 0, "status": "restored", "restored": True} and loop.last_log == log


def test_rewind_memory_stays_within_budget_over_10000_steps():
    torch.manual_seed(0)
    loop = tl.Loop(nn.Linear(2, 1), (torch.randn(8, 2), torch.randn(8, 1)), "mse", "sgd", lr=0.01,
                   batch_size=3, rewind_memory_mb=0.05)
    keyframes = loop._time.keyframes
    budget = keyframes.budget_bytes
    assert budget == int(0.05 * 2**20)
    recent: dict[int, list[torch.Tensor]] = {}
    worst = 0
    for i in range(10_000):
        loop.step()
        worst = max(worst, keyframes.nbytes)
        if i >= 9_800:
            recent[loop.state.step] = params(loop)
    assert worst <= budget
    depth = loop.rewind_depth
    assert 1 <= depth < 200  # old keyframes were dropped, recent ones kept
    assert len(keyframes) * loop.snapshot().nbytes <= budget  # one full copy per keyframe, not per step
    assert depth >= (len(keyframes) - 1) * keyframes.interval  # a keyframe every `interval` steps
    with pytest.raises(ValueError):
        loop.rewind(depth + 1)
    assert loop.rewind(depth) == 10_000 - depth
    assert_params_equal(params(loop), recent[10_000 - depth])
    assert len(loop.history) == 10_000 - depth


# --- reset ---------------------------------------------------------------------------------


def test_reset_returns_to_the_initial_weights_and_keeps_lr_and_batch_size():
    loop = make_loop("adam")
    initial = params(loop)
    for _ in range(3):
        loop.step()
    loop.lr = 0.03
    loop.batch_size = 4
    for _ in range(3):
        loop.step()
    loop.forward()
    old_losses = loop.history.steps["loss"].copy()

    loop.reset()
    assert_params_equal(params(loop), initial)
    assert (loop.state.step, loop.state.epoch, len(loop.history)) == (0, 0, 0)
    assert loop.next_stage == "forward" and loop.batch is None
    assert loop.lr == 0.03 and loop.batch_size == 4
    assert loop.optimizer.state_dict()["state"] == {}
    assert loop.history.history["loss"] == []
    branch = loop.history.branches[-1]
    assert branch.start_step == 0
    np.testing.assert_array_equal(branch.steps["loss"], old_losses)

    # from the reset, training is exactly that of a fresh loop with the new settings
    fresh = make_loop("adam", lr=0.03, batch_size=4)
    ra, rb = Recorder(loop), Recorder(fresh)
    ra.step(7)
    rb.step(7)
    ra.assert_same(rb)


# --- the optimizer copy behind every snapshot ------------------------------------------------


def _trained_optimizer(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.5}]
    optimizer = {"sgd": lambda: torch.optim.SGD(groups, lr=0.1, momentum=0.9),
                 "adam": lambda: torch.optim.Adam(groups, lr=0.1),
                 "rmsprop": lambda: torch.optim.RMSprop(groups, lr=0.1)}[name]()
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_the_optimizer_copy_equals_its_state_dict_and_shares_nothing(name):
    model, optimizer = _trained_optimizer(name)
    copy = tl.snapshot.copy_optimizer_state(optimizer)
    assert_tree_equal(copy, optimizer.state_dict())
    kept = clone_tree(copy)
    for per_param in optimizer.state.values():  # the optimizer moves on; the copy must not
        for value in per_param.values():
            if isinstance(value, torch.Tensor):
                value.add_(1.0)
    optimizer.param_groups[1]["lr"] = 0.01
    assert_tree_equal(copy, kept)
    assert_tree_equal(tl.snapshot.copy_optimizer_state(optimizer), optimizer.state_dict())


def test_the_optimizer_copy_follows_changed_groups_and_honours_custom_state_dicts():
    model, optimizer = _trained_optimizer("adam")
    optimizer.add_param_group({"params": [nn.Parameter(torch.ones(2))], "lr": 0.2})
    assert_tree_equal(tl.snapshot.copy_optimizer_state(optimizer), optimizer.state_dict())
    optimizer.param_groups[0]["params"].append(nn.Parameter(torch.zeros(3)))  # "unfreeze" in place
    assert_tree_equal(tl.snapshot.copy_optimizer_state(optimizer), optimizer.state_dict())

    class CountingSGD(torch.optim.SGD):
        def state_dict(self):
            state = super().state_dict()
            state["param_groups"][0]["count"] = 5
            return state
    counting = CountingSGD(model.parameters(), lr=0.1)
    assert tl.snapshot.copy_optimizer_state(counting)["param_groups"][0]["count"] == 5

    def mark(opt, state):
        state["param_groups"][0]["marked"] = True
    optimizer.register_state_dict_post_hook(mark)
    assert tl.snapshot.copy_optimizer_state(optimizer)["param_groups"][0]["marked"] is True


def test_an_excursion_leaves_the_loop_exactly_as_a_twin_that_never_made_it():
    loop, twin = make_loop("adam"), make_loop("adam")
    for each in (loop, twin):
        for _ in range(5):  # mid-epoch: the data position and the random stream matter
            each.step()
    seen = []
    loop.on("after_update", lambda lp: seen.append(lp.state.step))
    history_rows, depth = len(loop.history), loop.rewind_depth
    with loop.excursion():
        loop.lr = 0.5
        for _ in range(7):
            loop.step()
        assert loop.state.step == 12
    assert seen == [] and loop.lr == twin.lr and loop.state == twin.state  # no handler saw its steps
    assert len(loop.history) == history_rows and loop.rewind_depth == depth
    assert_params_equal(params(loop), params(twin))
    assert [loop.step()["loss"] for _ in range(6)] == [twin.step()["loss"] for _ in range(6)]


def test_replacing_swaps_attributes_for_a_block_and_puts_them_back_even_after_an_error():
    from trainlab.time_travel import replacing

    loop = make_loop()
    history = loop.history
    with pytest.raises(RuntimeError):
        with replacing(loop, history=None, seed=7):
            assert loop.history is None and loop.seed == 7
            raise RuntimeError("inside")
    assert loop.history is history and loop.seed == 0
