"""Right predictions counted in bulk: while ``fit`` runs and nobody looks, a run of steps at once.

Counting one batch's right predictions takes three small tensor operations (argmax, compare,
sum); on a CPU each costs more to launch than to run, so on a small model they are a good part
of what a step costs beyond a bare loop. While ``fit`` or ``run_epoch`` trains a classifier
with class scores ``(n, classes)`` and labels ``(n,)``, one update a step, and no handler
listens to any event (so nothing can read a step's numbers before the call returns), the loop
keeps each step's scores and labels instead and counts them all with one argmax: every
``EVERY`` steps, before a keyframe, before an epoch's end, before an update that failed is put
back, and when the call returns. The counts are whole numbers, summed exactly: the accuracy in
the logs, the history and the epoch's sums is what counting each step gives. Until a step is
counted its log and history row read NaN, and its right predictions are not yet in the epoch's
sums (so a batch put back to where it opened, with the sums it found, stays consistent).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["EVERY", "Tally", "countable_later"]

#: The most steps kept before they are counted: their scores are small, and a keyframe comes every 16 at most.
EVERY = 16


def countable_later(kind: str, outputs: Any, labels: Any) -> bool:
    """Whether a batch's right predictions can wait: class scores ``(n, classes)`` against whole labels ``(n,)``."""
    return (kind == "multiclass" and isinstance(outputs, Tensor) and isinstance(labels, Tensor)
            and outputs.dim() == 2 and labels.dim() == 1 and not labels.is_floating_point())


class Tally:
    """The scores, labels and logs of the steps whose right predictions are not counted yet."""

    def __init__(self) -> None:
        self.scores: list[Tensor] = []
        self.labels: list[Tensor] = []
        self.logs: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.logs)

    def add(self, scores: Tensor, labels: Tensor, log: dict[str, Any]) -> None:
        """Keep a committed step's scores and labels; its log's accuracy reads NaN until counted."""
        log["accuracy"] = math.nan
        self.scores.append(scores)
        self.labels.append(labels)
        self.logs.append(log)

    def count(self) -> list[float]:
        """Each kept step's right predictions, in order, counted together."""
        ends, end = [], -1
        for labels in self.labels:
            end += len(labels)
            ends.append(end)
        with torch.no_grad():  # the scores may still belong to a (used) graph
            right = torch.cat(self.scores).argmax(1) == torch.cat(self.labels)
            # The running count at each step's last sample: whole numbers, exact in float64.
            running = right.cumsum(0, dtype=torch.float64)[torch.tensor(ends, device=right.device)].tolist()
        return [after - before for after, before in zip(running, [0.0, *running[:-1]])]

    def settle(self, epoch_sums: list, history: Any) -> None:
        """Count the kept steps into their logs, the epoch's sums (``[loss_sum, samples, correct]``) and history."""
        if not self.logs:
            return
        logs, counts = self.logs, self.count()
        self.scores, self.labels, self.logs = [], [], []
        for log, correct in zip(logs, counts):
            log["accuracy"] = correct / log["batch_size"]
            epoch_sums[2] += correct
        history.fill("accuracy", [log["step"] for log in logs], [log["accuracy"] for log in logs])
