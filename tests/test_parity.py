"""trainlab gives the same parameters as the hand-written PyTorch loops of the seeds."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainlab as tl


def seed000_setup():
    torch.manual_seed(0)
    model = nn.Linear(10, 1)
    inputs, targets = torch.randn(100, 10), torch.randn(100, 1)
    return model, inputs, targets


def seed000_by_hand(model, inputs, targets, epochs=20):
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(epochs):
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_same_parameters(a, b, tol=1e-6):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=tol, rtol=0), name


@pytest.mark.parametrize("driven_by", ["stages", "fit"])
def test_seed000_full_batch_linear_regression(driven_by):
    model, inputs, targets = seed000_setup()
    reference = copy.deepcopy(model)
    expected_losses = seed000_by_hand(reference, inputs, targets)

    loop = tl.Loop(model, (inputs, targets), "mse", optimizer="sgd", lr=0.01, batch_size=100)
    if driven_by == "stages":
        for _ in range(20):
            loop.forward(); loop.loss(); loop.backward(); loop.update()
    else:
        loop.fit(epochs=20)
    assert_same_parameters(reference, model)
    assert loop.state.epoch == 20 and loop.state.step == 20
    assert loop.history.history["loss"] == pytest.approx(expected_losses, abs=1e-6)


def seed001_by_hand(model, loader, epochs):
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for inputs, labels in loader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()


@pytest.mark.parametrize("driven_by", ["stages", "fit"])
def test_seed001_minibatch_cnn_on_digits_with_a_dataloader(driven_by):
    X, y = tl.datasets.digits(n=600, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False)
    model = tl.models.cnn(seed=0)
    reference = copy.deepcopy(model)
    seed001_by_hand(reference, loader, epochs=3)

    loop = tl.Loop(model, loader, "cross_entropy", optimizer="sgd", lr=0.01)
    assert loop.batch_size == 32  # taken from the DataLoader, like its (lack of) shuffling
    if driven_by == "stages":
        while loop.state.epoch < 3:
            loop.forward(); loop.loss(); loop.backward(); loop.update()
    else:
        loop.fit(epochs=3)
    assert loop.state.step == 3 * len(loader)
    assert_same_parameters(reference, model)


def test_adam_with_weight_decay_matches_the_hand_loop_too():
    X, y = tl.datasets.moons(n=200, seed=1)
    model = tl.models.mlp(2, [16], 2, seed=0)
    reference = copy.deepcopy(model)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(2):
        for start in range(0, 200, 50):
            optimizer.zero_grad()
            nn.functional.cross_entropy(reference(X[start:start + 50]), y[start:start + 50]).backward()
            optimizer.step()
    loop = tl.Loop(model, (X, y), "cross_entropy", "adam", lr=0.01, batch_size=50, shuffle=False,
                   weight_decay=1e-3)
    loop.fit(epochs=2)
    assert_same_parameters(reference, model)
