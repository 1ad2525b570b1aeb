"""History: Keras-style per-epoch dict, per-step numpy columns, changes; and determinism."""

import numpy as np
import pytest
import torch

import loops
import trainlab as tl


def moons_loop(seed=0, **options):
    return loops.moons_loop(n=200, activation="tanh", seed=seed, **{"batch_size": 32, **options})


def test_keras_style_history_after_fit_with_validation_split():
    loop = moons_loop(validation_split=0.2)
    history = loop.fit(epochs=5)
    assert history is loop.history and isinstance(history, tl.History)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 5 for values in history.history.values())
    assert history.epoch == [0, 1, 2, 3, 4]
    assert all(0 <= a <= 1 for a in history.history["accuracy"] + history.history["val_accuracy"])
    assert history.history["val_loss"][-1] == pytest.approx(loop.evaluate()["loss"])
    assert history.history["loss"][-1] < history.history["loss"][0]  # it learns


def test_regression_history_has_no_accuracy():
    X, y = tl.datasets.linear(n=100, seed=0)
    loop = tl.Loop(torch.nn.Linear(10, 1), (X, y), "mse", batch_size=20, val_data=tl.datasets.linear(n=30, seed=1))
    loop.fit(epochs=2)
    assert set(loop.history.history) == {"loss", "val_loss"} and not loop.classification


def test_epoch_loss_is_the_sample_weighted_mean_of_its_batch_losses():
    loop = moons_loop(batch_size=64)  # 200 samples: batches of 64, 64, 64 and 8
    loop.fit(epochs=1)
    steps = loop.history.steps
    sizes, losses = steps["batch_size"], steps["loss"].astype(np.float64)
    assert sizes.tolist() == [64, 64, 64, 8]
    expected = float((losses * sizes).sum() / sizes.sum())
    assert loop.history.history["loss"][0] == pytest.approx(expected, rel=1e-6)
    assert loop.history.history["loss"][0] != pytest.approx(float(losses.mean()), rel=1e-4)
    accuracy = float((steps["accuracy"].astype(np.float64) * sizes).sum() / sizes.sum())
    assert loop.history.history["accuracy"][0] == pytest.approx(accuracy, rel=1e-6)


def test_per_step_columns_are_numpy_arrays_with_per_layer_norms():
    loop = moons_loop()
    loop.fit(epochs=2)
    steps = loop.history.steps
    n = loop.state.step
    assert len(loop.history) == n == 14  # 200 / 32 -> 7 batches per epoch
    for key in ("step", "epoch", "loss", "accuracy", "lr", "batch_size", "grad_norm"):
        assert isinstance(steps[key], np.ndarray) and len(steps[key]) == n
    layers = [f"grad_norm/{name}" for name, _ in loop.model.named_parameters()]
    assert all(key in steps for key in layers)
    total = np.sqrt(sum(steps[key].astype(np.float64) ** 2 for key in layers))
    assert np.allclose(total, steps["grad_norm"], rtol=1e-5)
    assert steps["step"].tolist() == list(range(1, n + 1))
    assert steps["epoch"].tolist() == [0] * 7 + [1] * 7
    with pytest.raises(ValueError):
        steps["loss"][0] = 1.0  # read-only views: the record cannot be edited by accident


def test_columns_grow_past_their_first_capacity():
    history = tl.History(["w"], ["loss"])
    for i in range(3000):
        history.record_step({"epoch": 0, "loss": float(i), "accuracy": 0.0, "lr": 0.1, "batch_size": 1, "grad_norm": 1.0}, [2.0])
    assert len(history) == 3000 and history.steps["loss"][-1] == 2999.0
    assert history.steps["grad_norm/w"].sum() == 6000.0


def test_same_seed_same_numbers_and_another_seed_other_numbers():
    runs = []
    for seed in (0, 0, 1):
        loop = moons_loop(seed=seed)
        loop.fit(epochs=2)
        runs.append(loop.history.steps["loss"].copy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_dropout_is_repeatable_per_loop_and_leaves_the_global_rng_alone():
    def dropout_loop():
        X, y = tl.datasets.moons(n=100, seed=0)
        torch.manual_seed(0)  # the same initial weights for both
        model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Dropout(0.5), torch.nn.Linear(32, 2))
        return tl.Loop(model, (X, y), "cross_entropy", lr=0.1, batch_size=20)

    first, second = dropout_loop(), dropout_loop()
    torch.manual_seed(123)
    expected_global = torch.rand(3)
    torch.manual_seed(123)
    first.fit(epochs=1)
    second.fit(epochs=1)  # runs after the first: same numbers anyway, since each loop owns its RNG
    assert torch.equal(torch.rand(3), expected_global)
    assert np.array_equal(first.history.steps["loss"], second.history.steps["loss"])
