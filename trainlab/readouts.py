"""What a learner looks at in a loop: its counters, the stage that is due, the open batch and what its
stages filled in, the last gradients, the training data.

Properties and methods of ``Loop``, defined here and named in its class body (``state = readouts.state``);
none of them changes the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from trainlab.metrics import pick
from trainlab.state import OpenBatch, State

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["state", "next_stage", "batch", "open_batch", "last_outputs", "last_predictions", "last_loss",
           "last_grad_norms", "n_train", "epoch_progress", "train_data", "first_train_samples", "accuracy_target",
           "loss_scale", "evaluate", "predict"]


@property
def state(self: Loop) -> State:
    """The counters: ``epoch`` (completed epochs), ``step`` (completed updates), ``skipped`` batches."""
    return self._run.counters


@property
def next_stage(self: Loop) -> str:
    """The stage that is due: "forward", "loss", "backward" or "update"."""
    return self._batch.due if self._batch is not None else "forward"


@property
def batch(self: Loop) -> tuple[Any, Tensor] | None:
    """The open batch's ``(inputs, targets)``, or None between batches."""
    return (self._batch.inputs, self._batch.targets) if self._batch is not None else None


@property
def open_batch(self: Loop) -> OpenBatch | None:
    """A read-only look at the open batch: inputs, targets, what its stages filled in, its random state (and,
    with ``accumulate``, which micro-batch of the update it is)."""
    return OpenBatch.of(self._batch, self.accumulate) if self._batch is not None else None


@property
def last_outputs(self: Loop) -> Any:
    """What the model returned for the open batch (after forward), or None."""
    return self._batch.outputs if self._batch is not None else None


@property
def last_predictions(self: Loop) -> Tensor | None:
    """The part of the open batch's outputs that holds the predictions (see ``outputs=``), or None."""
    batch = self._batch
    return pick(batch.outputs, self._part) if batch is not None and batch.outputs is not None else None


@property
def last_loss(self: Loop) -> Tensor | None:
    """The open batch's loss (after loss()), or None."""
    return self._batch.loss if self._batch is not None else None


@property
def last_grad_norms(self: Loop) -> dict[str, float]:
    """{parameter name: gradient norm} from the last backward(), this batch's or the last update's."""
    batch = self._batch if self._batch is not None and self._batch.grad_norms is not None else self._last_batch
    return batch.grad_norms if batch is not None and batch.grad_norms is not None else {}


@property
def n_train(self: Loop) -> int:
    """The number of training samples (one epoch)."""
    return self._run.sampler.n


@property
def epoch_progress(self: Loop) -> tuple[int, int]:
    """(samples of this epoch already trained on, samples per epoch)."""
    return self._run.progress(self._batch)


@property
def train_data(self: Loop) -> tuple[Any, Tensor]:
    """The training split ``(X, y)`` (from a DataLoader: all its batches, collected when first asked)."""
    return self._data.whole_train


def first_train_samples(self: Loop, n: int) -> tuple[Any, Tensor]:
    """The first ``n`` training samples ``(X, y)`` (from a DataLoader, only those, moving no random stream)."""
    with self._guard:  # fetching draws random numbers (augmentation): not while another thread trains
        return self._data.first_train(n)


@property
def accuracy_target(self: Loop) -> int | str | None:
    """Which of several targets accuracy reads (an index or a key, ``accuracy=``); None: the targets are one."""
    return self._target_part


@property
def loss_scale(self: Loop) -> float | None:
    """precision="fp16": what the loss is multiplied by before backward (halved after gradients overflow); else None."""
    return self._scaling.scale if self._scaling is not None else None


def evaluate(self: Loop, data: Any = None) -> dict[str, float]:
    """Loss (and accuracy) on ``data``, or on the validation data; in eval mode, without gradients.
    A model that samples in eval mode draws from a copy of the loop's random stream: the same numbers
    each time at the same point of the run, and the run itself is left as it was."""
    with self._guard:
        return self._on_stream(self._data.scores, data, advance=False)


def predict(self: Loop, inputs: Any) -> Tensor:
    """The model's predictions for ``inputs`` (the ``outputs`` part), in eval mode, without gradients."""
    with self._guard:
        return self._on_stream(self._data.predictions, inputs, advance=False)
