"""What a loop accepts as data, and the clear errors it gives at build time."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import trainlab as tl


class PairDataset(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], int(self.y[i])


def model():
    return tl.models.mlp(2, [8], 2, seed=0)


@pytest.fixture
def moons():
    return tl.datasets.moons(n=64, seed=0)


def test_tensors_datasets_and_dataloaders_all_give_the_same_training(moons):
    X, y = moons
    runs = []
    for data in [(X, y), (X.numpy(), y.numpy()), TensorDataset(X, y), PairDataset(X, y),
                 DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)]:
        loop = tl.Loop(model(), data, "cross_entropy", batch_size=16)
        loop.fit(epochs=2)
        runs.append(loop.history.steps["loss"].tolist())
    assert all(run == runs[0] for run in runs)


def test_a_dataloader_lends_its_batch_size_and_shuffling(moons):
    loader = DataLoader(TensorDataset(*moons), batch_size=8, shuffle=False)
    loop = tl.Loop(model(), loader, "cross_entropy")
    assert loop.batch_size == 8
    loop.forward()
    assert torch.equal(loop.batch[0], moons[0][:8])  # not shuffled, like the loader
    explicit = tl.Loop(model(), loader, "cross_entropy", batch_size=4, shuffle=True)
    explicit.forward()
    assert len(explicit.batch[0]) == 4 and not torch.equal(explicit.batch[0], moons[0][:4])


@pytest.mark.parametrize("data, message", [
    ((torch.randn(10, 2), torch.zeros(9, dtype=torch.long)), "10 inputs but 9 targets"),
    ((torch.randn(0, 2), torch.zeros(0, dtype=torch.long)), "empty"),
    ((torch.zeros(10, 2, dtype=torch.long), torch.zeros(10, dtype=torch.long)), r"X\.float\(\)"),
    ((torch.randn(10, 2), torch.zeros(10)), r"y\.long\(\)"),
    ((torch.randn(10, 2), torch.zeros(10, 1, dtype=torch.long)), r"y\.view\(-1\)"),
    ((torch.randn(10, 2), torch.full((10,), 5)), "at least 6 outputs"),
    ((torch.randn(10, 3), torch.zeros(10, dtype=torch.long)), "input size"),
    ("not data", "pair"),
    ((torch.randn(10, 2),), "pair"),
])
def test_bad_classification_data_is_refused_with_what_to_do(data, message):
    with pytest.raises(ValueError, match=message):
        tl.Loop(model(), data, "cross_entropy")


def test_regression_targets_must_be_float_and_shaped_like_the_outputs():
    X = torch.randn(20, 10)
    with pytest.raises(ValueError, match=r"y\.float\(\)"):
        tl.Loop(torch.nn.Linear(10, 1), (X, torch.zeros(20, 1, dtype=torch.long)), "mse")
    with pytest.raises(ValueError, match=r"y\.view\(-1, 1\)"):
        tl.Loop(torch.nn.Linear(10, 1), (X, torch.zeros(20)), "mse")
    with pytest.raises(ValueError, match=r"y\.float\(\)"):
        tl.Loop(torch.nn.Linear(10, 1), (X, torch.zeros(20, 1, dtype=torch.long)), "bce")


@pytest.mark.parametrize("options, message", [
    ({"loss_fn": "hinge"}, "unknown loss"),
    ({"optimizer": "adagrad"}, "unknown optimizer"),
    ({"lr": 0}, "learning rate"),
    ({"lr": float("nan")}, "learning rate"),
    ({"batch_size": 0}, "batch size"),
    ({"batch_size": True}, "batch size"),
    ({"validation_split": 1.0}, r"\[0, 1\)"),
    ({"validation_split": -0.1}, r"\[0, 1\)"),
    ({"validation_split": 0.99}, "empty"),
    ({"optimizer": "adam", "momentum": 0.9}, "momentum"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite"),
    ({"scheduler_interval": "batch"}, "scheduler_interval"),
    ({"device": "tpu9"}, "device"),
    ({"seed": 1.5}, "seed"),
    ({"accuracy": True, "loss_fn": "mse"}, "classification"),
])
def test_bad_options_are_refused_when_the_loop_is_built(moons, options, message):
    options = {"loss_fn": "cross_entropy", **options}
    with pytest.raises(ValueError, match=message):
        tl.Loop(model(), moons, **options)


def test_validation_data_and_split_are_exclusive_and_checked(moons):
    with pytest.raises(ValueError, match="either"):
        tl.Loop(model(), moons, "cross_entropy", validation_split=0.2, val_data=moons)
    with pytest.raises(ValueError, match="shape"):
        tl.Loop(model(), moons, "cross_entropy", val_data=(torch.randn(5, 3), torch.zeros(5, dtype=torch.long)))


def test_evaluate_on_test_data_or_the_validation_split(moons):
    loop = tl.Loop(model(), moons, "cross_entropy", lr=0.2)
    with pytest.raises(ValueError, match="validation_split"):
        loop.evaluate()
    loop.fit(epochs=3)
    X_test, y_test = tl.datasets.moons(n=100, seed=9)
    result = loop.evaluate((X_test, y_test))
    assert set(result) == {"loss", "accuracy"}
    with torch.no_grad():
        logits = loop.model(X_test)
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y_test).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y_test).float().mean().item())
    assert loop.model.training  # evaluation switched eval mode on and back off


def test_binary_cross_entropy_records_accuracy(moons):
    X, y = moons
    loop = tl.Loop(tl.models.mlp(2, [8], 1, seed=0), (X, y.float().view(-1, 1)), "bce", lr=0.5)
    loop.fit(epochs=5)
    assert loop.classification and loop.history.history["accuracy"][-1] > 0.6


def test_auto_device_picks_what_is_there(moons):
    loop = tl.Loop(model(), moons, "cross_entropy", device="auto")
    assert loop.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(loop.model.parameters()).device.type == loop.device.type
