"""poutyne: ``Model(network, optimizer, loss)``, one ``fit_generator`` a run."""

from __future__ import annotations

from collections.abc import Callable

import poutyne
import torch

from benchmarks.peers.batches import tensor_batches
from benchmarks.workloads import Workload

NAME = "poutyne"
FEATURES = "loss.item() and the batch size each step into its logs; batch callbacks (history, timing)"


def version() -> str:
    """The installed version."""
    return poutyne.__version__


def build(workload: Workload, epochs: int) -> Callable[[], int]:
    """A fresh model wrapped by poutyne; the run is one ``fit_generator``, silent."""
    network = workload.fresh_model()
    optimizer = torch.optim.SGD(network.parameters(), lr=workload.lr)
    model = poutyne.Model(network, optimizer, workload.criterion())
    loader = tensor_batches(workload)

    def run() -> int:
        model.fit_generator(loader, epochs=epochs, verbose=False)
        return epochs * len(loader)
    return run
