"""Checkpoints on disk: written atomically, read safely, checked before anything changes.

``LoopState`` is the one description of a captured loop: what a snapshot holds in memory and
a checkpoint on disk (plain dicts, lists and tensors, so ``torch.load(weights_only=True)`` reads
it). A file of an older ``VERSION`` is brought to today's layout by ``upgrade``, in one place.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import Tensor

from trainlab.arguments import is_whole_number, real_number
from trainlab.errors import CheckpointError
from trainlab.options import OPTIMIZERS_BY_NAME, setting_numbers

__all__ = ["FORMAT", "VERSION", "Counters", "Place", "LoopState", "write", "read", "upgrade", "check_model",
           "check_position", "check_optimizer_groups"]

FORMAT = "trainlab-checkpoint"
#: 2: every history holds its step numbers and clipped gradient norms (1 may lack them: ``upgrade``).
VERSION = 2


class Counters(TypedDict):
    """A loop's counters, and the running sums of the epoch it is in."""

    epoch: int  # completed epochs
    step: int  # completed updates
    skipped: int  # batches skipped as non-finite
    epoch_sums: list[float]  # this epoch's loss * samples, samples, correct predictions


class _DevicePlace(TypedDict, total=False):
    cuda_rng: torch.Tensor  # device="cuda": the GPU generator's part of the loop's stream (absent on a CPU)


class Place(_DevicePlace):
    """Where a loop is in its run, without its weights: what a batch's start records."""

    rng: torch.Tensor  # the loop's own random stream (dropout, augmentation); never written in place
    sampler: dict[str, Any]  # EpochSampler.state(): its generator, this epoch's order, the position in it
    counters: Counters
    batch_size: int


class _Scaled(TypedDict, total=False):
    scaler: dict[str, Any]  # precision="fp16": the GradScaler's state_dict (its scale); absent otherwise


class LoopState(Place, _Scaled):
    """A loop's whole state: a snapshot in memory, a checkpoint's ``"state"`` on disk."""

    model: dict[str, Tensor]  # the model's state_dict: weights and persistent buffers
    optimizer_type: str | None  # the optimizer's name, or None for an optimizer given as an object
    optimizer: dict[str, Any]  # the optimizer's state_dict
    scheduler: dict[str, Any] | None  # the scheduler's state_dict, if the loop has one


_KEYS = {"format", "version", "state", "history"}
_STATE_KEYS = set(LoopState.__required_keys__)


def write(path: str | os.PathLike, state: LoopState, history: dict[str, Any]) -> Path:
    """Save atomically: a temp file in the same folder, flushed to disk, then renamed over ``path``."""
    target = Path(path)
    _check_writable(target)
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


def _check_writable(target: Path) -> None:
    """Refuse a path whose folder is missing (or that is a folder) before any temp file is made."""
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(f"cannot save to {str(target)!r}: the folder {str(folder)!r} does not exist; "
                         "create it first (os.makedirs(folder, exist_ok=True)) or choose another path")
    if target.is_dir():
        raise ValueError(f"cannot save to {str(target)!r}: it is a folder; give a file name inside it, "
                         "like 'run.pt'")


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
    if payload.get("version") not in range(1, VERSION + 1):
        raise CheckpointError(f"{str(target)!r} has checkpoint version {payload.get('version')!r}; "
                              f"this trainlab reads versions 1 to {VERSION}")
    _expect_keys(payload, _KEYS, "the checkpoint")
    _expect_keys(payload["state"], _STATE_KEYS, "the checkpoint's state", optional={"cuda_rng", "scaler"})
    return upgrade(payload)


def upgrade(payload: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of any version this trainlab reads, in today's layout (version ``VERSION``)."""
    if payload["version"] == 1:
        payload = {**payload, "version": 2, "history": _history_v1_to_v2(payload["history"])}
    return payload


def _history_v1_to_v2(history: Any) -> Any:
    """Version 1 files may predate gradient clipping (no clipped norms) and thinning (no step numbers)."""
    if not isinstance(history, dict) or not isinstance(history.get("scalars"), dict):
        return history  # malformed: the history's own checks say what is wrong
    scalars = dict(history["scalars"])
    if "clipped_grad_norm" not in scalars and "grad_norm" in scalars:  # unclipped: the norms themselves
        scalars["clipped_grad_norm"] = scalars["grad_norm"]
    upgraded = {**history, "scalars": scalars}
    if "step" not in upgraded and isinstance(upgraded.get("layers"), list):  # unthinned: every step
        upgraded["step"] = list(range(1, len(upgraded["layers"]) + 1))
    return upgraded


def check_model(saved: Any, current: dict[str, Tensor], optional: set[str] = frozenset()) -> None:
    """Refuse a model state that does not fit the loop's model, naming the first mismatch.

    ``optional``: keys an older checkpoint may lack (non-persistent buffers, captured since version 2's files)."""
    if not isinstance(saved, dict):
        raise CheckpointError("the checkpoint's model state is not a dict of tensors")
    _expect_keys(saved, set(current) - (optional - set(saved)), "the checkpoint's model (another architecture?)")
    for name, tensor in current.items():
        if name not in saved:
            continue
        other = saved[name]
        if not isinstance(other, Tensor):
            raise CheckpointError(f"the checkpoint's {name!r} is a {type(other).__name__}, not a tensor")
        if other.shape != tensor.shape:
            raise CheckpointError(f"the checkpoint's {name!r} has shape {tuple(other.shape)} but the model's has "
                                  f"{tuple(tensor.shape)}: it was saved from another architecture")
        if other.dtype != tensor.dtype:
            raise CheckpointError(f"the checkpoint's {name!r} is {other.dtype} but the model's is {tensor.dtype}; "
                                  f"build the loop with a {other.dtype} model (e.g. model.double() for float64) "
                                  "to load it")


def check_position(state: dict[str, Any], n_train: int, shuffle: bool | None = None,
                   n_items: int | None = None) -> None:
    """Refuse a checkpoint whose place in the epoch (or settings) does not fit this loop.

    ``shuffle`` is the loop's setting; when given, a checkpoint saved with the other setting is refused.
    ``n_items``: the order is a DataLoader sampler's (any indices below n_items, repeats allowed).
    """
    sampler = state["sampler"]
    if not isinstance(sampler, dict) or not {"rng", "order", "position"} <= set(sampler) <= {
            "rng", "order", "position", "generators"}:
        raise CheckpointError("the checkpoint's data position is malformed")
    order, position = sampler["order"], sampler["position"]
    if order is not None and (not isinstance(order, Tensor) or order.shape != (n_train,)):
        raise CheckpointError(f"the checkpoint was saved with another training set (not {n_train} samples)")
    if order is not None and n_items is not None:
        if order.dtype != torch.int64 or (len(order) and not 0 <= int(order.min()) <= int(order.max()) < n_items):
            raise CheckpointError(f"the checkpoint's sample order holds indices outside the {n_items} samples of "
                                  "the DataLoader's dataset; save a new checkpoint with loop.save(path)")
    elif order is not None and not _is_permutation(order, n_train):
        raise CheckpointError(f"the checkpoint's sample order is not an order of the {n_train} training samples "
                              "(edited by hand?); save a new checkpoint with loop.save(path)")
    if not is_whole_number(position) or not 0 <= position <= n_train:
        raise CheckpointError(f"the checkpoint's position in the epoch ({position!r}) does not fit "
                              f"{n_train} training samples")
    _check_shuffle(order, position, n_train, shuffle)
    if state["optimizer_type"] is not None and state["optimizer_type"] not in OPTIMIZERS_BY_NAME:
        raise CheckpointError(f"the checkpoint's optimizer {state['optimizer_type']!r} is unknown")
    if not is_whole_number(state["batch_size"]) or state["batch_size"] < 1:
        raise CheckpointError(f"the checkpoint's batch size {state['batch_size']!r} is not valid")


def _is_permutation(order: Tensor, n: int) -> bool:
    """Whether ``order`` holds each index 0..n-1 exactly once (as EpochSampler draws it)."""
    return order.dtype == torch.int64 and torch.equal(order.sort().values, torch.arange(n))


def _check_shuffle(order: Tensor | None, position: int, n_train: int, shuffle: bool | None) -> None:
    # A shuffling loop draws an order at each epoch's start; an unshuffled one never has one
    # (EpochSampler.start_epoch), so an order loaded into it would be kept for every later epoch.
    if shuffle is None:
        return
    if not shuffle and order is not None:
        raise CheckpointError("the checkpoint was saved from a loop with shuffle=True and this loop has "
                              "shuffle=False; build the loop with shuffle=True to load it")
    if shuffle and order is None and position < n_train:  # mid-epoch in the data's own order
        raise CheckpointError("the checkpoint was saved mid-epoch from a loop with shuffle=False and this "
                              "loop has shuffle=True; build the loop with shuffle=False to load it")


def check_optimizer_groups(state: dict[str, Any]) -> None:
    """Refuse saved optimizer settings that would break the next update: an lr that is not a number, NaN or inf."""
    optimizer = state["optimizer"]
    groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        raise CheckpointError("the checkpoint's optimizer state is malformed; save a new one with loop.save(path)")
    for i, group in enumerate(groups):
        lr = real_number(group.get("lr"))
        if lr is None or not 0 <= lr < math.inf:  # 0 is allowed: a scheduler can anneal down to it
            raise CheckpointError(f"the checkpoint's learning rate (parameter group {i}) is {group.get('lr')!r}, "
                                  "not a finite number, 0 or more; save a new checkpoint with loop.save(path)")
        for name, value in group.items():  # inf can be meant (an optimizer's max_step, say); NaN never is
            if name != "params" and any(map(math.isnan, setting_numbers(value))):
                raise CheckpointError(f"the checkpoint's optimizer setting {name!r} (parameter group {i}) is "
                                      f"{value!r}, not a number; save a new checkpoint with loop.save(path)")



def _expect_keys(mapping: Any, expected: set[str], what: str, optional: set[str] = frozenset()) -> None:
    if not isinstance(mapping, dict):
        raise CheckpointError(f"{what} is not a dict")
    missing, extra = expected - set(mapping), set(mapping) - expected - optional
    if missing or extra:
        parts = [f"missing {sorted(missing)}" if missing else "", f"unexpected {sorted(map(str, extra))}" if extra else ""]
        raise CheckpointError(f"{what} does not match: {'; '.join(p for p in parts if p)}")
