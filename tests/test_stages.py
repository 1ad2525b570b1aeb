"""The four stages: their order, what they return, and that a refused call changes nothing."""

import pytest
import torch
from torch import nn

import trainlab as tl
from loops import moons_loop


def make_loop(**options):
    return moons_loop(n=120, hidden=[8], activation="tanh", **{"batch_size": 32, **options})


def fingerprint(loop):
    """Everything a refused call must leave as it was."""
    return (
        loop.next_stage, loop.state.step, loop.state.epoch, loop.epoch_progress, len(loop.history),
        [p.detach().clone() for p in loop.model.parameters()],
        None if loop.batch is None else [t.clone() for t in loop.batch],
    )


def assert_same(a, b):
    assert a[:5] == b[:5]
    assert all(torch.equal(x, y) for x, y in zip(a[5], b[5]))
    assert (a[6] is None) == (b[6] is None)
    if a[6] is not None:
        assert all(torch.equal(x, y) for x, y in zip(a[6], b[6]))


def test_a_step_stage_by_stage_returns_what_the_contract_says():
    loop = make_loop()
    assert loop.next_stage == "forward"
    out = loop.forward()
    assert out.shape == (32, 2) and loop.next_stage == "loss"
    inputs, targets = loop.batch
    assert inputs.shape == (32, 2) and targets.shape == (32,)
    loss = loop.loss()
    assert loss.dim() == 0 and loss.requires_grad and loss.grad_fn is not None
    assert loop.next_stage == "backward"
    grads = loop.backward()
    assert set(grads) == {name for name, _ in loop.model.named_parameters()}
    for name, p in loop.model.named_parameters():
        assert p.grad is not None
        assert grads[name] == pytest.approx(p.grad.norm().item(), rel=1e-5)
    before = [p.detach().clone() for p in loop.model.parameters()]
    log = loop.update()
    assert loop.next_stage == "forward" and loop.batch is None
    assert log["step"] == 1 and log["loss"] == pytest.approx(loss.item())
    assert {"loss", "accuracy", "lr", "batch_size", "grad_norm"} <= set(log)
    after = list(loop.model.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))
    # Gradients are still there to look at after the update.
    assert all(p.grad is not None for p in loop.model.parameters())
    assert loop.state.step == 1


@pytest.mark.parametrize("done", [0, 1, 2, 3])
def test_every_out_of_order_stage_is_refused_and_changes_nothing(done):
    loop = make_loop()
    stages = ["forward", "loss", "backward", "update"]
    for stage in stages[:done]:
        getattr(loop, stage)()
    for stage in stages:
        if stage == stages[done]:
            continue
        before = fingerprint(loop)
        with pytest.raises(tl.StageError, match=f"next stage is {stages[done]}"):
            getattr(loop, stage)()
        assert_same(before, fingerprint(loop))
    assert issubclass(tl.StageError, RuntimeError)


def test_step_finishes_an_open_batch_or_runs_a_whole_one():
    loop = make_loop()
    loop.forward()
    loop.loss()
    log = loop.step()
    assert log["step"] == 1 and loop.next_stage == "forward"
    log = loop.step()
    assert log["step"] == 2 and loop.state.step == 2


def test_step_goes_on_from_wherever_a_handler_left_the_batch():
    loop = make_loop()
    losses = []
    loop.on("before_loss", lambda lp: losses.append(lp.next_stage))
    loop.on("after_forward", lambda lp: lp.loss())  # a handler may run the next stage itself
    log = loop.step()
    assert losses == ["loss"]  # step() did not compute the loss a second time
    assert log["step"] == 1 and loop.next_stage == "forward"


def test_a_subclass_that_redefines_a_stage_has_it_run_by_step_and_fit():
    class CountingLoop(tl.Loop):
        calls = 0

        def loss(self):
            CountingLoop.calls += 1
            return super().loss()

    X, y = tl.datasets.moons(n=120, noise=0.2, seed=0)
    loop = CountingLoop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", batch_size=40)
    loop.fit(epochs=1)
    loop.step()
    assert CountingLoop.calls == 4 and loop.state.step == 4  # 3 batches an epoch, then one more
    assert tl.Loop._stage_methods["loss"] == "_loss"  # the plain Loop still skips the public checks


def test_backward_zeroes_gradients_first_so_they_never_accumulate():
    loop = make_loop(shuffle=False)
    loop.forward(); loop.loss(); first = {k: v for k, v in loop.backward().items()}
    # Recompute the same batch's gradient by hand: it must equal the loop's, not twice it.
    model = loop.model
    x, y = loop.batch
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad.norm().item() == pytest.approx(first[name], rel=1e-6)


def test_validation_runs_in_eval_mode_without_gradients_and_training_in_train_mode():
    modes = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tl.models.mlp(2, [8], 2, seed=0)

        def forward(self, x):
            modes.append((self.training, torch.is_grad_enabled()))
            return self.net(x)

    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(Spy(), (X, y), "cross_entropy", batch_size=100, validation_split=0.2)
    modes.clear()
    loop.step()  # one batch is the whole training split, so the epoch ends and validates
    assert modes == [(True, True), (False, False)]


def test_events_fire_in_stage_order_and_handles_remove():
    loop = make_loop(batch_size=40)
    seen = []
    handles = [loop.on(name, lambda lp, name=name: seen.append(name)) for name in tl.EVENTS
               if name not in ("after_change", "after_restore")]
    loop.fit(epochs=1)
    n_batches = 3  # 120 training samples in batches of 40
    per_batch = ["before_forward", "after_forward", "before_loss", "after_loss",
                 "before_backward", "after_backward", "before_update", "after_update"]
    expected = ["before_fit", "before_epoch"] + per_batch * n_batches + ["after_epoch", "after_fit"]
    assert seen == expected
    for handle in handles:
        handle.remove()
    seen.clear()
    loop.step()
    assert seen == []


def test_unknown_event_and_bad_handler_are_refused():
    loop = make_loop()
    with pytest.raises(ValueError, match="unknown event"):
        loop.on("after_lunch", print)
    with pytest.raises(ValueError, match="callable"):
        loop.on("after_update", 3)


def test_open_batch_is_a_read_only_view_of_what_the_stages_filled_in():
    loop = make_loop()
    assert loop.open_batch is None
    outputs = loop.forward()
    view = loop.open_batch
    assert view.next_stage == "loss" and view.outputs is outputs and view.loss is None
    assert torch.equal(view.inputs, loop.batch[0]) and torch.equal(view.targets, loop.batch[1])
    with pytest.raises(AttributeError):
        view.outputs = None  # a view: the loop's batch is not changed through it
    loop.loss(); norms = loop.backward()
    view = loop.open_batch
    assert view.next_stage == "update" and view.grad_norms == norms
    view.grad_norms.clear()  # a copy: the loop's own norms stay
    assert loop.last_grad_norms == norms
