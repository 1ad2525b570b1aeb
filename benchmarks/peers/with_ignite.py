"""PyTorch Ignite: ``create_supervised_trainer``, one ``Engine.run`` a run."""

from __future__ import annotations

from collections.abc import Callable

import ignite
import torch
from ignite.engine import create_supervised_trainer

from benchmarks.peers.batches import tensor_batches
from benchmarks.workloads import Workload

NAME = "PyTorch Ignite"
FEATURES = "loss.item() each step (its default output); events fired with no handlers attached"


def version() -> str:
    """The installed version."""
    return ignite.__version__


def build(workload: Workload, epochs: int) -> Callable[[], int]:
    """A fresh model and trainer engine; the run is one ``run``."""
    model = workload.fresh_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
    trainer = create_supervised_trainer(model, optimizer, workload.criterion())
    loader = tensor_batches(workload)

    def run() -> int:
        trainer.run(loader, max_epochs=epochs)
        return trainer.state.iteration
    return run
