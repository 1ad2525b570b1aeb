"""Checkpoints on disk: written atomically, read safely, checked before anything changes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainlab.errors import CheckpointError
from trainlab.options import OPTIMIZERS

__all__ = ["FORMAT", "write", "read", "check_model", "check_position"]

FORMAT = "trainlab-checkpoint"
VERSION = 1
_KEYS = {"format", "version", "state", "history"}
_STATE_KEYS = {"model", "optimizer_type", "optimizer", "scheduler", "rng", "sampler", "counters", "batch_size"}


def write(path: str | os.PathLike, state: dict[str, Any], history: dict[str, Any]) -> Path:
    """Save atomically: a temp file in the same folder, flushed to disk, then renamed over ``path``."""
    target = Path(path)
    payload = {"format": FORMAT, "version": VERSION, "state": state, "history": history}
    for stale in (target.parent or Path(".")).glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)  # left by a save that was killed before its rename
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, target)  # atomic: readers see the old file or the new one, never half
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def read(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its outer layout."""
    target = Path(path)
    if not target.is_file():
        raise CheckpointError(f"no checkpoint at {str(target)!r}; check the path (loop.save(path) writes one)")
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, random bytes, pickles of arbitrary objects...
        raise CheckpointError(f"{str(target)!r} is not a readable checkpoint (corrupt, truncated or "
                              f"not made by loop.save): {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(target)!r} is not a trainlab checkpoint; make one with loop.save(path)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{str(target)!r} has checkpoint version {payload.get('version')!r}; "
                              f"this trainlab reads version {VERSION}")
    _expect_keys(payload, _KEYS, "the checkpoint")
    _expect_keys(payload["state"], _STATE_KEYS, "the checkpoint's state")
    return payload


def check_model(saved: Any, current: dict[str, Tensor]) -> None:
    """Refuse a model state that does not fit the loop's model, naming the first mismatch."""
    if not isinstance(saved, dict):
        raise CheckpointError("the checkpoint's model state is not a dict of tensors")
    _expect_keys(saved, set(current), "the checkpoint's model (another architecture?)")
    for name, tensor in current.items():
        other = saved[name]
        if not isinstance(other, Tensor) or other.shape != tensor.shape or other.dtype != tensor.dtype:
            shape = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
            raise CheckpointError(f"the checkpoint's {name!r} has shape {shape} but the model's has "
                                  f"{tuple(tensor.shape)}: it was saved from another architecture")


def check_position(state: dict[str, Any], n_train: int) -> None:
    """Refuse a checkpoint whose place in the epoch does not fit this loop's training data."""
    sampler = state["sampler"]
    if not isinstance(sampler, dict) or set(sampler) != {"rng", "order", "position"}:
        raise CheckpointError("the checkpoint's data position is malformed")
    order, position = sampler["order"], sampler["position"]
    if order is not None and (not isinstance(order, Tensor) or order.shape != (n_train,)):
        raise CheckpointError(f"the checkpoint was saved with another training set (not {n_train} samples)")
    if not isinstance(position, int) or not 0 <= position <= n_train:
        raise CheckpointError(f"the checkpoint's position in the epoch ({position!r}) does not fit "
                              f"{n_train} training samples")
    if state["optimizer_type"] is not None and state["optimizer_type"] not in OPTIMIZERS:
        raise CheckpointError(f"the checkpoint's optimizer {state['optimizer_type']!r} is unknown")
    if not isinstance(state["batch_size"], int) or state["batch_size"] < 1:
        raise CheckpointError(f"the checkpoint's batch size {state['batch_size']!r} is not valid")


def _expect_keys(mapping: Any, expected: set[str], what: str) -> None:
    if not isinstance(mapping, dict):
        raise CheckpointError(f"{what} is not a dict")
    missing, extra = expected - set(mapping), set(mapping) - expected
    if missing or extra:
        parts = [f"missing {sorted(missing)}" if missing else "", f"unexpected {sorted(map(str, extra))}" if extra else ""]
        raise CheckpointError(f"{what} does not match: {'; '.join(p for p in parts if p)}")
