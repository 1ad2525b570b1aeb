"""Data people bring: integer tokens, several inputs, tuple outputs, and DataLoaders drawn through."""

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, WeightedRandomSampler

import trainlab as tl


def tokens(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 30, (n, 6), generator=g), torch.randint(0, 3, (n,), generator=g)


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(30, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, ids):
        return self.out(self.embed(ids).mean(1))


def test_integer_token_ids_pass_through_to_an_embedding():
    X, y = tokens()
    loop = tl.Loop(Bag(), (X, y), "cross_entropy", lr=0.5, batch_size=16, shuffle=False)
    out = loop.forward()
    assert loop.batch[0].dtype == torch.int64 and torch.equal(loop.batch[0], X[:16])
    assert out.shape == (16, 3)
    loop.fit(epochs=3)
    assert loop.history.history["loss"][-1] < loop.history.history["loss"][0]
    assert loop.predict(X[:4]).shape == (4, 3)


def test_integer_inputs_to_a_linear_model_say_to_convert_them():
    X, y = tokens()
    with pytest.raises(ValueError, match=r"torch.int64: that suits an nn.Embedding.*X.float\(\)"):
        tl.Loop(nn.Linear(6, 3), (X, y), "cross_entropy")


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.out = nn.Linear(3, 8), nn.Linear(2, 8), nn.Linear(8, 2)

    def forward(self, a, b):
        return self.out(torch.tanh(self.a(a) + self.b(b)))


class Named(TwoInputs):
    def forward(self, left, right):
        return super().forward(left, right)


def two_inputs(n=40):
    g = torch.Generator().manual_seed(1)
    A, B = torch.randn(n, 3, generator=g), torch.randn(n, 2, generator=g)
    return A, B, (A[:, 0] + B[:, 1] > 0).long()


def test_several_inputs_as_a_tuple_or_a_dict_match_a_hand_loop():
    A, B, y = two_inputs()
    reference = TwoInputs()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for start in range(0, 40, 10):
        optimizer.zero_grad()
        nn.functional.cross_entropy(reference(A[start:start + 10], B[start:start + 10]), y[start:start + 10]).backward()
        optimizer.step()
    for data, model in ((((A, B), y), TwoInputs()), (({"left": A, "right": B}, y), Named())):
        loop = tl.Loop(model, data, "cross_entropy", lr=0.1, batch_size=10, shuffle=False)
        loop.fit(epochs=1)
        assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), model.parameters()))


def test_several_inputs_split_evaluate_and_predict():
    A, B, y = two_inputs(60)
    loop = tl.Loop(TwoInputs(), ((A, B), y), "cross_entropy", lr=0.1, validation_split=0.25)
    loop.fit(epochs=2)
    assert len(loop.history.history["val_accuracy"]) == 2
    assert set(loop.evaluate(((A, B), y))) == {"loss", "accuracy"}
    assert loop.predict((A[:5], B[:5])).shape == (5, 2)
    with pytest.raises(ValueError, match="laid out like the training inputs"):
        loop.evaluate(({"a": A, "b": B}, y))
    with pytest.raises(ValueError, match="rows"):
        tl.Loop(TwoInputs(), ((A, B[:10]), y), "cross_entropy")


class WithAux(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(3, 2)

    def forward(self, x):
        logits = self.layer(x)
        return {"logits": logits, "aux": logits.pow(2).mean()}


def aux_loss(outputs, targets):
    return nn.functional.cross_entropy(outputs["logits"], targets) + 0.1 * outputs["aux"]


def test_a_dict_output_needs_its_predictions_named_and_the_loss_gets_all_of_it():
    A, _, y = two_inputs()
    with pytest.raises(ValueError, match=r"outputs='logits'"):
        tl.Loop(WithAux(), (A, y), aux_loss)
    with pytest.raises(ValueError, match="names no part"):
        tl.Loop(WithAux(), (A, y), aux_loss, outputs="scores")
    loop = tl.Loop(WithAux(), (A, y), aux_loss, outputs="logits", accuracy=True, lr=0.1)
    loop.fit(epochs=2)
    assert loop.classification and 0 <= loop.history.history["accuracy"][-1] <= 1
    assert loop.predict(A[:3]).shape == (3, 2)
    loop.forward()
    assert set(loop.last_outputs) == {"logits", "aux"} and loop.last_predictions.shape == (32, 2)


class Augmented(Dataset):
    """Each item gets fresh noise: random augmentation."""

    def __init__(self, X, y):
        self.X, self.y, self.fetched = X, y, 0

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        self.fetched += 1
        return self.X[i] + 0.1 * torch.randn(self.X.shape[1]), self.y[i]


def test_a_dataloader_is_drawn_through_each_epoch_with_its_collate_fn():
    X, y = tl.datasets.moons(n=40, seed=0)
    dataset = Augmented(X, y)
    calls = []

    def collate(items):
        calls.append(len(items))
        return torch.stack([x for x, _ in items]), torch.stack([t for _, t in items])

    loader = DataLoader(dataset, batch_size=10, shuffle=False, collate_fn=collate)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), loader, "cross_entropy")
    calls.clear(), setattr(dataset, "fetched", 0)
    loop.forward()
    first = loop.batch[0].clone()
    loop.step()
    loop.run_epoch()
    assert calls == [10, 10, 10, 10] and dataset.fetched == 40
    loop.forward()
    assert not torch.equal(loop.batch[0], first)  # the same samples, augmented afresh
    assert torch.allclose(loop.batch[0], first, atol=1.0)


def test_a_weighted_sampler_decides_the_order_and_replays_exactly():
    X, y = tl.datasets.moons(n=40, seed=0)
    weights = torch.where(y == 1, 10.0, 0.1)
    loader = DataLoader(TensorDataset(X, y), batch_size=8, sampler=WeightedRandomSampler(weights, 40))
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), loader, "cross_entropy", lr=0.1)
    start = loop.snapshot()
    loop.fit(epochs=1)
    assert loop.state.step == 5 and len(loop.train_data[1]) == 40  # train_data: collected through the loader
    labels = []
    loop.on("after_forward", lambda lp: labels.append(lp.batch[1]))
    loop.fit(epochs=1)
    assert torch.cat(labels).float().mean() > 0.8  # most samples drawn are of the heavy class
    first_run = loop.history.steps["loss"].copy()
    loop.restore(start)
    loop.fit(epochs=2)
    assert (loop.history.steps["loss"] == first_run).all()
    with pytest.raises(ValueError, match="WeightedRandomSampler decides the order"):
        tl.Loop(tl.models.mlp(2, [8], 2), loader, "cross_entropy", shuffle=True)


def test_drop_last_keeps_batchnorm_from_a_batch_of_one():
    X, y = tl.datasets.moons(n=33, seed=0)  # 33 % 8 == 1: the last batch would hold one sample
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    loader = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, drop_last=True)
    loop = tl.Loop(model, loader, "cross_entropy")
    loop.fit(epochs=3)
    assert loop.state.step == 12 and set(loop.history.steps["batch_size"].tolist()) == {8}


def test_the_batch_size_of_a_dataloader_is_live():
    X, y = tl.datasets.moons(n=40, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2), DataLoader(TensorDataset(X, y), batch_size=10), "cross_entropy")
    loop.step()
    loop.batch_size = 7
    loop.run_epoch()
    assert loop.history.steps["batch_size"].tolist() == [10, 7, 7, 7, 7, 2]


class Stream(IterableDataset):
    def __iter__(self):
        yield from zip(torch.randn(8, 2), torch.zeros(8, dtype=torch.long))


def test_what_a_dataloader_cannot_give_is_said():
    X, y = tl.datasets.moons(n=40, seed=0)
    dataset = TensorDataset(X, y)
    model = tl.models.mlp(2, [8], 2)
    with pytest.raises(ValueError, match="IterableDataset"):
        tl.Loop(model, DataLoader(Stream(), batch_size=4), "cross_entropy")
    with pytest.raises(ValueError, match="batch_sampler"):
        batches = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(dataset), 4, False)
        tl.Loop(model, DataLoader(dataset, batch_sampler=batches), "cross_entropy")
    with pytest.raises(ValueError, match="val_data="):
        tl.Loop(model, DataLoader(dataset, batch_size=4), "cross_entropy", validation_split=0.2)
    with pytest.warns(UserWarning, match="num_workers=2 is not used"):
        tl.Loop(model, DataLoader(dataset, batch_size=4, num_workers=2), "cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop = tl.Loop(model, DataLoader(dataset, batch_size=4), "cross_entropy",
                       val_data=DataLoader(dataset, batch_size=16))
    assert loop.val_data[0].shape == (40, 2)


class Flaky(Dataset):
    """Item 25 fails once (a disk hiccup), then reads fine."""

    def __init__(self, X, y):
        self.X, self.y, self.failed = X, y, False

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if i == 25 and not self.failed:
            self.failed = True
            raise OSError("disk hiccup")
        return self.X[i], self.y[i]


def test_a_batch_whose_fetch_fails_is_fetched_again_and_no_sample_is_lost():
    X, y = tl.datasets.moons(n=40, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), DataLoader(Flaky(X, y), batch_size=10), "cross_entropy")
    starts = []
    loop.on("after_forward", lambda lp: starts.append(lp.epoch_progress[0]))
    loop.step(), loop.step()
    with pytest.raises(OSError, match="disk hiccup"):
        loop.step()
    assert loop.epoch_progress == (20, 40) and loop.next_stage == "forward"
    loop.run_epoch()
    assert starts == [0, 10, 20, 30] and loop.state.epoch == 1


class Noisy(nn.Module):
    """Dropout, and a forward that fails once on call ``fail_at``."""

    def __init__(self, fail_at=None):
        super().__init__()
        torch.manual_seed(1)
        self.layer, self.calls, self.fail_at = nn.Linear(2, 2), 0, fail_at

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        return self.layer(nn.functional.dropout(x, 0.5, self.training))


@pytest.mark.parametrize("through_loader", [True, False])
def test_a_retried_first_batch_of_an_epoch_gets_the_same_order_and_random_numbers(through_loader):
    X, y = tl.datasets.moons(n=20, seed=0)

    def losses(fail_at):
        data = DataLoader(Augmented(X, y), batch_size=10) if through_loader else (X, y)
        loop = tl.Loop(Noisy(), data, "cross_entropy", lr=0.1, batch_size=10)
        loop.model.fail_at = fail_at
        out = []
        for _ in range(4):
            try:
                out.append(loop.step()["loss"])
            except RuntimeError:
                out.append(loop.step()["loss"])
        return out

    assert losses(fail_at=3) == losses(fail_at=None)  # call 3: the first batch of epoch 2


def test_drop_last_refuses_a_batch_size_that_leaves_no_batch_and_drops_a_tail_the_batch_size_outgrew():
    X, y = tl.datasets.moons(n=100, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, drop_last=True)
    with pytest.raises(ValueError, match="drop_last=True"):
        tl.Loop(tl.models.mlp(2, [4], 2), DataLoader(TensorDataset(X[:5], y[:5]), batch_size=8, drop_last=True),
                "cross_entropy")
    loop = tl.Loop(tl.models.mlp(2, [4], 2), loader, "cross_entropy")
    with pytest.raises(ValueError, match="leaves no batch"):
        loop.batch_size = 101
    loop.step(), loop.step()
    loop.batch_size = 50  # 36 samples are left: too few for a batch of 50, so the epoch ends here
    log = loop.step()
    assert log["batch_size"] == 50 and loop.state.epoch == 1 and loop.history.epoch == [0]
    assert set(loop.history.steps["batch_size"].tolist()) == {32, 50}


def test_a_sampler_with_its_own_generator_is_put_back_by_restore_rewind_and_load(tmp_path):
    X, y = tl.datasets.moons(n=40, seed=0)

    def make():
        sampler = WeightedRandomSampler(torch.rand(40, generator=torch.Generator().manual_seed(1)), 40,
                                        generator=torch.Generator().manual_seed(0))
        return tl.Loop(nn.Linear(2, 2), DataLoader(TensorDataset(X, y), batch_size=10, sampler=sampler),
                       "cross_entropy", lr=0.1)

    loop = make()
    start = loop.snapshot()
    first = [loop.step()["loss"] for _ in range(8)]
    loop.restore(start)
    assert [loop.step()["loss"] for _ in range(8)] == first
    loop.rewind(4)
    assert [loop.step()["loss"] for _ in range(4)] == first[4:]
    loop.rewind(6)
    loop.save(tmp_path / "run.pt")
    other = make()
    other.load(tmp_path / "run.pt")
    assert [other.step()["loss"] for _ in range(6)] == first[2:]


def test_several_inputs_from_numpy_in_float64_are_converted_like_one_input():
    import numpy as np

    rng = np.random.default_rng(0)
    X1, X2, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2)), rng.integers(0, 2, 30)
    loop = tl.Loop(TwoInputs(), ((X1, X2), y), "cross_entropy")
    assert [t.dtype for t in loop.batch or loop.train_data[0]] == [torch.float32, torch.float32]
    assert loop.step()["status"] == "updated"
    assert loop.predict((X1[:4], X2[:4])).shape == (4, 2)
