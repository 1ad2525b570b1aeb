"""The benchmark rows: each gives a bare PyTorch run and a trainlab run of the same training."""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainlab as tl

Factory = Callable[[], Callable[[], int]]


def tiny(epochs: int) -> tuple[Factory, Factory]:
    """Row 1: seed 000's loop (nn.Linear(10, 1), MSE, SGD, 100 samples, full batch)."""
    model, inputs, targets = _seed000()

    def lab() -> Callable[[], int]:
        loop = tl.Loop(copy.deepcopy(model), (inputs, targets), "mse", lr=0.01, batch_size=100, shuffle=False)
        return lambda: _fit(loop, epochs)
    return _seed000_bare(epochs), lab


def tiny_floor(epochs: int) -> tuple[Factory, Factory]:
    """Row 1': seed 000's bare loop against itself plus the least any lab step must do.

    That least is what the contract asks of every step: keep a copy of the weights from
    before the update (rewind, exact restore) and record every layer's gradient norm.
    """
    return _seed000_bare(epochs), _seed000_bare(epochs, essentials=True)


def _seed000() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Linear(10, 1), torch.randn(100, 10), torch.randn(100, 1)


def _seed000_bare(epochs: int, essentials: bool = False) -> Factory:
    model, inputs, targets = _seed000()

    def bare() -> Callable[[], int]:
        m = copy.deepcopy(model)
        criterion, optimizer = nn.MSELoss(), torch.optim.SGD(m.parameters(), lr=0.01)
        params, kept, norms = list(m.parameters()), [], []

        def run() -> int:
            for _ in range(epochs):
                if essentials:
                    kept.append([p.detach().clone() for p in params])
                    del kept[:-100]
                outputs = m(inputs)
                loss = criterion(outputs, targets)
                optimizer.zero_grad()
                loss.backward()
                if essentials:
                    norms.append(torch.stack(torch._foreach_norm([p.grad for p in params])).tolist())
                optimizer.step()
                loss.item()  # the seed prints it every epoch
            return epochs
        return run
    return bare


def _fit(loop: tl.Loop, epochs: int) -> int:
    loop.fit(epochs=epochs)
    return loop.state.step


def _digits(flat: bool) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = tl.datasets.digits()
    return (X.view(len(X), -1) if flat else X), y


def _seed001_bare(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int,
                  stages: bool = False) -> Factory:
    """Seed 001's loop: a shuffling DataLoader, zero_grad / forward / loss / backward / step, running loss."""
    def bare() -> Callable[[], int]:
        m = copy.deepcopy(model)
        criterion, optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(m.parameters(), lr=0.01)
        loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(0))

        def run() -> int:
            steps = 0
            for _ in range(epochs):
                running_loss = 0.0
                for inputs, labels in loader:
                    optimizer.zero_grad()
                    loss = criterion(m(inputs), labels)
                    loss.backward()
                    optimizer.step()
                    running_loss += loss.item()
                    steps += 1
            return steps
        return run
    return bare


def _tensor_bare(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int) -> Factory:
    """The fastest bare loop we know: batches sliced from tensors (no DataLoader)."""
    def bare() -> Callable[[], int]:
        m = copy.deepcopy(model)
        criterion, optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(m.parameters(), lr=0.01)
        generator = torch.Generator().manual_seed(0)

        def run() -> int:
            steps = 0
            for _ in range(epochs):
                order = torch.randperm(len(X), generator=generator)
                for start in range(0, len(X), batch_size):
                    index = order[start:start + batch_size]
                    optimizer.zero_grad()
                    loss = criterion(m(X[index]), y[index])
                    loss.backward()
                    optimizer.step()
                    loss.item()
                    steps += 1
            return steps
        return run
    return bare


def _lab(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int,
         stages: bool = False) -> Factory:
    def lab() -> Callable[[], int]:
        loop = tl.Loop(copy.deepcopy(model), (X, y), "cross_entropy", lr=0.01, batch_size=batch_size)
        if not stages:
            return lambda: _fit(loop, epochs)

        def run() -> int:
            while loop.state.epoch < epochs:
                loop.forward()
                loop.loss()
                loop.backward()
                loop.update()
            return loop.state.step
        return run
    return lab


def mlp(epochs: int, stages: bool = False, tensor_bare: bool = False) -> tuple[Factory, Factory]:
    """Rows 2 and 4: an MLP 64-128-10 on flattened digits, batch 32 (fit, or stage by stage)."""
    X, y = _digits(flat=True)
    model = tl.models.mlp(64, [128], 10, seed=0)
    bare = (_tensor_bare if tensor_bare else _seed001_bare)(model, X, y, 32, epochs)
    return bare, _lab(model, X, y, 32, epochs, stages)


def cnn(epochs: int) -> tuple[Factory, Factory]:
    """Row 3: the digits CNN, batch 64."""
    X, y = _digits(flat=False)
    model = tl.models.cnn(seed=0)
    return _seed001_bare(model, X, y, 64, epochs), _lab(model, X, y, 64, epochs)
