"""What the loop measures besides the loss: accuracy, gradient norms, and evaluation in eval mode.

Accuracy, by the kind of loss (``accuracy_kind``):

- "multiclass" (cross_entropy, NLLLoss): the share of samples whose highest score is the
  target class (with probability targets: their most likely class); per token or pixel for
  outputs (n, classes, d1, ...) and targets (n, d1, ...), leaving out the loss's ``ignore_index``
  (each batch's share of right tokens counts as many times as it has samples, like its loss);
- "binary_logits" / "binary_probs" (bce on one score per sample, BCELoss): the share of
  samples on the right side of 0 (a logit) or 0.5 (a probability);
- "multilabel_logits" / "multilabel_probs" (bce with targets of shape (n, k), k > 1): the
  share of labels predicted right, over every sample and label (scikit-learn's Hamming score);
- None (mse, other losses): accuracy means nothing and is not recorded.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from trainlab.batching import call_model, first_tensor, map_tensors

__all__ = ["accuracy_kind", "count_correct", "grad_norms", "dense_values", "clip_grad_norm", "total_norm",
           "ignored_label", "update_ratios", "RatioMeter", "first_non_finite", "eval_mode",
           "evaluate", "pick"]

EVAL_BATCH = 1024  # evaluation needs no gradients, so it can use big batches
_ZERO = torch.zeros(())


def accuracy_kind(loss_fn: Any, targets: Tensor | None = None) -> str | None:
    """How accuracy is counted for this loss (and these targets), or None when it means nothing."""
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)):
        return "multiclass"
    output = ("logits" if isinstance(loss_fn, nn.BCEWithLogitsLoss) else
              "probs" if isinstance(loss_fn, nn.BCELoss) else None)
    if output is None:
        return None
    several = targets is not None and targets.dim() >= 2 and targets[0].numel() > 1
    return f"{'multilabel' if several else 'binary'}_{output}"


def count_correct(kind: str, outputs: Tensor, targets: Tensor, dtype: torch.dtype | None = None,
                  ignore_index: int | None = None) -> Tensor:
    """Right predictions in a batch, as a tensor (no sync): samples, or for multi-label, labels / k.

    Per token or pixel (class scores on dim 1 of outputs (n, classes, d1, ...)): the share of right
    tokens, leaving out ``ignore_index``, times the batch's samples."""
    if kind == "multiclass":
        labels = targets.argmax(1) if targets.is_floating_point() else targets
        right = outputs.argmax(1) == labels
        if labels.dim() == 1:
            return right.sum(dtype=dtype)
        if ignore_index is not None and not targets.is_floating_point():
            counted = labels != ignore_index
            tokens = counted.sum(dtype=torch.float32).clamp(min=1.0)
            right = right & counted
        else:
            tokens = labels.numel() or 1
        return right.sum(dtype=torch.float32) / tokens * len(labels)
    threshold = 0.0 if kind.endswith("_logits") else 0.5
    right = ((outputs.reshape(targets.shape) > threshold) == (targets > 0.5)).sum(dtype=dtype or torch.float32)
    labels_per_sample = targets[0].numel() if len(targets) else 1
    return right / labels_per_sample if labels_per_sample > 1 else right


def ignored_label(loss_fn: Any) -> int | None:
    """The label a classification loss leaves out (``ignore_index``, -100 by default), or None."""
    index = getattr(loss_fn, "ignore_index", None)
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def dense_values(grad: Tensor) -> Tensor:
    """A gradient's stored numbers: itself, or a sparse gradient's values (nn.Embedding(sparse=True))."""
    return grad.coalesce().values() if grad.is_sparse else grad


def grad_norms(params: list[nn.Parameter], extra: Tensor | None = None) -> list[float]:
    """Every parameter's gradient norm (and ``extra``, appended) in one host sync."""
    grads = [p.grad if p.grad is not None else _ZERO for p in params]
    try:
        values = list(torch._foreach_norm(grads))
    except (NotImplementedError, RuntimeError):  # a sparse gradient: each measured on its values
        values = [torch.linalg.vector_norm(dense_values(g)) for g in grads]
    if extra is not None:
        values.append(extra.to(values[0].dtype) if values else extra)
    return torch.stack(values).tolist() if values else []


def total_norm(params: list[nn.Parameter]) -> float:
    """The gradients' total norm, as one number (one host sync)."""
    norms = grad_norms(params)
    return math.sqrt(math.fsum(v * v for v in norms))


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """torch's ``clip_grad_norm_``; with sparse gradients, the same rule on their values."""
    try:
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    except (NotImplementedError, RuntimeError):  # raised while measuring, before any gradient is scaled
        pass
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(dense_values(g)) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))


def update_ratios(names: list[str], params: list[nn.Parameter], before: dict[str, Tensor]) -> dict[str, float]:
    """||change|| / ||weights|| for each parameter since ``before`` (its weights by name), in one host sync."""
    old = [before[name] for name in names]
    sizes = torch._foreach_norm(old)
    changes = torch._foreach_norm(torch._foreach_sub([p.detach() for p in params], old))
    numbers = torch.stack(changes + sizes).tolist()
    k = len(names)
    return {name: numbers[i] / numbers[k + i] if numbers[k + i] else math.inf for i, name in enumerate(names)}


class RatioMeter:
    """The last measured update's ratios ||change|| / ||weights||, and whether to measure the next update."""

    def __init__(self, names: list[str], params: list[nn.Parameter]) -> None:
        self.names, self.params = names, params
        self.latest: tuple[int, dict[str, float]] | None = None  # (step, ratios) of the last update measured
        self.wanted = False  # measure the next update (a plot redrawn while training asked)

    def weights(self) -> dict[str, Tensor]:
        """The parameters now, by name (copies): what an update's ratios are measured against."""
        return {name: p.detach().clone() for name, p in zip(self.names, self.params)}

    def measure(self, step: int, before: dict[str, Tensor]) -> None:
        """The ratios of update ``step`` (the last one), from the parameters as they were before it."""
        self.latest = (step, update_ratios(self.names, self.params, before))
        self.wanted = False


def first_non_finite(names: list[str], params: list[nn.Parameter], norms: list[float]) -> str | None:
    """The first parameter whose gradient has a NaN/inf, judged on the gradient itself.

    A finite norm proves a finite gradient; an infinite norm may come from a huge but
    finite gradient (float32 overflows in the sum of squares), so look closer there.
    """
    if math.isfinite(math.fsum(norms)):
        return None
    for i, (name, p) in enumerate(zip(names, params)):
        if not math.isfinite(norms[i]):
            values = dense_values(p.grad)
            if not bool(torch.isfinite(values).all()):
                return name
            norms[i] = float(values.double().norm())
    return None


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards every module's own flag as it was (a frozen BatchNorm stays frozen)."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def pick(outputs: Any, part: int | str | None) -> Any:
    """The part of a model's outputs that holds its predictions (``outputs=`` of the Loop); all when None."""
    if part is None:
        return outputs
    if isinstance(part, str) and not isinstance(outputs, dict):
        return getattr(outputs, part)  # a namedtuple's field
    return outputs[part]


def evaluate(model: nn.Module, loss_fn: Callable[..., Tensor], kind: str | None,
             inputs: Any, targets: Any, part: int | str | None = None, target_part: int | str | None = None,
             context: Callable[[], Any] = nullcontext) -> dict[str, float]:
    """Mean loss (and accuracy) over the data, in eval mode, without gradients, in big batches.

    ``targets`` may be several (a tuple or dict, passed to the loss as they are; ``target_part``
    names the one accuracy reads); the model and loss run inside ``context()`` (autocast, for one)."""
    loss_sum, correct = 0.0, 0.0
    n = len(first_tensor(targets))
    ignore = ignored_label(loss_fn)
    with eval_mode(model), torch.no_grad(), context():
        for start in range(0, n, EVAL_BATCH):
            x = map_tensors(inputs, lambda t: t[start:start + EVAL_BATCH])
            y = map_tensors(targets, lambda t: t[start:start + EVAL_BATCH])
            size = len(first_tensor(y))
            outputs = call_model(model, x)
            loss_sum += loss_fn(outputs, y).item() * size
            if kind:
                correct += count_correct(kind, pick(outputs, part), pick(y, target_part),
                                         ignore_index=ignore).item()
    result = {"loss": loss_sum / n}
    if kind:
        result["accuracy"] = correct / n
    return result
