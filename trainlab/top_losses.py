"""The mistakes: the samples the model gets most wrong, highest loss first (fastai's ``top_losses``).

    worst = tl.top_losses(loop, k=9)
    worst.indices      # positions in the data looked at (the validation data, unless there is none)
    worst.losses       # their losses, highest first
    worst.targets, worst.predictions   # what each is, and what the model says (a class, for classification)
    worst.inputs       # their inputs, to draw
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab.batching import first_tensor, map_tensors, rows
from trainlab.looking import looked_at, predicted_classes, true_classes
from trainlab.metrics import pick
from trainlab.arguments import whole_number

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["TopLosses", "top_losses"]


@dataclass(frozen=True)
class TopLosses:
    """The ``k`` samples with the highest loss, highest first."""

    indices: np.ndarray  # (k,) int64: positions in the data looked at (``which``)
    losses: np.ndarray  # (k,) float64, highest first
    targets: np.ndarray  # (k,) true classes (classification), or the targets as given (k, ...)
    predictions: np.ndarray  # (k,) predicted classes (classification), or the predictions (k, ...)
    inputs: Any  # their inputs: a tensor (k, ...), or a tuple/dict of them, on the CPU
    which: str  # the data looked at: "validation", "training" or "given"

    def __len__(self) -> int:
        return len(self.indices)


def top_losses(loop: Loop, k: int = 9, data: Any = None) -> TopLosses:
    """The ``k`` samples with the highest loss on the validation data (the training split when there is
    none, or ``data``), each with its true and predicted label; the run is left exactly as it was.

    A sample's loss is the loop's loss on that sample alone (a PyTorch loss with ``reduction="none"``).
    Ties keep the data's order. Example: ``tl.top_losses(loop, k=9).indices``.
    """
    k = whole_number(k, "k", 1, "9")
    looked = looked_at(loop, data, losses=True)
    order = torch.sort(looked.losses.cpu(), descending=True, stable=True).indices[:k]
    kind = loop.accuracy_kind
    predicted = predicted_classes(kind, looked.predictions)
    targets = pick(looked.targets, loop.accuracy_target)  # of several targets, the one accuracy reads
    targets = targets if isinstance(targets, torch.Tensor) else first_tensor(targets)  # none named: the first
    true = true_classes(kind, targets)
    predicted = looked.predictions if predicted is None else predicted
    true = targets if true is None else true
    return TopLosses(indices=order.numpy().astype(np.int64), losses=looked.losses.cpu().numpy()[order.numpy()],
                     targets=true.cpu()[order].numpy(), predictions=predicted.cpu()[order].numpy(),
                     inputs=map_tensors(rows(looked.inputs, order.to(first_tensor(looked.inputs).device)), lambda t: t.cpu()),
                     which=looked.which)

