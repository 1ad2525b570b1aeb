"""trainlab itself, timed by the same rules as the peers: ``tl.Loop(...).fit(epochs=n)``."""

from __future__ import annotations

from collections.abc import Callable

import trainlab as tl
from benchmarks.workloads import Workload, lab

NAME = "trainlab"
FEATURES = ("every layer's gradient norm (one host sync), the accuracy (counted in bulk, up to 16 steps at "
            "once), NaN/inf check on loss and gradients, rewind (a full copy every 16 steps, 8 for the 1M MLP), per-step "
            "history, before/after events for every stage")


def version() -> str:
    """The installed version."""
    return tl.__version__


def build(workload: Workload, epochs: int) -> Callable[[], int]:
    """A fresh loop over the workload; the run is one ``fit``."""
    return lab(workload, epochs)()
