"""The confusion matrix: which classes the model mistakes for which.

Row ``t``, column ``p`` counts the samples of true class ``t`` the model predicts as ``p``: the
diagonal holds the right answers, everything else a mistake. Counted on the validation data (or
the training split when there is none, or data passed in), in eval mode, leaving the run as it was.

    counts = tl.confusion(loop)          # (classes, classes) int64
    counts / counts.sum(1, keepdims=True)  # row shares: how each true class is predicted
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from trainlab.looking import looked_at, predicted_classes, true_classes
from trainlab.metrics import ignored_label, pick

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["confusion", "row_shares"]


def confusion(loop: Loop, data: Any = None) -> np.ndarray:
    """A (classes, classes) array of counts: rows = true class, columns = predicted class (per token for a
    class per token or pixel, leaving out the loss's ``ignore_index``).

    ``data``: ``(X, y)`` (or a Dataset, a DataLoader) to count on instead of the validation data;
    without it and without validation data, the training split. Classification only: cross-entropy
    (classes = the model's outputs per sample) or binary cross-entropy on one output (2 classes).
    """
    kind = loop.accuracy_kind
    if kind is None or kind.startswith("multilabel"):
        what = "several labels per sample" if kind else f"the loss {loop.loss_name!r}, which is not a classification loss"
        raise ValueError(f"a confusion matrix counts one predicted class against one true class per sample; "
                         f"this loop has {what}")
    looked = looked_at(loop, data)
    predicted = predicted_classes(kind, looked.predictions).cpu().numpy().reshape(-1)  # per token: every token
    true = true_classes(kind, pick(looked.targets, loop.accuracy_target)).cpu().numpy().reshape(-1)
    ignored = ignored_label(loop.loss_fn)
    if ignored is not None:  # tokens the loss leaves out (padding) are no one's mistake
        predicted, true = predicted[true != ignored], true[true != ignored]
    classes = looked.predictions.shape[1] if kind == "multiclass" else 2
    if len(true) and true.max() >= classes:
        raise ValueError(f"the targets hold class {int(true.max())}, but the model predicts only {classes} classes")
    return np.bincount(true * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def row_shares(counts: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix as shares of its true class (a row without samples: 0)."""
    totals = counts.sum(1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, np.float64), where=totals > 0)
