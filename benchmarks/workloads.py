"""The trainings every comparison runs, and the fastest bare PyTorch loop over each.

A workload is a model (its initial weights: every run trains a deep copy), data, a
loss and a batch size; all of them train with plain SGD (lr 0.01, no momentum).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import trainlab as tl

__all__ = ["Factory", "Workload", "bare", "big_mlp", "digits_cnn", "digits_mlp", "lab", "tiny"]

# A factory builds a run (untimed: model copies, loops); the run trains and returns its step count.
Factory = Callable[[], Callable[[], int]]


@dataclass(frozen=True)
class Workload:
    """One training: a model's initial weights, its data, loss and batch size."""

    name: str
    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: str  # "mse" or "cross_entropy"
    batch_size: int
    shuffle: bool = True
    lr: float = 0.01

    def fresh_model(self) -> nn.Module:
        """A copy of the model with the initial weights."""
        return copy.deepcopy(self.model)

    def criterion(self) -> nn.Module:
        """The loss as a module."""
        return nn.MSELoss() if self.loss == "mse" else nn.CrossEntropyLoss()

    def steps_per_epoch(self) -> int:
        """Batches in one pass over the data (the last one may be smaller)."""
        return math.ceil(len(self.inputs) / self.batch_size)


def tiny() -> Workload:
    """Seed 000's training: nn.Linear(10, 1), MSE, 100 samples, full batch, no shuffling."""
    torch.manual_seed(0)
    model, inputs, targets = nn.Linear(10, 1), torch.randn(100, 10), torch.randn(100, 1)
    return Workload("tiny linear, full batch", model, inputs, targets, "mse", batch_size=100, shuffle=False)


def digits_mlp(batch_size: int = 32) -> Workload:
    """An MLP 64-128-10 on the 1,797 flattened 8x8 digits."""
    X, y = tl.datasets.digits()
    return Workload(f"digits MLP, batch {batch_size}", tl.models.mlp(64, [128], 10, seed=0),
                    X.view(len(X), -1), y, "cross_entropy", batch_size)


def digits_cnn() -> Workload:
    """trainlab's small CNN on the 8x8 digits, batch 64."""
    X, y = tl.datasets.digits()
    return Workload("digits CNN, batch 64", tl.models.cnn(seed=0), X, y, "cross_entropy", batch_size=64)


def big_mlp() -> Workload:
    """An MLP 784-1024-512-10 (1.3M parameters) on 1,024 random 784-pixel samples, batch 64."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(1024, 784, generator=generator)
    targets = torch.randint(0, 10, (1024,), generator=generator)
    return Workload("1M-parameter MLP, batch 64", tl.models.mlp(784, [1024, 512], 10, seed=0),
                    inputs, targets, "cross_entropy", batch_size=64)


def bare(workload: Workload, epochs: int) -> Factory:
    """The fastest bare loop: batches sliced from tensors with one randperm an epoch, loss.item() each step."""
    def build() -> Callable[[], int]:
        model, criterion = workload.fresh_model(), workload.criterion()
        optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
        X, y, size = workload.inputs, workload.targets, workload.batch_size
        generator = torch.Generator().manual_seed(0)
        fixed = list(zip(X.split(size), y.split(size)))  # unshuffled batches are the same every epoch

        def run() -> int:
            steps = 0
            for _ in range(epochs):
                if workload.shuffle:
                    order = torch.randperm(len(X), generator=generator)
                    batches = ((X[index], y[index]) for index in order.split(size))
                else:
                    batches = fixed
                for inputs, targets in batches:
                    optimizer.zero_grad(set_to_none=True)
                    loss = criterion(model(inputs), targets)
                    loss.backward()
                    optimizer.step()
                    loss.item()  # what a user prints or sums: one host sync a step
                    steps += 1
            return steps
        return run
    return build


def lab(workload: Workload, epochs: int, stages: bool = False, rewind_memory_mb: float = 16) -> Factory:
    """The same training in trainlab: ``fit``, or the four stages called one by one (rewind on by default)."""
    def build() -> Callable[[], int]:
        loop = tl.Loop(workload.fresh_model(), (workload.inputs, workload.targets), workload.loss,
                       lr=workload.lr, batch_size=workload.batch_size, shuffle=workload.shuffle,
                       rewind_memory_mb=rewind_memory_mb)
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
    return build


def _fit(loop: tl.Loop, epochs: int) -> int:
    loop.fit(epochs=epochs)
    return loop.state.step
