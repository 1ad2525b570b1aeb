"""Peer libraries timed on the same workloads as trainlab: ``python -m benchmarks --peers``.

Each module here wraps one library in the same three names: ``NAME``, ``FEATURES`` (what it
does every step besides the training itself), ``version()``, and ``build(workload, epochs)``,
which builds a run (untimed) that trains ``epochs`` epochs and returns its step count. A
module imports its library at the top, so a library that is not installed fails the import
and is skipped. Nothing is installed here: ``pip install -e ".[peers]"``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MODULES", "load"]

# trainlab first: the table compares it with the others on the same footing.
MODULES = ["with_trainlab", "with_lightning", "with_ignite", "with_keras", "with_skorch", "with_poutyne"]


def load(name: str) -> ModuleType | str:
    """The peer's module, or why it cannot be imported."""
    try:
        return importlib.import_module(f"benchmarks.peers.{name}")
    except Exception as error:  # noqa: BLE001 -- not installed, or installed but broken: skip either way
        return f"{type(error).__name__}: {error}".splitlines()[0]
