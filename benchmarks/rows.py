"""The rows that need more than a workload: row 1's floor, seed 001's DataLoader loop, rewind's times."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

import trainlab as tl

from benchmarks.workloads import Factory, Workload

__all__ = ["floor", "seed001", "rewind_times"]


def floor(workload: Workload, epochs: int) -> Factory:
    """Row 1': a full-batch bare loop plus the least any lab step must do.

    That least is what the contract asks of every step: keep a copy of the weights from
    before the update (rewind, exact restore) and record every layer's gradient norm.
    """
    def build() -> Callable[[], int]:
        model, criterion = workload.fresh_model(), workload.criterion()
        optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
        params, kept, norms = list(model.parameters()), [], []
        inputs, targets = workload.inputs, workload.targets

        def run() -> int:
            for _ in range(epochs):
                kept.append([p.detach().clone() for p in params])
                del kept[:-100]
                loss = criterion(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norms.append(torch.stack(torch._foreach_norm([p.grad for p in params])).tolist())
                optimizer.step()
                loss.item()
            return epochs
        return run
    return build


def seed001(workload: Workload, epochs: int) -> Factory:
    """Seed 001's loop: a shuffling DataLoader, zero_grad / forward / loss / backward / step, running loss."""
    def build() -> Callable[[], int]:
        model, criterion = workload.fresh_model(), workload.criterion()
        optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
        loader = DataLoader(TensorDataset(workload.inputs, workload.targets), batch_size=workload.batch_size,
                            shuffle=True, generator=torch.Generator().manual_seed(0))

        def run() -> int:
            steps = 0
            for _ in range(epochs):
                running_loss = 0.0
                for inputs, labels in loader:
                    optimizer.zero_grad()
                    loss = criterion(model(inputs), labels)
                    loss.backward()
                    optimizer.step()
                    running_loss += loss.item()
                    steps += 1
            return steps
        return run
    return build


def rewind_times(workload: Workload, steps: int, amounts: list[int]) -> dict[str, object]:
    """``loop.rewind(n)`` after ``steps`` steps, for each n within reach: the worst time, and whether it was exact.

    Exact: the weights after rewind(n) equal, bit for bit, those the run had n steps earlier.
    """
    loop = tl.Loop(workload.fresh_model(), (workload.inputs, workload.targets), workload.loss,
                   lr=workload.lr, batch_size=workload.batch_size, shuffle=workload.shuffle)
    weights = {}
    for _ in range(steps):
        weights[loop.state.step] = [p.detach().clone() for p in loop.model.parameters()]
        loop.step()
    depth = loop.rewind_depth
    worst, exact = 0.0, True
    for amount in [n for n in amounts if n <= depth]:
        start = time.perf_counter()
        loop.rewind(amount)
        worst = max(worst, time.perf_counter() - start)
        exact &= all(torch.equal(p, q) for p, q in zip(loop.model.parameters(), weights[loop.state.step]))
        while loop.state.step < steps:
            loop.step()
    return {"depth": depth, "amounts": [n for n in amounts if n <= depth], "worst_s": worst, "exact": exact}
