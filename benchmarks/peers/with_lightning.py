"""PyTorch Lightning: a LightningModule around the model, one ``Trainer.fit`` a run.

The Trainer runs ``barebones=True`` (no progress bar, logger, checkpointing, model summary or
other extras): the cheapest Lightning a user can ask for.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import lightning
import torch
from torch import nn

from benchmarks.peers.batches import tensor_batches
from benchmarks.workloads import Workload

NAME = "PyTorch Lightning"
FEATURES = "its hooks and loop machinery only (barebones: progress bar, logger, checkpointing, summary off)"

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # "GPU available: False ..." on every fit
warnings.filterwarnings("ignore", module="lightning")  # "the train dataloader does not have many workers"


class _Module(lightning.LightningModule):
    """The workload's model, loss and SGD, as Lightning wants them."""

    def __init__(self, model: nn.Module, criterion: nn.Module, lr: float) -> None:
        super().__init__()
        self.model, self.criterion, self.lr = model, criterion, lr

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        return self.criterion(self.model(inputs), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def version() -> str:
    """The installed version."""
    return lightning.__version__


def build(workload: Workload, epochs: int) -> Callable[[], int]:
    """A fresh module and Trainer; the run is one ``fit``."""
    module = _Module(workload.fresh_model(), workload.criterion(), workload.lr)
    loader = tensor_batches(workload)
    trainer = lightning.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, barebones=True)

    def run() -> int:
        trainer.fit(module, loader)
        return trainer.global_step
    return run

