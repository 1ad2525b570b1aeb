"""NaN/inf: the stage that meets one raises NonFiniteError naming where; weights never take it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import trainlab as tl


def params(loop: tl.Loop) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loop.model.parameters()]


def assert_params_equal(a, b) -> None:
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def exploding_loop(lr: float = 10.0) -> tl.Loop:
    """The seed-000 linear regression, full batch, with a learning rate far too big."""
    torch.manual_seed(0)
    X, y = torch.randn(100, 10), torch.randn(100, 1)
    model = nn.Linear(10, 1)
    return tl.Loop(model, (X, y), "mse", "sgd", lr=lr, batch_size=100, shuffle=False)


class SqrtShift(nn.Module):
    """Adds sqrt(b) with b = 0: the output is finite, but d sqrt(b)/db = inf."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sqrt(self.b)


class Scale(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def regression_data(n: int = 12, features: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(n, features, generator=g), torch.randn(n, 1, generator=g)


# --- the exploding run ------------------------------------------------------------------------


def test_an_exploding_run_raises_keeps_the_weights_finite_and_can_be_rescued():
    loop = exploding_loop(lr=10.0)
    last_good = None
    for _ in range(200):
        before = params(loop)
        step, n_hist = loop.state.step, len(loop.history)
        try:
            loop.step()
        except tl.NonFiniteError as error:
            caught = error
            break
        last_good = loop.last_log["loss"]
    else:
        pytest.fail("lr=10 on the seed-000 linear model never produced a non-finite value")
    assert caught.stage in ("loss", "backward")
    assert caught.where == "loss" or caught.where in dict(loop.model.named_parameters())
    assert caught.where in str(caught)
    assert "rewind" in str(caught)  # says what to do next
    assert math.isfinite(last_good) and last_good > 1e6  # it really was exploding
    # the failing step changed nothing: no update, no history row, every weight finite
    assert_params_equal(params(loop), before)
    assert all(bool(torch.isfinite(p).all()) for p in loop.model.parameters())
    assert (loop.state.step, len(loop.history)) == (step, n_hist)
    assert loop.next_stage == "forward"
    with pytest.raises(tl.StageError):
        loop.update()
    # the same batch comes again, so the same error comes again
    with pytest.raises(tl.NonFiniteError):
        loop.step()
    assert_params_equal(params(loop), before)

    # rescue: undo most of the explosion, lower the lr, continue
    steps = loop.rewind(loop.state.step - 1)
    assert steps == 1 and len(loop.history) == 1
    loop.lr = 0.01
    losses = [loop.step()["loss"] for _ in range(30)]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert len(loop.history) == loop.state.step == 31


def test_a_nan_loss_names_the_loss():
    X, y = regression_data()
    y[4, 0] = float("nan")
    torch.manual_seed(0)
    loop = tl.Loop(nn.Linear(3, 1), (X, y), "mse", "sgd", lr=0.1, batch_size=4, shuffle=False)
    loop.step()  # samples 0-3 are fine
    before = params(loop)
    loop.forward()
    with pytest.raises(tl.NonFiniteError) as info:
        loop.loss()
    assert (info.value.stage, info.value.where) == ("loss", "loss")
    assert "nan" in str(info.value).lower()
    assert_params_equal(params(loop), before)
    assert loop.state.step == 1 and len(loop.history) == 1
    assert loop.next_stage == "forward"


def test_backward_names_the_first_parameter_in_module_order_with_a_non_finite_gradient():
    # parameters in module order: 0.weight, 0.bias, 1.s, 2.b, 3.b; both sqrt shifts get inf gradients
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1), Scale(1), SqrtShift(1), SqrtShift(1))
    X, y = regression_data()
    loop = tl.Loop(model, (X, y), "mse", "sgd", lr=0.1, batch_size=4)
    before = params(loop)
    loop.forward()
    loss = loop.loss()
    assert math.isfinite(loss.item())  # the loss itself is fine
    with pytest.raises(tl.NonFiniteError) as info:
        loop.backward()
    assert (info.value.stage, info.value.where) == ("backward", "2.b")
    assert "2.b" in str(info.value)
    assert loop.next_stage == "forward"
    with pytest.raises(tl.StageError):
        loop.update()
    assert_params_equal(params(loop), before)
    assert loop.state.step == 0 and len(loop.history) == 0


def test_backward_does_not_blame_the_first_parameter_when_a_later_one_is_at_fault():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1), SqrtShift(1))
    X, y = regression_data()
    loop = tl.Loop(model, (X, y), "mse", "adam", lr=0.1, batch_size=4)
    with pytest.raises(tl.NonFiniteError) as info:
        loop.step()
    assert info.value.where == "3.b"
    assert loop.optimizer.state_dict()["state"] == {}  # Adam never saw the gradient either


def test_a_huge_but_finite_gradient_is_not_an_error():
    """1e20 per entry is finite, but its float32 norm overflows: judge the gradient, not its norm."""
    torch.manual_seed(0)
    X = torch.ones(8, 16)
    y = torch.zeros(8, 1)
    model = nn.Linear(16, 1)

    def huge_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs - targets).mean() * 1e20  # d loss / d weight = 1e20 per entry

    loop = tl.Loop(model, (X, y), huge_loss, "sgd", lr=1e-22, batch_size=8, shuffle=False)
    assert not math.isfinite(torch.linalg.vector_norm(torch.full((16,), 1e20)).item())  # the trap
    before = params(loop)
    loop.forward()
    loop.loss()
    norms = loop.backward()
    assert torch.isfinite(model.weight.grad).all() and model.weight.grad.abs().max() >= 1e19
    assert math.isfinite(norms["weight"]) and norms["weight"] == pytest.approx(4e20, rel=1e-5)
    log = loop.update()
    assert math.isfinite(log["grad_norm"]) and log["grad_norm"] > 1e20
    assert loop.state.step == 1
    assert not torch.equal(params(loop)[0], before[0])  # it did update
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


# --- skip_batch ---------------------------------------------------------------------------------


def test_skip_batch_skips_a_poisoned_batch_and_keeps_training():
    X, y = regression_data(n=20)
    y[5, 0] = float("inf")  # poisons the second batch (samples 4-7) of every epoch
    torch.manual_seed(0)
    loop = tl.Loop(nn.Linear(3, 1), (X, y), "mse", "sgd", lr=0.05, batch_size=4, shuffle=False,
                   on_nonfinite="skip_batch")
    loop.step()
    before = params(loop)
    loop.step()  # the poisoned batch: skipped, no error, no update
    assert loop.state.skipped == 1 and loop.state.step == 1
    assert_params_equal(params(loop), before)
    assert loop.next_stage == "forward"
    loop.fit(epochs=2)
    assert loop.state.epoch == 2
    assert loop.state.skipped == 2
    assert loop.state.step == 8  # 5 batches per epoch, one skipped in each
    assert len(loop.history) == loop.state.step
    assert all(math.isfinite(v) for v in loop.history.steps["loss"].tolist())
    assert all(bool(torch.isfinite(p).all()) for p in loop.model.parameters())


def test_skip_batch_skips_non_finite_gradients_without_updating():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1), SqrtShift(1))  # every batch has an inf gradient
    X, y = regression_data(n=12)
    loop = tl.Loop(model, (X, y), "mse", "adam", lr=0.1, batch_size=4, on_nonfinite="skip_batch")
    before = params(loop)
    loop.run_epoch()
    assert loop.state.epoch == 1 and loop.state.skipped == 3 and loop.state.step == 0
    assert len(loop.history) == 0
    assert_params_equal(params(loop), before)


def test_on_nonfinite_must_be_a_known_option():
    X, y = regression_data()
    with pytest.raises(ValueError):
        tl.Loop(nn.Linear(3, 1), (X, y), "mse", on_nonfinite="ignore")


def test_a_batch_put_back_after_a_nan_is_retried_with_the_same_random_numbers():
    """With dropout, the retry of a refused batch gives exactly what a first try would have."""
    poison = {"at": None}

    def loss_fn(outputs, targets):  # NaN once, on the call poison["at"] names
        loss = nn.functional.mse_loss(outputs, targets)
        if poison["at"] == 0:
            loss = loss * float("nan")
        poison["at"] = None if poison["at"] is None else poison["at"] - 1
        return loss

    def make() -> tl.Loop:
        torch.manual_seed(0)
        X, y = torch.randn(40, 4), torch.randn(40, 1)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
        return tl.Loop(model, (X, y), loss_fn, "sgd", lr=0.05, batch_size=8)

    twin, loop = make(), make()
    expected = [twin.step()["loss"] for _ in range(4)]
    loop.step()
    poison["at"] = 0
    with pytest.raises(tl.NonFiniteError):
        loop.step()
    assert [loop.step()["loss"] for _ in range(3)] == expected[1:]
    assert_params_equal(params(loop), params(twin))


def test_a_nan_in_the_data_is_named_as_bad_data_not_a_too_large_learning_rate():
    X, y = regression_data()
    X[5, 1] = float("nan")
    torch.manual_seed(0)
    loop = tl.Loop(nn.Linear(3, 1), (X, y), "mse", "sgd", lr=0.1, batch_size=4, shuffle=False)
    loop.step()
    with pytest.raises(tl.NonFiniteError, match="batch's inputs hold NaN or infinite values.*skip_batch"):
        loop.step()
