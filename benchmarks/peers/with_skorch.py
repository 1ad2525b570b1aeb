"""skorch: a ``NeuralNet`` with its default callbacks but the printed log table, one ``partial_fit`` a run.

Its internal validation split is off (``train_split=None``), as the others validate
nothing; it gets the data as a Dataset, and the whole-batch DataLoader the others get.
"""

from __future__ import annotations

from collections.abc import Callable

import skorch
import torch
from torch.utils.data import TensorDataset

from benchmarks.peers.batches import batch_loader
from benchmarks.workloads import Workload

NAME = "skorch"
FEATURES = "loss.item() and the batch size each step into its history; batch callbacks (epoch timer, scoring)"


def version() -> str:
    """The installed version."""
    return skorch.__version__


def build(workload: Workload, epochs: int) -> Callable[[], int]:
    """A fresh net, initialised; the run is one ``partial_fit`` of ``epochs`` epochs."""
    net = skorch.NeuralNet(
        module=workload.fresh_model(), criterion=type(workload.criterion()), optimizer=torch.optim.SGD,
        lr=workload.lr, batch_size=workload.batch_size, max_epochs=epochs, train_split=None, verbose=0,
        iterator_train=batch_loader, iterator_train__shuffle=workload.shuffle, device="cpu",
        callbacks__print_log=None)  # skorch formats its per-epoch table even at verbose=0: off, as nobody reads it
    net.initialize()
    data = TensorDataset(workload.inputs, workload.targets)  # skorch takes a Dataset as X, with y=None

    def run() -> int:
        net.partial_fit(data, None)
        return epochs * workload.steps_per_epoch()
    return run
