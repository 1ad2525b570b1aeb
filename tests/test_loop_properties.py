"""A property test: random sequences of stage calls, hyperparameter changes and time travel.

Every call either succeeds or raises the documented error (StageError, ValueError), and
afterwards the loop's invariants hold: the stage order, every training sample used exactly
once per epoch (whatever the batch sizes and jumps in time), the weights and the history
matching the completed steps of the current line, and time travel going back exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from torch import nn

import trainlab as tl

N = 13  # training samples: batches rarely divide it evenly
STAGES = ("forward", "loss", "backward", "update")


class IgnoreIndex(nn.Module):
    """Column 0 of each input is the sample's index (for the test to read); the model skips it."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.25)
        self.lin = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.drop(x[:, 1:]))


def indexed_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    X = torch.cat([torch.arange(N, dtype=torch.float32)[:, None], torch.randn(N, 2, generator=g)], 1)
    return X, torch.randn(N, 1, generator=g)


VALID_LRS = [1e-4, 0.001, 0.01, 0.05, np.float64(0.02)]
INVALID_LRS = [0, 0.0, -1, -0.01, float("nan"), float("inf"), -float("inf"), True, False, "0.1", None, [0.1]]
VALID_BATCH_SIZES = [1, 2, 3, 4, 5, 7, N, 50, np.int64(3)]
INVALID_BATCH_SIZES = [0, -1, float("nan"), float("inf"), True, False, "4", 2.5, None, -3]


def same_params(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


class Point:
    """What the test knows about the loop after a completed step of the current line."""

    def __init__(self, epoch: int, used: frozenset[int], params: list[torch.Tensor], loss: float | None):
        self.epoch = epoch  # completed epochs
        self.used = used  # samples of the current epoch already trained on
        self.params = params
        self.loss = loss  # the loss of the step that led here
        self.next_batches: dict[int, list[int]] = {}  # batch size -> the batch that came next from here


class LoopMachine(RuleBasedStateMachine):
    snapshots = Bundle("snapshots")

    @initialize(optimizer=st.sampled_from(["sgd", "adam"]))
    def build(self, optimizer):
        torch.manual_seed(0)
        self.loop = tl.Loop(IgnoreIndex(), indexed_data(), "mse", optimizer, lr=0.01, batch_size=4,
                            shuffle=True, seed=0, rewind_memory_mb=0.05)  # room for a handful of steps
        self.forwarded: list[list[int]] = []
        self.loop.on("after_forward", lambda lp: self.forwarded.append(lp.batch[0][:, 0].long().tolist()))
        self.line = [Point(0, frozenset(), self.params(), None)]  # index = completed steps
        self.stage = 0  # the stage due, as an index into STAGES
        self.open_batch: list[int] | None = None
        self.open_loss: float | None = None

    # --- helpers --------------------------------------------------------------------------

    def params(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.loop.model.parameters()]

    def call_stage(self, name: str) -> None:
        due = STAGES[self.stage]
        if name != due:
            n_forwarded = len(self.forwarded)
            event("stage out of order")
            with pytest.raises(tl.StageError, match=rf"\b{due}\b"):  # the message names the due stage
                getattr(self.loop, name)()
            assert len(self.forwarded) == n_forwarded
            return
        batch_size, n_forwarded = self.loop.batch_size, len(self.forwarded)
        result = getattr(self.loop, name)()
        assert len(self.forwarded) == n_forwarded + (name == "forward")
        if name == "forward":
            self.opened(batch_size)
        elif name == "loss":
            assert isinstance(result, torch.Tensor) and result.dim() == 0
            self.open_loss = result.item()
        elif name == "backward":
            assert set(result) == {n for n, _ in self.loop.model.named_parameters()}
        else:
            assert result["loss"] == self.open_loss
            self.completed()
        self.stage = (self.stage + 1) % 4

    def opened(self, batch_size: int) -> None:
        """A forward() opened a batch: check it takes the next unused samples of the epoch."""
        assert len(self.forwarded) >= 1
        batch = self.forwarded[-1]
        point = self.line[-1]
        remaining = N - len(point.used)
        assert len(batch) == len(set(batch)) == min(batch_size, remaining)
        assert not set(batch) & point.used, "a sample was used twice in one epoch"
        # the same state and batch size always give the same batch (restores included)
        expected = point.next_batches.setdefault(batch_size, batch)
        assert batch == expected
        self.open_batch = batch

    def completed(self) -> None:
        """An update() closed the open batch."""
        point = self.line[-1]
        used = point.used | set(self.open_batch)
        epoch = point.epoch
        if len(used) == N:  # every sample used exactly once: the epoch ends with this update
            epoch, used = epoch + 1, set()
            event("epoch ended")
        self.line.append(Point(epoch, frozenset(used), self.params(), self.open_loss))
        self.open_batch = None
        self.open_loss = None

    def jumped(self, line: list[Point]) -> None:
        self.line = list(line)
        self.stage = 0
        self.open_batch = None
        self.open_loss = None

    # --- rules: the stages ----------------------------------------------------------------

    @rule(name=st.sampled_from(STAGES))
    def stage_call(self, name):
        self.call_stage(name)

    @rule()
    def due_stage(self):
        self.call_stage(STAGES[self.stage])

    @rule(k=st.integers(1, 8))
    def several_steps(self, k):
        for _ in range(k):
            self.step()

    @rule()
    def step(self):
        """step() runs what is left of the open batch, or a whole new one."""
        batch_size = self.loop.batch_size
        was_open = self.stage > 0
        n_forwarded = len(self.forwarded)
        log = self.loop.step()
        assert len(self.forwarded) == n_forwarded + (0 if was_open else 1)
        if not was_open:
            self.opened(batch_size)
        if self.open_loss is not None:
            assert log["loss"] == self.open_loss
        self.open_loss = log["loss"]
        self.completed()
        self.stage = 0

    # --- rules: live hyperparameters -----------------------------------------------------------

    @rule(value=st.sampled_from(VALID_LRS + INVALID_LRS))
    def set_lr(self, value):
        before, n_changes = self.loop.lr, len(self.loop.history.changes)
        valid = any(value is v for v in VALID_LRS)
        if valid:
            self.loop.lr = value
            assert self.loop.lr == float(value)
            assert self.loop.history.changes[-1] == (self.loop.state.step, "lr", float(value))
        else:
            with pytest.raises(ValueError):
                self.loop.lr = value
            assert self.loop.lr == before and len(self.loop.history.changes) == n_changes

    @rule(value=st.sampled_from(VALID_BATCH_SIZES + INVALID_BATCH_SIZES))
    def set_batch_size(self, value):
        before, n_changes = self.loop.batch_size, len(self.loop.history.changes)
        valid = any(value is v for v in VALID_BATCH_SIZES)
        if valid:
            self.loop.batch_size = value
            assert self.loop.batch_size == int(value)
            assert self.loop.history.changes[-1] == (self.loop.state.step, "batch_size", int(value))
        else:
            with pytest.raises(ValueError):
                self.loop.batch_size = value
            assert self.loop.batch_size == before and len(self.loop.history.changes) == n_changes

    # --- rules: time travel ------------------------------------------------------------------------

    @rule(target=snapshots)
    def snapshot(self):
        snap = self.loop.snapshot()
        at_boundary = self.stage == 0
        hyper = (self.loop.lr, self.loop.batch_size) if at_boundary else None
        assert snap.step == self.loop.state.step
        return snap, list(self.line), hyper

    @rule(saved=snapshots)
    def restore(self, saved):
        snap, line, hyper = saved
        self.loop.restore(snap)
        event("restore")
        self.jumped(line)
        if hyper is not None:
            assert (self.loop.lr, self.loop.batch_size) == hyper
        assert self.loop.rewind_depth == 0

    @rule(steps=st.integers(1, 7))
    def rewind(self, steps):
        depth = self.loop.rewind_depth
        assert 0 <= depth <= self.loop.state.step
        event("rewind too far" if steps > depth else "rewind")
        if steps > depth:
            stage, n_forwarded, before = self.loop.next_stage, len(self.forwarded), self.params()
            with pytest.raises(ValueError):
                self.loop.rewind(steps)
            assert self.loop.next_stage == stage and len(self.forwarded) == n_forwarded
            assert same_params(self.params(), before)
            return
        assert self.loop.rewind(steps) == len(self.line) - 1 - steps
        self.jumped(self.line[: len(self.line) - steps])
        assert self.loop.rewind_depth == depth - steps

    @rule(steps=st.sampled_from([0, -1, True, 1.5, "1"]))
    def rewind_bad_argument(self, steps):
        stage = self.loop.next_stage
        with pytest.raises(ValueError):
            self.loop.rewind(steps)
        assert self.loop.next_stage == stage

    @rule()
    def reset(self):
        lr, batch_size = self.loop.lr, self.loop.batch_size
        self.loop.reset()
        self.jumped(self.line[:1])
        assert (self.loop.lr, self.loop.batch_size) == (lr, batch_size)
        assert self.loop.rewind_depth == 0

    # --- invariants ---------------------------------------------------------------------------------

    @invariant()
    def stage_order(self):
        assert self.loop.next_stage == STAGES[self.stage]
        assert (self.loop.batch is None) == (self.stage == 0)
        if self.open_batch is not None:
            assert self.loop.batch[0][:, 0].long().tolist() == self.open_batch

    @invariant()
    def counters_and_history_follow_the_line(self):
        point = self.line[-1]
        steps = len(self.line) - 1
        assert self.loop.state.step == steps
        assert len(self.loop.history) == steps
        assert self.loop.state.epoch == point.epoch
        assert len(self.loop.history.epoch) == point.epoch
        assert len(self.loop.history.history["loss"]) == point.epoch
        losses = np.asarray([p.loss for p in self.line[1:]], np.float32)
        np.testing.assert_array_equal(self.loop.history.steps["loss"], losses)
        assert self.loop.rewind_depth <= steps

    @invariant()
    def weights_are_those_of_the_last_completed_step(self):
        assert same_params(self.params(), self.line[-1].params)
        assert all(math.isfinite(v) for v in self.loop.history.steps["loss"].tolist())


LoopMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_loop_state_machine = LoopMachine.TestCase
