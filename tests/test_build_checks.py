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
    ({"optimizer": "adagradd"}, "unknown optimizer"),  # every torch.optim class has a name since issue 26
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
    ({"accuracy": "yes"}, "accuracy must be True, False or None"),
    ({"shuffle": "no"}, "shuffle must be True, False or None"),
    ({"seed": 2**70}, "seed"),
    ({"seed": -2**63 - 1}, "seed"),
    ({"rewind_memory_mb": "16"}, "rewind_memory_mb=16"),
    ({"rewind_memory_mb": float("nan")}, "rewind_memory_mb=16"),
    ({"rewind_memory_mb": float("inf")}, "rewind_memory_mb=16"),
    ({"rewind_memory_mb": -5}, "rewind_memory_mb=16"),
    ({"rewind_memory_mb": None}, "rewind_memory_mb=16"),
    ({"device": "cuda" if not torch.cuda.is_available() else "mps"}, "device='cpu'"),
    ({"loss_fn": torch.nn.CrossEntropyLoss(reduction="none")}, "reduction='mean'"),
    ({"loss_fn": lambda outputs, targets: 0.5}, "must return a tensor computed from the outputs"),
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


def test_a_refused_loop_leaves_the_given_optimizer_as_it_was(moons):
    net = model()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    with pytest.raises(ValueError, match="scheduler"):
        tl.Loop(net, moons, "cross_entropy", optimizer=optimizer, lr=0.1, scheduler="step")
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_float64_numpy_data_is_converted_to_the_models_dtype():
    X, y = tl.datasets.linear(n=40, seed=0)
    loop = tl.Loop(torch.nn.Linear(10, 1), (X.double().numpy(), y.double().numpy()), "mse", batch_size=8,
                   val_data=(X.double(), y.double()))
    loop.step()
    assert loop.batch is None and loop.train_data[0].dtype == torch.float32
    assert loop.train_data[1].dtype == torch.float32
    assert loop.evaluate((X.double().numpy(), y.double().numpy()))["loss"] == pytest.approx(loop.evaluate()["loss"])


class CentredTime(torch.nn.Module):
    """Takes raw float64 timestamps, centres them in float64, then works in float32."""

    def __init__(self) -> None:
        super().__init__()
        self.line = torch.nn.Linear(1, 1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.line((t - 1.7e9).float())


def test_float64_data_is_kept_for_a_model_that_takes_it():
    t = 1.7e9 + torch.arange(64, dtype=torch.float64).view(-1, 1)  # 1.7e9 + 1 is not a float32
    loop = tl.Loop(CentredTime(), (t, torch.zeros(64, 1)), "mse", batch_size=8)
    assert loop.train_data[0].dtype == torch.float64 and len(set(loop.train_data[0].flatten().tolist())) == 64


class Line(torch.nn.Module):
    """y = w * x + b on inputs of shape (n,): one number per sample, no feature axis."""

    def __init__(self) -> None:
        super().__init__()
        self.w, self.b = torch.nn.Parameter(torch.zeros(())), torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x + self.b


def test_one_number_per_sample_trains_with_a_model_made_for_it_and_gets_a_hint_otherwise(moons):
    x = torch.linspace(-1, 1, 100)
    loop = tl.Loop(Line(), (x, 3 * x + 0.5), "mse", "sgd", lr=0.5, batch_size=100)
    loop.fit(epochs=200)
    assert loop.model.w.item() == pytest.approx(3.0, abs=1e-3) and loop.model.b.item() == pytest.approx(0.5, abs=1e-3)
    X, y = moons
    with pytest.raises(ValueError, match=r"X\.view\(-1, 1\)"):
        tl.Loop(model(), (X[:, 0], y), "cross_entropy")


@pytest.mark.parametrize("bad_val, message", [
    ((torch.randn(8, 2), torch.full((8,), 7)), "at least 8 outputs"),
    ((torch.randn(8, 2), torch.zeros(8, 3)), "the loss function failed"),
])
def test_validation_and_test_data_are_checked_like_the_training_data(moons, bad_val, message):
    with pytest.raises(ValueError, match=message):
        tl.Loop(model(), moons, "cross_entropy", val_data=bad_val)
    loop = tl.Loop(model(), moons, "cross_entropy")
    loop.step()
    weights = [p.detach().clone() for p in loop.model.parameters()]
    with pytest.raises(ValueError, match=message):
        loop.evaluate(bad_val)
    assert all(torch.equal(a, b) for a, b in zip(weights, loop.model.parameters()))
    assert loop.state.step == 1 and loop.next_stage == "forward"


def test_regression_test_targets_must_match_the_outputs_shape():
    X, y = tl.datasets.linear(n=40, seed=0)
    loop = tl.Loop(torch.nn.Linear(10, 1), (X, y), "mse")
    with pytest.raises(ValueError, match=r"y\.view\(-1, 1\)"):
        loop.evaluate((X, y.view(-1)))  # (n,) against (n, 1) outputs would broadcast to a wrong loss


def test_predict_takes_a_batch_like_the_training_inputs(moons):
    loop = tl.Loop(model(), moons, "cross_entropy")
    grid = torch.randn(5, 2)
    expected = loop.predict(grid)
    assert expected.shape == (5, 2)
    assert torch.allclose(loop.predict(grid.double().numpy()), expected)  # numpy float64 works too
    for bad, message in [(None, r"shape \(n, 2\)"), (torch.randn(5, 3), r"\(n, 2\)"), (torch.randn(2), "unsqueeze")]:
        with pytest.raises(ValueError, match=message):
            loop.predict(bad)
