"""The bug clinic: each planted fault shows its documented symptom within 50 steps, reveal names it, and a sick
loop still travels in time exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trainlab as tl
from trainlab.faults import FAULTS


def clinic_loop(fault=None, **options):
    """Notebook 06's patient: two moons, an MLP, lr 0.3 in batches of 16 (a healthy loop learns them in 50 steps)."""
    X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
    model = tl.models.mlp(2, [32, 32], 2, activation="tanh", seed=0)
    options = {"lr": 0.3, "batch_size": 16, "validation_split": 0.2, "seed": 0, **options}
    return tl.Loop(model, (X, y), "cross_entropy", fault=fault, **options)


def fifty_steps(loop):
    """50 steps (2.5 epochs); the per-step columns, the validation losses and the weights before and after."""
    before = [p.detach().clone() for p in loop.model.parameters()]
    for _ in range(50):
        loop.step()
    steps = {key: np.asarray(values) for key, values in loop.history.steps.items()}
    return steps, loop.history.history["val_loss"], before, [p.detach().clone() for p in loop.model.parameters()]


@pytest.fixture(scope="module")
def healthy():
    return fifty_steps(clinic_loop())


# Each symptom as NAMES describes it, measured on the loop's own numbers (what its dashboard plots).


def gradients_grow(run, healthy):
    steps = run[0]
    return steps["grad_norm"][-10:].mean() > 3 * steps["grad_norm"][:5].mean()


def weights_never_move(run, healthy):
    steps, val_loss, before, after = run
    gradients_there = (steps["grad_norm"] > 0.1).all()
    return gradients_there and all(torch.equal(a, b) for a, b in zip(before, after)) and val_loss[0] == val_loss[-1]


def loss_batch_times_too_big(run, healthy):
    steps, val_loss = run[0], run[1]
    first_is_16_times = math.isclose(steps["loss"][0], 16 * healthy[0]["loss"][0], rel_tol=1e-5)
    return first_is_16_times and steps["loss"].mean() > 5 * val_loss[-1]


def loss_never_below_the_softmax_floor(run, healthy):
    floor = math.log(1 + math.exp(-1))  # cross-entropy of a perfect softmax over two classes
    steps = run[0]
    return steps["loss"].min() >= floor and steps["grad_norm"].mean() < 0.6 * healthy[0]["grad_norm"].mean()


def loss_and_accuracy_stay_at_chance(run, healthy):
    steps = run[0]
    return steps["accuracy"][-20:].mean() < 0.6 and steps["loss"][-10:].mean() > 0.6


def loss_shoots_up(run, healthy):
    steps = run[0]
    return steps["loss"].max() > 5 * steps["loss"][0] and steps["loss"][-10:].mean() > 2 * steps["loss"][0]


SYMPTOMS = {"forgot_zero_grad": gradients_grow, "forgot_step": weights_never_move,
            "loss_summed": loss_batch_times_too_big, "softmax_before_loss": loss_never_below_the_softmax_floor,
            "labels_shuffled": loss_and_accuracy_stay_at_chance, "lr_magnitude": loss_shoots_up}


def test_every_fault_has_its_symptom_measured():
    assert set(SYMPTOMS) == set(tl.faults.NAMES) == set(FAULTS)
    assert all(isinstance(symptom, str) and symptom for symptom in tl.faults.NAMES.values())


@pytest.mark.parametrize("name", list(SYMPTOMS))
def test_each_fault_shows_its_symptom_within_50_steps_and_a_healthy_loop_does_not(name, healthy):
    symptom = SYMPTOMS[name]
    assert symptom(fifty_steps(clinic_loop(name)), healthy), tl.faults.NAMES[name]
    assert not symptom(healthy, healthy)
    assert healthy[0]["accuracy"][-10:].mean() > 0.8  # the healthy patient learns in those 50 steps


@pytest.mark.parametrize("name", list(SYMPTOMS))
def test_reveal_names_the_planted_fault_and_judges_a_guess(name):
    loop = clinic_loop(name)
    said = tl.faults.reveal(loop)
    assert said.fault == name and name in str(said) and said.right is None
    assert tl.faults.reveal(loop, guess=name).right is True
    other = next(n for n in SYMPTOMS if n != name)
    wrong = tl.faults.reveal(loop, guess=other)
    assert wrong.right is False and str(wrong).startswith(f"✗ Not {other!r}") and name in str(wrong)
    assert "✓" in tl.faults.reveal(loop, guess=name)._repr_html_()


def test_a_healthy_loop_reveals_no_fault_and_plant_adds_one():
    loop = clinic_loop()
    assert tl.faults.reveal(loop).fault is None and "healthy" in str(tl.faults.reveal(loop))
    tl.faults.plant(loop, "forgot_step")
    assert tl.faults.planted(loop) == "forgot_step"
    with pytest.raises(ValueError, match="already has a planted fault"):
        tl.faults.plant(loop, "loss_summed")


def test_a_random_fault_is_seeded_and_one_this_loop_can_show():
    picks = [tl.faults.planted(clinic_loop("random", seed=seat)) for seat in range(12)]
    assert picks == [tl.faults.planted(clinic_loop("random", seed=seat)) for seat in range(12)]
    assert len(set(picks)) >= 4  # neighbours get different ones
    X, y = tl.datasets.linear(n=64, seed=0)
    for seat in range(12):  # a regression loop never gets the classifier's softmax
        regression = tl.Loop(torch.nn.Linear(10, 1), (X, y), "mse", seed=seat)
        tl.faults.plant(regression, "random")
        assert tl.faults.planted(regression) != "softmax_before_loss"
    loop = clinic_loop()
    tl.faults.plant(loop, "random", seed=3)
    assert tl.faults.planted(loop) == tl.faults.planted(clinic_loop("random", seed=3))
    for seat in range(5):  # a seat's patients each get another fault
        patients = [clinic_loop() for _ in range(len(FAULTS))]
        for i, patient in enumerate(patients):
            tl.faults.plant(patient, "random", seed=seat, patient=i)
        assert sorted(tl.faults.planted(p) for p in patients) == sorted(FAULTS)


def test_bad_faults_are_refused_when_the_loop_is_built():
    with pytest.raises(ValueError, match="unknown fault 'forgot_zerograd'"):
        clinic_loop("forgot_zerograd")
    X, y = tl.datasets.linear(n=64, seed=0)
    with pytest.raises(ValueError, match="classifier"):
        tl.Loop(torch.nn.Linear(10, 1), (X, y), "mse", fault="softmax_before_loss")
    with pytest.raises(ValueError, match="guess one of"):
        tl.faults.reveal(clinic_loop(), guess="no_idea")


@pytest.mark.parametrize("name", list(SYMPTOMS))
def test_a_sick_loop_still_travels_in_time_exactly(name):
    loop = clinic_loop(name, on_nonfinite="skip_batch")
    first = fifty_steps(loop)[0]["loss"]
    loop.rewind(5)  # no ReplayError: the fault replays as it ran
    for _ in range(5):
        loop.step()
    assert np.array_equal(loop.history.steps["loss"][-5:], first[-5:])
    loop.reset()  # the fault stays; the run repeats exactly from the start
    assert tl.faults.planted(loop) == name
    assert np.array_equal(fifty_steps(loop)[0]["loss"], first)
    result = loop.find_lr(steps=20)  # the finder's steps leave the run as it was
    assert len(result.lrs) > 0 and loop.state.step == 50
    loop.rewind(1)
    loop.step()
    assert loop.history.steps["loss"][-1] == first[-1]


def test_forgot_step_follows_the_loop_to_a_new_optimizer():
    loop = clinic_loop("forgot_step")
    loop.set_optimizer("adam")
    before = [p.detach().clone() for p in loop.model.parameters()]
    loop.fit(epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(before, loop.model.parameters()))


@pytest.mark.parametrize("name", list(SYMPTOMS))
def test_removing_the_fault_cures_the_loop(name, healthy):
    loop = clinic_loop(name)
    tl.faults.remove(loop)
    assert tl.faults.planted(loop) is None
    assert np.array_equal(fifty_steps(loop)[0]["loss"], healthy[0]["loss"])


def test_the_checker_refuses_a_sick_loop():
    def my_step(model, optimizer, loss_fn, inputs, targets):
        return loss_fn(model(inputs), targets)

    with pytest.raises(ValueError, match="planted fault"):
        tl.check_step(my_step, clinic_loop("forgot_zero_grad"))


@pytest.mark.parametrize("name", list(SYMPTOMS))
def test_a_sick_loop_is_freed_when_dropped(name):
    import gc
    import weakref

    loop = clinic_loop(name)
    loop.step()
    held = weakref.ref(loop)
    del loop
    gc.collect()
    assert held() is None
