"""The zoo (issue 14): each tutorial model trains in trainlab exactly as in a hand-written PyTorch loop.

Every check runs on every entry of ``zoo_cases.ZOO``: the four stages one at a time, fit,
evaluate and predict, snapshot/restore, rewind, save/load into a new loop, a headless
dashboard, and an exact (torch.equal) match with a plain PyTorch loop after several steps.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import trainlab as tl
from trainlab.metrics import ignored_label, pick
from zoo_cases import (BATCH, HALVES, Case, assert_same_weights, build_model, call, hand_train, make_loop, part,
                       weights)

STEPS = 6  # more than one epoch (4 batches of 16 out of 64 samples; 3 for the drop_last entry)


def steps_per_epoch(case: Case) -> int:
    if case.updates_per_epoch is not None:
        return case.updates_per_epoch
    data = case.data()
    return len(data) if isinstance(data, DataLoader) else math.ceil(n_samples(data[1]) / BATCH)


def n_samples(targets) -> int:
    """The samples in a batch's targets (one tensor, or several: a tuple)."""
    return len(targets[0]) if isinstance(targets, tuple) else len(targets)


def autocast(case: Case):
    """What the case's forward pass and loss run in: autocast (precision="bf16" or "fp16"), or nothing."""
    precision = case.loop_options.get("precision")
    return torch.autocast("cpu", dtype=HALVES[precision]) if precision in HALVES else contextlib.nullcontext()


def micro_batches_before_update(loop: tl.Loop) -> None:
    """With accumulate=k: run the update's first k - 1 micro-batches, stage by stage."""
    for _ in range(loop.accumulate - 1):
        loop.forward()
        loop.loss()
        loop.backward()
        assert loop.next_stage == "forward" and loop.state.step == 0


def predict_inputs(case: Case):
    return case.inputs() if case.inputs is not None else case.data()[0]


def changed(before: dict, after: dict) -> bool:
    return any(not torch.equal(before[name], after[name]) for name in before)


def test_stages_one_at_a_time(case):
    loop = make_loop(case)
    initial = weights(loop.model)
    assert loop.next_stage == "forward"
    with pytest.raises(tl.StageError):
        loop.backward()
    micro_batches_before_update(loop)  # accumulate=k; nothing for the others

    outputs = loop.forward()
    inputs, targets = loop.batch
    assert n_samples(targets) == BATCH
    assert part(outputs, case.loop_options.get("outputs")).shape[0] == BATCH
    assert loop.next_stage == "loss"

    loss = loop.loss()
    assert loss.dim() == 0 and loss.requires_grad and torch.isfinite(loss)
    assert loop.next_stage == "backward"

    norms = loop.backward()
    assert set(norms) == set(loop.param_names)
    assert all(math.isfinite(norm) for norm in norms.values())
    assert all(p.grad is not None for p in loop.model.parameters() if p.requires_grad)
    assert loop.next_stage == "update"

    log = loop.update()
    assert log["status"] == "updated" and (log["loss"] == loss.item() or loop.accumulate > 1)
    assert loop.state.step == 1 and loop.next_stage == "forward"
    assert changed(initial, weights(loop.model))
    assert_same_weights(weights(loop.model), weights(hand_train(case, 1)[0]), "after one stage-by-stage step")


def test_matches_a_hand_written_loop(case):
    loop = make_loop(case)
    losses = [loop.step()["loss"] for _ in range(STEPS)]
    model, hand_losses = hand_train(case, STEPS)
    assert losses == hand_losses
    assert_same_weights(weights(loop.model), weights(model), f"after {STEPS} steps")


def test_fit_evaluate_predict(case):
    loop = make_loop(case)
    history = loop.fit(epochs=1)
    assert loop.state.epoch == 1 and loop.state.step == steps_per_epoch(case)
    assert len(history.history["loss"]) == 1 and math.isfinite(history.history["loss"][0])
    assert_same_weights(weights(loop.model), weights(hand_train(case, loop.state.step)[0]), "after fit(epochs=1)")

    data = case.data()
    result = loop.evaluate(data)
    assert math.isfinite(result["loss"])
    if case.loss not in ("mse",):
        assert 0.0 <= result["accuracy"] <= 1.0
    if case.random_in_eval:  # drawn from a copy of the loop's stream: the same numbers at the same point
        assert loop.evaluate(data) == result
        assert torch.equal(loop.predict(predict_inputs(case)), loop.predict(predict_inputs(case)))
        return
    if not isinstance(data, DataLoader):  # the whole data set in eval mode, without gradients
        X, y = data
        loss_fn = nn.CrossEntropyLoss() if case.loss == "cross_entropy" else nn.MSELoss() if case.loss == "mse" \
            else case.loss
        reference = build_model(case)
        reference.load_state_dict(loop.model.state_dict())
        reference.eval()
        with torch.no_grad(), autocast(case):
            expected = loss_fn(call(reference, X), y).item()
        assert result["loss"] == pytest.approx(expected, rel=1e-5, abs=1e-7)

    inputs = predict_inputs(case)
    predictions = loop.predict(inputs)
    assert loop.model.training  # predict puts train mode back
    reference = build_model(case)
    reference.load_state_dict(loop.model.state_dict())
    reference.eval()
    with torch.no_grad(), autocast(case):
        expected = part(call(reference, inputs), case.loop_options.get("outputs"))
    torch.testing.assert_close(predictions, expected)


def test_fit_counts_accuracy_in_bulk_as_each_step_would(case):
    """Issue 27: fit with no handler counts right predictions in bulk (tally.py): the numbers of each step's count."""
    quiet, watched = make_loop(case), make_loop(case)
    watched.on("after_update", lambda loop: None, observer=True)  # counted as each step ends
    for loop in (quiet, watched):
        loop.fit(epochs=2)
    for key, column in watched.history.steps.items():
        np.testing.assert_array_equal(quiet.history.steps[key], column, err_msg=key)
    # repr: NaN (an fp16 step the scaler skipped) reads the same
    assert repr((quiet.history.history, quiet.last_log)) == repr((watched.history.history, watched.last_log))
    assert_same_weights(weights(quiet.model), weights(watched.model), "after fit(epochs=2)")


def test_snapshot_restore_replays_exactly(case):
    loop = make_loop(case)
    loop.step()
    loop.step()
    snapshot = loop.snapshot()
    at_snapshot = weights(loop.model)
    losses = [loop.step()["loss"] for _ in range(3)]  # across the epoch's end
    after = weights(loop.model)

    loop.restore(snapshot)
    assert loop.state.step == 2
    assert_same_weights(weights(loop.model), at_snapshot, "after restore")
    assert [loop.step()["loss"] for _ in range(3)] == losses
    assert_same_weights(weights(loop.model), after, "after replaying from the snapshot")


def test_rewind_one_step(case):
    loop = make_loop(case)
    loop.step()
    loop.step()
    at_two = weights(loop.model)
    loss = loop.step()["loss"]
    at_three = weights(loop.model)

    assert loop.rewind(1) == 2
    assert loop.state.step == 2
    assert_same_weights(weights(loop.model), at_two, "after rewind(1)")
    assert loop.step()["loss"] == loss
    assert_same_weights(weights(loop.model), at_three, "after replaying the rewound step")


def test_save_and_load_into_a_new_loop(case, tmp_path):
    first = make_loop(case)
    for _ in range(3):
        first.step()
    path = tmp_path / f"{case.name}.pt"
    first.save(path)
    saved = weights(first.model)
    losses = [first.step()["loss"] for _ in range(3)]  # across the epoch's end

    second = make_loop(case)
    second.load(path)
    assert second.state.step == 3
    assert_same_weights(weights(second.model), saved, "after load")
    assert [second.step()["loss"] for _ in range(3)] == losses
    assert_same_weights(weights(second.model), weights(first.model), "continuing after load")


def test_headless_dashboard(case):
    loop = make_loop(case)
    dash = tl.Dashboard(loop)
    try:
        dash.buttons["Step"].click()
        assert loop.state.step == 1, dash.alert.value
        for label in ("Forward", "Loss", "Backward") * loop.accumulate + ("Update",):
            dash.buttons[label].click()
        assert loop.state.step == 2, dash.alert.value
        dash.buttons["Step"].click()
        assert loop.state.step == 3, dash.alert.value
        assert_same_weights(weights(loop.model), weights(hand_train(case, 3)[0]), "after three dashboard steps")
    finally:
        dash.close()


def test_find_lr_puts_the_loop_back_exactly(case):
    """The range test trains on the zoo model's own batches, then the run goes on as if it never ran."""
    loop, twin = make_loop(case), make_loop(case)
    loop.step()
    twin.step()
    result = loop.find_lr(start=1e-4, end=1.0, steps=6)
    assert 1 <= len(result.lrs) <= 6 and len(result.losses) == len(result.lrs)
    assert loop.state.step == 1 and len(loop.history) == 1
    losses = [loop.step()["loss"] for _ in range(4)]  # across the epoch's end
    assert losses == [twin.step()["loss"] for _ in range(4)]
    assert_same_weights(weights(loop.model), weights(twin.model), "four steps after find_lr")


def test_step_landscape_starts_at_the_batch_loss_and_touches_nothing(case):
    loop, twin = make_loop(case), make_loop(case)
    for each in (loop, twin):
        micro_batches_before_update(each)
        each.forward()
        each.loss()
        each.backward()
    view = tl.step_landscape(loop, points=4)  # t = 0, 1, 2, 3
    assert view.losses.shape == (4,) and view.current == loop.last_loss.item()
    assert math.isfinite(view.landing)
    for each in (loop, twin):
        each.update()
    assert_same_weights(weights(loop.model), weights(twin.model), "the update after step_landscape")
    assert loop.step()["loss"] == twin.step()["loss"]


def test_the_network_view_shows_what_it_can(case):
    """Neurons for an MLP on the plane; for every zoo model, per-layer statistics: drawn, no crash."""
    loop = make_loop(case)
    loop.step()
    view = tl.NetworkView(loop, live=False)
    try:
        assert view.layers is None  # no zoo model takes 2-D points
        bars = [trace for trace in view.figure.data if trace.type == "bar"]
        assert bars and all(len(trace.y) > 0 for trace in bars), case.name
    finally:
        view.close()


def test_looking_at_the_errors_and_inside_touches_nothing(case):
    """Summary, distributions, activation statistics, the mistakes and the confusion matrix: the run
    goes on exactly as its twin's (weights, buffers, random streams, next batches), torch's stream too."""
    loop, twin = make_loop(case), make_loop(case)
    for each in (loop, twin):
        each.step()
        each.forward()  # and in the middle of a batch: its graph, its random state
    torch.manual_seed(3)
    summary = tl.summary(loop)
    assert summary.total == sum(p.numel() for p in loop.model.parameters())
    tl.Distributions(loop, attach=False).record()
    acts = tl.ActivationStats(loop, attach=False, samples=8)
    acts.record()
    assert acts.layers, case.name
    if loop.accuracy_kind is not None or loop.loss_name == "mse":
        worst = tl.top_losses(loop, k=3)
        assert len(worst) == 3 and worst.losses[0] >= worst.losses[-1]
    if loop.accuracy_kind in ("multiclass", "binary_logits", "binary_probs"):
        labels = pick(loop.train_data[1], loop.accuracy_target)  # of several targets, the one accuracy reads
        ignored = ignored_label(loop.loss_fn)  # per token: padding is no one's mistake
        assert tl.confusion(loop).sum() == (labels.numel() if ignored is None else int((labels != ignored).sum()))
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))  # torch's stream as it was
    assert loop.model.training and loop.next_stage == "loss"
    assert_same_weights(weights(loop.model), weights(twin.model), "right after looking")
    losses = [loop.step()["loss"] for _ in range(5)]
    assert losses == [twin.step()["loss"] for _ in range(5)]
    assert_same_weights(weights(loop.model), weights(twin.model), "five steps after looking")


def test_the_plots_of_errors_and_inside_draw_for_every_model(case):
    """Confusion (single-label classification), mistakes, distributions, activations and summary: drawn, no error."""
    loop = make_loop(case)
    names = ("loss", "confusion", "mistakes", "weight_distributions", "grad_distributions", "activations", "summary")
    dash = tl.Dashboard(loop, plots=names)
    try:
        dash.buttons["Step"].click()
        dash.buttons["Step"].click()
        assert dash.error is None, dash.error
        assert ("confusion" in dash.plots) == (loop.accuracy_kind in ("multiclass", "binary_logits"))
        assert ("mistakes" in dash.plots) == (loop.accuracy_kind is not None or loop.loss_name == "mse")
        assert dash.plots["activations"].failure is None and dash.plots["activations"].layers
        if "mistakes" in dash.plots:
            assert len(dash.plots["mistakes"].shown) > 0
        assert dash.plots["summary"].summary.total == sum(p.numel() for p in loop.model.parameters())
    finally:
        dash.close()


def test_the_playground_on_your_own_model(case):
    """Travel is exact on every zoo model; a recipe and the architecture controls say why they do not apply."""
    from trainlab.playground import can_change, travel

    loop = make_loop(case)
    loop.step()
    at_one = weights(loop.model)
    for _ in range(3):
        loop.step()
    assert travel(loop, 1) == 1
    assert_same_weights(weights(loop.model), at_one, "after travel(1)")
    with pytest.raises(ValueError, match="^this loop has no recipe: its model is your own"):
        loop.recipe()
    assert can_change(loop, "hidden") in ("the model is your own (not from tl.models or a registered maker)",
                                          "a scheduler drives this loop's optimizer: build a new Loop to change its "
                                          "data or model")
    assert can_change(loop, "lr") == ""
