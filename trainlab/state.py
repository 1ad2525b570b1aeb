"""A loop's progress: its counters (``State``) and the batch it is in the middle of (``Batch``).

Which stage is due follows from what the open batch has filled in: no outputs yet ->
forward; outputs but no loss -> loss; a loss but no gradient norms -> backward; all three
-> update. With no batch open, forward is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from trainlab.history import HistoryMark

__all__ = ["State", "Batch", "BatchStart"]


@dataclass
class State:
    """Counters of a loop's progress."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed updates
    skipped: int = 0  # batches skipped because of non-finite values (on_nonfinite="skip_batch")


@dataclass(eq=False)
class BatchStart:
    """The loop as a batch found it, minus what only an update changes (weights, optimizer state).

    Cheap to take at every batch: it is what a failed stage puts back, what a snapshot taken
    mid-batch records, and where a replay to this batch stops.
    """

    place: dict[str, Any]  # "rng", "sampler", "counters", "batch_size", in a checkpoint's layout
    buffers: dict[str, Tensor]  # copies of the model's buffers: BatchNorm's statistics move in forward
    history: HistoryMark

    @property
    def step(self) -> int:
        """Completed updates when the batch opened."""
        return self.place["counters"]["step"]

    @property
    def skipped(self) -> int:
        """Batches skipped (non-finite) when the batch opened."""
        return self.place["counters"]["skipped"]


@dataclass(eq=False)
class Batch:
    """One batch from the moment forward() draws it until update() (or a skip) closes it."""

    inputs: Any  # what the model is called with: a tensor (or a tuple / dict of tensors)
    targets: Tensor
    start: int  # the position of its first sample in this epoch's order
    opened: BatchStart  # the loop as it was when the batch opened: what a failed stage puts back
    outputs: Any = None  # forward(): what the model returned
    forward_rng: Tensor | None = None  # forward(): the loop's random state it drew from (dropout's masks)
    loss: Tensor | None = None  # loss(): 0-d, attached to the graph
    loss_value: float = 0.0  # loss() as a float (the step's one sync for the loss)
    grad_norms: dict[str, float] | None = None  # backward(): {parameter name: gradient norm}
    correct: float = 0.0  # backward(): right predictions (classification)
    clipped_norm: float | None = None  # update(): the gradients' total norm after clipping

    @property
    def due(self) -> int:
        """The index in STAGES of the stage that is due."""
        if self.outputs is None:
            return 0
        if self.loss is None:
            return 1
        return 2 if self.grad_norms is None else 3

    @property
    def size(self) -> int:
        """The number of samples in the batch."""
        return len(self.targets)
