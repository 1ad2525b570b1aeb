"""Looking at a model without touching the run: what the confusion matrix, the mistakes, the summary
and the recorders share.

Every look runs the model in eval mode (dropout off, BatchNorm on its running statistics) under
``torch.no_grad()``, with torch's random state put back afterwards and the loop held (no other
thread trains meanwhile), so the run goes on exactly as if nobody had looked: the same weights,
buffers, random streams and next batch. Only the loop's public API is used.

The data looked at is the validation data, or the training split when there is none, or data
passed in (``(X, y)``, a Dataset or a DataLoader), brought in line with the training data.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import Tensor, nn

from trainlab.batching import as_tensors, first_tensor, map_tensors
from trainlab.metrics import EVAL_BATCH, eval_mode, ignored_label
from trainlab.options import check_targets

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Looked", "quietly", "looked_at", "evaluation_data", "per_sample_losses", "predicted_classes",
           "true_classes"]


@contextmanager
def quietly(loop: Loop) -> Iterator[None]:
    """The loop held, its model in eval mode without gradients; torch's random state put back afterwards."""
    device = torch.device(loop.device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with loop.hold(), eval_mode(loop.model), torch.no_grad(), torch.random.fork_rng(devices=cuda):
        yield


def evaluation_data(loop: Loop, data: Any = None) -> tuple[Any, Tensor, str]:
    """``(inputs, targets, which)``: ``data`` as given ("given"), else the validation data ("validation"),
    else the training split ("training")."""
    if data is not None:
        inputs, targets = as_tensors(data, "data")
        return inputs, check_targets(loop.loss_name, loop.accuracy_kind, targets, "data"), "given"
    if loop.val_data is not None:
        return (*loop.val_data, "validation")
    return (*loop.train_data, "training")


@dataclass(frozen=True)
class Looked:
    """The model's verdict on a data set, sample by sample."""

    inputs: Any  # as given: a tensor (n, ...), or a tuple/dict of them
    targets: Any  # (n, ...) on the loop's device, or several such (a tuple/dict: see ``loop.accuracy_target``)
    predictions: Tensor  # the part of the outputs that holds the predictions (``outputs=`` of the Loop), (n, ...)
    losses: Tensor | None  # (n,) each sample's loss (float64), when asked for
    which: str  # "validation", "training" or "given"


def looked_at(loop: Loop, data: Any = None, losses: bool = False) -> Looked:
    """The model's predictions (and each sample's loss) over ``data`` (see ``evaluation_data``), quietly.

    Batches of ``EVAL_BATCH`` samples go through ``loop.predict``; a forward hook on the model
    keeps what it returned whole, since the loss takes all of it (a tuple, a dict).
    """
    inputs, targets, which = evaluation_data(loop, data)
    targets = map_tensors(targets, lambda t: t.to(loop.device))  # one tensor, or several (a tuple, a dict)
    whole: list[Any] = []
    predictions, per_sample = [], []
    with quietly(loop):
        handle = loop.model.register_forward_hook(lambda module, args, output: whole.append(output))
        try:
            for start in range(0, len(first_tensor(targets)), EVAL_BATCH):
                chunk = map_tensors(inputs, lambda t: t[start:start + EVAL_BATCH])
                whole.clear()
                predictions.append(loop.predict(chunk))
                if losses:
                    wanted = map_tensors(targets, lambda t: t[start:start + EVAL_BATCH])
                    if isinstance(wanted, Tensor) and wanted.is_floating_point():  # given as float64: the model's
                        wanted = wanted.to(predictions[-1].dtype)
                    per_sample.append(per_sample_losses(loop.loss_fn, whole[-1], wanted))
        finally:
            handle.remove()
    return Looked(inputs, targets, torch.cat(predictions), torch.cat(per_sample) if losses else None, which)


def per_sample_losses(loss_fn: Any, outputs: Any, targets: Tensor) -> Tensor:
    """Each sample's loss (float64, shape (n,)): a PyTorch loss with ``reduction="none"`` (averaged over
    a sample's own values), any other loss function called on one sample at a time."""
    n = len(first_tensor(targets))
    if isinstance(loss_fn, nn.modules.loss._Loss) and getattr(loss_fn, "reduction", None) in ("mean", "sum"):
        unreduced = copy.copy(loss_fn)  # shares its weights; only the reduction differs
        unreduced.reduction = "none"
        values = unreduced(outputs, targets)
        if isinstance(values, Tensor) and values.dim() >= 1 and len(values) == n:
            values = values.detach().double().reshape(n, -1)
            ignored = ignored_label(loss_fn)
            if ignored is None or not isinstance(targets, Tensor) or targets.numel() != values.numel():
                return values.mean(1)
            counted = (targets.reshape(n, -1) != ignored).double()  # per token: the tokens the loss counts
            return (values * counted).sum(1) / counted.sum(1).clamp(min=1)
    singles = [loss_fn(_sample(outputs, i), _sample(targets, i)) for i in range(n)]
    return torch.stack([value.detach().double().reshape(()) for value in singles]) if singles else torch.zeros(0)


def _sample(outputs: Any, i: int) -> Any:
    """Sample ``i`` of what the model returned, as a batch of one (a tensor, or a tuple/list/dict of them)."""
    if isinstance(outputs, Tensor):
        return outputs[i:i + 1]
    if isinstance(outputs, dict):
        return {key: _sample(value, i) for key, value in outputs.items()}
    if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):  # a namedtuple
        return type(outputs)(*(_sample(value, i) for value in outputs))
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_sample(value, i) for value in outputs)
    return outputs


def predicted_classes(kind: str | None, predictions: Tensor) -> Tensor | None:
    """The class each sample is predicted to be ((n,) int64; multi-label: (n, labels) of 0/1), or None
    when the loss is not a classification loss."""
    if kind is None:
        return None
    if kind == "multiclass":
        return predictions.argmax(1)
    threshold = 0.5 if kind.endswith("_probs") else 0.0  # probabilities, or raw scores (logits)
    above = (predictions.reshape(len(predictions), -1) > threshold).long()
    return above[:, 0] if kind.startswith("binary") else above


def true_classes(kind: str | None, targets: Tensor) -> Tensor | None:
    """Each sample's true class, like ``predicted_classes`` (probability targets: their most likely class)."""
    if kind is None:
        return None
    if kind == "multiclass":
        return targets.argmax(1) if targets.is_floating_point() else targets.long()
    above = (targets.reshape(len(targets), -1) > 0.5).long()
    return above[:, 0] if kind.startswith("binary") else above
