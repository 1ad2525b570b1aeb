"""tl.check_step and tl.check_loop: each classic mistake is caught at its stage and named; correct loops pass;
the loop is left bit for bit as it was."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainlab as tl
from trainlab.mistakes import MISTAKES

# --- the learner's code: the seeds' loop, and each classic mistake put into it --------------------


def seeds_step(model, optimizer, loss_fn, inputs, targets):
    """The seeds' hand-written loop body (zero_grad first, as the second seed writes it)."""
    optimizer.zero_grad()
    outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    loss.backward()
    optimizer.step()
    return loss


def first_seed_step(model, optimizer, loss_fn, inputs, targets):
    """The first seed's order: forward and loss, then zero_grad, backward and step; it returns loss.item()."""
    outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def train_mode_step(model, optimizer, loss_fn, inputs, targets):
    model.train()
    return seeds_step(model, optimizer, loss_fn, inputs, targets)


def forgot_zero_grad(model, optimizer, loss_fn, inputs, targets):
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def step_before_backward(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    optimizer.step()
    loss.backward()
    return loss


def forgot_step(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    return loss


def eval_mode(model, optimizer, loss_fn, inputs, targets):
    model.eval()
    return seeds_step(model, optimizer, loss_fn, inputs, targets)


def softmax_before_loss(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    probabilities = torch.softmax(model(inputs), dim=1)
    loss = loss_fn(probabilities, targets)
    loss.backward()
    optimizer.step()
    return loss


def loss_summed(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    loss = nn.CrossEntropyLoss(reduction="sum")(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def loss_not_reduced(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    loss = nn.CrossEntropyLoss(reduction="none")(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def loss_item(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets).item()
    loss.backward()
    optimizer.step()
    return loss


def loss_item_rewrapped(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    loss = torch.tensor(loss_fn(model(inputs), targets).item(), requires_grad=True)
    loss.backward()
    optimizer.step()
    return loss


def detached_outputs(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    outputs = model(inputs).detach()
    loss = loss_fn(outputs, targets)
    loss.backward()
    optimizer.step()
    return loss


def labels_shuffled(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    shuffled = targets[torch.randperm(len(targets))]
    loss = loss_fn(model(inputs), shuffled)
    loss.backward()
    optimizer.step()
    return loss


def lr_ten_times(model, optimizer, loss_fn, inputs, targets):
    """A hand-made update with a learning rate ten times the loop's (0.1): p -= 1.0 * p.grad."""
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 1.0 * p.grad
    return loss


# name: (the learner's step, the stage where it first shows, the words the advice must hold)
MISTAKEN_STEPS = {
    "forgot_zero_grad": (forgot_zero_grad, "backward", "zero_grad()"),
    "step_before_backward": (step_before_backward, "backward", "optimizer.step() ran before loss.backward()"),
    "forgot_step": (forgot_step, "update", "optimizer.step()"),
    "softmax_before_loss": (softmax_before_loss, "loss", "softmax"),
    "loss_summed": (loss_summed, "loss", "sum"),
    "loss_not_reduced": (loss_not_reduced, "loss", "mean"),
    "loss_item": (loss_item, "backward", ".item()"),
    "detached_outputs": (detached_outputs, "backward", ".detach()"),
    "labels_shuffled": (labels_shuffled, "loss", "shuffled separately"),
    "lr_magnitude": (lr_ten_times, "update", "learning rate"),
}


# --- the models: an MLP, the digits CNN, BatchNorm + Dropout, an LSTM ----------------------------------


class SequenceClassifier(nn.Module):
    """An LSTM over (batch, 5, 4) sequences; the last hidden state -> 2 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


def mlp_loop(**options):
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    return tl.Loop(tl.models.mlp(2, [16, 16], 2, seed=0), (X, y), "cross_entropy", lr=0.1, batch_size=32,
                   **options)


def cnn_loop():
    X, y = tl.datasets.digits(n=256)
    return tl.Loop(tl.models.cnn(seed=0), (X, y), "cross_entropy", lr=0.3, batch_size=64)


def bn_dropout_loop(data=None):
    g = torch.Generator().manual_seed(2)
    X = torch.randn(96, 10, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    return tl.Loop(model, data if data is not None else (X, y), "cross_entropy", optimizer="adam", lr=0.01,
                   batch_size=16)


def lstm_loop():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(64, 5, 4, generator=g)
    y = (X[:, :, 0].sum(1) > 0).long()
    torch.manual_seed(0)
    return tl.Loop(SequenceClassifier(), (X, y), "cross_entropy", optimizer="adam", lr=0.01, batch_size=16)


def loader_loop():
    """A DataLoader loop (the second seed's way to batch), with dropout."""
    X, y = tl.datasets.moons(n=160, noise=0.2, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=20, shuffle=True)
    return tl.Loop(tl.models.mlp(2, [16], 2, seed=0, dropout=0.2), loader, "cross_entropy", lr=0.1)


LOOPS = {"mlp": mlp_loop, "digits_cnn": cnn_loop, "batchnorm_dropout": bn_dropout_loop, "lstm": lstm_loop,
         "dataloader": loader_loop}


# --- "the loop is bit-identical before and after every check" ------------------------------------------


def fingerprint(loop: tl.Loop) -> dict:
    """Everything about a loop that a check could move: weights and buffers, gradients, optimizer state, the
    loop's place and random stream (a snapshot's state), torch's, numpy's and Python's random states, the
    counters, the stage due and the history."""
    snapshot = loop.snapshot()
    return {
        "state": snapshot.state,
        "grads": [None if p.grad is None else p.grad.clone() for p in loop.model.parameters()],
        "modes": [m.training for m in loop.model.modules()],
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
        "counters": (loop.state.epoch, loop.state.step, loop.state.skipped),
        "next_stage": loop.next_stage,
        "history": (len(loop.history), {k: v.copy() for k, v in loop.history.steps.items()},
                    len(loop.history.changes), len(loop.history.branches)),
        "lr": loop.lr,
        "last_log": dict(loop.last_log),
        "rewind_depth": loop.rewind_depth,
    }


def assert_identical(a, b, path="loop"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_identical(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def trained_mlp():
    """An MLP loop two steps in: its model holds the last step's gradients, as a hand loop's would."""
    loop = mlp_loop()
    loop.step()
    loop.step()
    return loop


# --- correct code passes --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(LOOPS))
@pytest.mark.parametrize("step", [seeds_step, first_seed_step, train_mode_step], ids=lambda f: f.__name__)
def test_the_seeds_loop_is_correct_on_every_model(kind, step):
    loop = LOOPS[kind]()
    loop.step()  # not at step 0: the model holds gradients, and (with dropout) the loop's stream has moved
    before = fingerprint(loop)
    report = tl.check_step(step, loop, steps=3)
    assert report.ok, str(report)
    assert report.steps == 3 and report.stage is None and str(report).startswith("✓")
    assert_identical(before, fingerprint(loop))


@pytest.mark.parametrize("kind", list(LOOPS))
def test_the_seeds_epoch_is_correct_on_every_model(kind):
    def my_train_epoch(model, optimizer, loss_fn, data_loader):
        model.train()
        for inputs, labels in data_loader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = loss_fn(outputs, labels)
            loss.backward()
            optimizer.step()

    loop = LOOPS[kind]()
    before = fingerprint(loop)
    report = tl.check_loop(my_train_epoch, loop)
    assert report.ok, str(report)
    assert report.steps == math.ceil(loop.n_train / loop.batch_size)  # every batch of the epoch
    assert_identical(before, fingerprint(loop))


# --- each mistake is caught, at its stage, and named ---------------------------------------------------------


@pytest.mark.parametrize("name", list(MISTAKEN_STEPS))
def test_each_mistake_is_caught_at_its_stage_and_named(name, trained_mlp):
    step, stage, words = MISTAKEN_STEPS[name]
    before = fingerprint(trained_mlp)
    report = tl.check_step(step, trained_mlp, steps=3)
    assert not report.ok and not report
    assert report.stage == stage == MISTAKES[name].stage, str(report)
    assert report.mistake == name, str(report)
    assert words in report.advice and words in str(report)
    assert_identical(before, fingerprint(trained_mlp))


def test_a_forgotten_zero_grad_shows_at_the_second_step_of_a_fresh_loop():
    loop = mlp_loop()  # step 0: no gradients yet, so the first step is right
    assert tl.check_step(forgot_zero_grad, loop).ok
    report = tl.check_step(forgot_zero_grad, loop, steps=3)
    assert (report.ok, report.step, report.stage, report.mistake) == (False, 2, "backward", "forgot_zero_grad")
    assert report.where == loop.param_names[0]
    assert isinstance(report.expected, torch.Tensor) and isinstance(report.got, torch.Tensor)


def test_eval_mode_is_caught_where_dropout_or_batchnorm_make_it_matter():
    report = tl.check_step(eval_mode, bn_dropout_loop())
    assert (report.ok, report.stage, report.mistake, report.where) == (False, "forward", "eval_mode", "outputs")
    assert "model.train()" in report.advice


def test_the_numbers_on_both_sides_are_in_the_report(trained_mlp):
    report = tl.check_step(softmax_before_loss, trained_mlp)
    loop_loss = tl.check_step(seeds_step, trained_mlp)  # the same batch: the loss the loop gets
    assert loop_loss.ok
    assert isinstance(report.expected, float) and isinstance(report.got, float)
    assert report.expected != report.got
    assert report.numbers == f"the loop's: {report.expected:.6g}; yours: {report.got:.6g}"


def test_a_step_that_raises_is_reported_not_raised(trained_mlp):
    def typo(model, optimizer, loss_fn, inputs, targets):
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        loss.bakward()

    report = tl.check_step(typo, trained_mlp)
    assert (report.ok, report.stage) == (False, "backward")
    assert "AttributeError" in report.advice and "bakward" in report.advice


def test_an_unfinished_step_says_what_is_missing(trained_mlp):
    def unfinished(model, optimizer, loss_fn, inputs, targets):
        """A learner's step not written yet: it runs nothing and returns None."""

    report = tl.check_step(unfinished, trained_mlp)
    assert (report.ok, report.stage, report.where) == (False, "forward", "outputs")
    assert "model(inputs)" in report.advice


def test_the_report_shows_itself_as_a_tick_or_the_first_difference(trained_mlp):
    good = tl.check_step(seeds_step, trained_mlp)._repr_html_()
    assert "✓" in good and "✗" not in good
    bad = tl.check_step(forgot_step, trained_mlp)._repr_html_()
    for stage in ("forward", "loss", "backward", "update"):
        assert stage in bad
    assert "✗ update" in bad and "zero_grad" not in bad and "optimizer.step()" in bad


# --- check_loop: whole epochs ----------------------------------------------------------------------------


def epoch_of(step):
    """A learner's epoch whose every batch is ``step`` (the seeds' epoch when it is seeds_step)."""
    def my_train_epoch(model, optimizer, loss_fn, data_loader):
        for inputs, labels in data_loader:
            step(model, optimizer, loss_fn, inputs, labels)
    return my_train_epoch


def test_labels_drawn_from_a_second_pass_are_caught():
    def separately(model, optimizer, loss_fn, data_loader):
        for (inputs, _), (_, labels) in zip(data_loader, data_loader):  # two passes: two orders
            seeds_step(model, optimizer, loss_fn, inputs, labels)

    loop = mlp_loop()
    before = fingerprint(loop)
    report = tl.check_loop(separately, loop)
    assert (report.ok, report.step, report.stage, report.mistake) == (False, 1, "loss", "labels_shuffled")
    assert "batch 1" in str(report)
    assert_identical(before, fingerprint(loop))


def test_an_epoch_in_eval_mode_is_caught():
    def evaluated_first(model, optimizer, loss_fn, data_loader):
        model.eval()
        epoch_of(seeds_step)(model, optimizer, loss_fn, data_loader)

    report = tl.check_loop(evaluated_first, bn_dropout_loop())
    assert (report.ok, report.stage, report.mistake) == (False, "forward", "eval_mode")


@pytest.mark.parametrize("name", ["forgot_zero_grad", "forgot_step", "step_before_backward", "softmax_before_loss",
                                  "labels_shuffled", "loss_summed"])
def test_check_loop_names_the_mistakes_of_a_step_too(name):
    step, stage, _ = MISTAKEN_STEPS[name]
    if name == "loss_summed":  # an epoch may use a loss function of its own: the gradients show the sum
        stage = "backward"
    report = tl.check_loop(epoch_of(step), mlp_loop())
    assert (report.ok, report.stage, report.mistake) == (False, stage, name), str(report)


def test_an_epoch_that_stops_early_is_caught():
    def half(model, optimizer, loss_fn, data_loader):
        for i, (inputs, labels) in enumerate(data_loader):
            if i == 2:
                break
            seeds_step(model, optimizer, loss_fn, inputs, labels)

    report = tl.check_loop(half, mlp_loop())
    assert (report.ok, report.step, report.stage) == (False, 3, "forward")
    assert "stopped after 2" in report.advice


# --- refusals ---------------------------------------------------------------------------------------------


def test_a_check_waits_for_a_batch_boundary_and_changes_nothing():
    loop = mlp_loop()
    loop.forward()
    with pytest.raises(tl.StageError, match="between batches"):
        tl.check_step(seeds_step, loop)
    assert loop.next_stage == "loss"


def test_a_check_wants_a_function():
    with pytest.raises(ValueError, match="give the function itself"):
        tl.check_step("my_step", mlp_loop())
    with pytest.raises(ValueError, match="steps"):
        tl.check_step(seeds_step, mlp_loop(), steps=0)


def test_a_loop_that_accumulates_micro_batches_is_refused():
    with pytest.raises(ValueError, match="accumulate=1"):
        tl.check_step(seeds_step, mlp_loop(accumulate=2))
