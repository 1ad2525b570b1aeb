"""Time travel: capture a loop's whole state, and put it back exactly (snapshots, rewind, reset, checkpoints).

``TimeTravel`` is the half of ``Loop`` that moves it in time (a base class of Loop, kept in
its own file); ``loop.py`` holds the stages. It shares the Loop's attributes: the model,
optimizer and scheduler, ``state``, ``history``, ``events``, and the private ``_batch``,
``_sampler``, ``_keyframes``, ``_rng_state``, ``_epoch_sums``, ``_slots``, ``_guard`` and ``_data``.
A captured state has the layout of a checkpoint (see ``checkpoint.py``): the
model's weights and buffers, the optimizer's and scheduler's state, the loop's random
state, its place in the epoch, its counters and its batch size.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import checkpoint
from trainlab.errors import CheckpointError, ReplayError, StageError
from trainlab.events import Events
from trainlab.options import is_whole_number, make_optimizer
from trainlab.keyframes import Keyframe, Keyframes
from trainlab.snapshot import Snapshot, clone_optimizer_state, clone_tree, copy_optimizer_state
from trainlab.state import Batch, BatchStart, State


__all__ = ["TimeTravel", "ModelSlots"]


class ModelSlots:
    """Where a model keeps each tensor of its ``state_dict``, to read them afresh at every capture.

    Reading by name each time (not by a reference cached at build) sees a buffer the model
    reassigns, like d2l's ``self.moving_mean = ...``, at the cost of a dict lookup per tensor.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.slots = list(_slots(model))
        # A model with its own state_dict (hooks, an override) is asked for it every time.
        self.custom = [key for key, _, _, _ in self.slots] != list(model.state_dict(keep_vars=True))
        self.parameter_keys = {key for key, _, _, is_buffer in self.slots if not is_buffer}
        self.has_buffers = self.custom or len(self.parameter_keys) < len(self.slots)

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        """(key, tensor) for every weight and persistent buffer, as the model holds them now."""
        if self.custom:
            yield from self.model.state_dict(keep_vars=True).items()
            return
        for key, holder, name, _ in self.slots:
            yield key, holder[name]

    def copy_buffers(self) -> dict[str, Tensor]:
        """Copies of the persistent buffers (BatchNorm's running statistics), by state_dict key."""
        if not self.has_buffers:
            return {}
        return {key: tensor.detach().clone() for key, tensor in self.tensors() if key not in self.parameter_keys}

    def versions(self) -> int:
        """The sum of every weight's and buffer's version counter: it grows whenever one is written in place."""
        # torch counts in-place writes per tensor (``_version``): an optimizer step, a BatchNorm
        # forward, a weight edited in a cell or load_state_dict all move it, reading never does.
        if self.custom:
            return sum(tensor._version for tensor in self.model.state_dict(keep_vars=True).values())
        total = 0
        for _, holder, name, _ in self.slots:  # a plain loop: this runs twice a step
            total += holder[name]._version
        return total


def _slots(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, dict, str, bool]]:
    """state_dict's walk: parameters, persistent buffers, then each child module, by key (and whether a buffer)."""
    for name, param in module._parameters.items():
        if param is not None:
            yield prefix + name, module._parameters, name, False
    for name, buffer in module._buffers.items():
        if buffer is not None and name not in module._non_persistent_buffers_set:
            yield prefix + name, module._buffers, name, True
    for name, child in module._modules.items():
        if child is not None:
            yield from _slots(child, f"{prefix}{name}.")


class TimeTravel:
    """snapshot / restore / rewind / reset / save / load, and the capture, apply and replay behind them."""

    # --- public ------------------------------------------------------------------------------

    def snapshot(self, name: str | None = None) -> Snapshot:
        """An exact copy of the loop's state to ``restore`` later (mid-batch: the batch's start)."""
        with self._guard:
            return self._capture(name, self._batch.opened if self._batch is not None else None)

    def restore(self, snapshot: Snapshot) -> None:
        """Go back exactly to ``snapshot``; the run left behind is kept in ``history.branches``."""
        self._restore(snapshot, f"before restore to {snapshot.name or snapshot.step}"
                      if isinstance(snapshot, Snapshot) else "")

    def _restore(self, snapshot: Snapshot, left_behind: str) -> None:
        with self._guard:
            if not isinstance(snapshot, Snapshot) or snapshot.owner != id(self):
                raise ValueError("restore takes a snapshot made by this loop's snapshot()")
            self._refuse_mid_stage("restore()")
            self._apply(snapshot.state)
            self.history.restore(snapshot.history, left_behind)
            self._keyframes.clear()
            self.events.fire("after_restore", self)

    def rewind(self, steps: int = 1) -> int:
        """Undo the last ``steps`` updates (an open batch is dropped too); returns the step now reached."""
        with self._guard:
            if not (is_whole_number(steps) and steps >= 1):
                raise ValueError(f"rewind takes a whole number of steps, at least 1; got {steps!r}")
            depth = self.rewind_depth
            if steps > depth:
                raise ValueError(
                    f"can rewind at most {depth} step(s) here: rewind reaches back over the updates since the "
                    f"last restore/reset/load, within {self._keyframes.budget_bytes / 2**20:g} MB "
                    "(rewind_memory_mb); use loop.snapshot() to keep a point for longer")
            self._refuse_mid_stage("rewind()")
            left, target = self.state.step, self.state.step - steps
            keyframe = self._keyframes.find(target)
            if keyframe.step == target:
                self._apply(keyframe.snapshot.state)
                mark = keyframe.snapshot.history
            else:
                now = self._hold_still()
                try:  # all or nothing: a replay that fails (or Ctrl-C) leaves the loop where it was
                    epochs, changes = self._replay(keyframe, target, keyframe.skipped_at(target))
                except BaseException:
                    self._put_still(now)
                    raise
                self._landed()
                start = keyframe.snapshot.history
                mark = self.history.mark_at(target, start.n_epochs + epochs, start.n_changes + changes)
            self.history.restore(mark, f"rewound from step {left}")
            self._keyframes.forget_after(target)
            self.events.fire("after_restore", self)
            return self.state.step

    @property
    def rewind_depth(self) -> int:
        """How many updates ``rewind`` can undo right now."""
        return self._keyframes.depth(self.state.step)

    def reset(self) -> None:
        """Back to the initial weights and step 0, keeping the current lr and batch size."""
        with self._guard:
            lr, batch_size = self.lr, self._batch_size
            self._restore(self._initial, "before reset")
            initial_lr, initial_batch_size = self._initial_hyper
            if lr != initial_lr:
                self.lr = lr
            if batch_size != initial_batch_size:
                self.batch_size = batch_size

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint to ``path`` atomically (mid-batch: the batch's start)."""
        with self._guard:
            start = self._capture(None, self._batch.opened if self._batch is not None else None)
            checkpoint.write(path, start.state, self.history.state_dict(start.history))

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint from ``save``; a bad file raises CheckpointError and changes nothing."""
        with self._guard:
            payload = checkpoint.read(path)
            state = payload["state"]
            checkpoint.check_model(state["model"], self.model.state_dict())
            fetch = self._data.fetch  # with a sampler of its own: any indices of its dataset, repeats too
            checkpoint.check_position(state, self.n_train, shuffle=self._sampler.shuffle,
                                      n_items=len(fetch.dataset) if fetch and fetch.sampler else None)
            checkpoint.check_optimizer_groups(state)
            try:  # everything is tried on scratch copies first: a refused file changes nothing
                self._try_state(state)
                history = self.history.parse_state_dict(payload["history"])
            except Exception as error:
                raise CheckpointError(f"{str(path)!r} does not fit this loop: {error}") from None
            self._refuse_mid_stage("load()")
            self._apply(state)
            self.history.adopt(history, "before load")
            self._keyframes.clear()
            self.events.fire("after_restore", self)

    # --- capture and apply ------------------------------------------------------------------

    def _refuse_mid_stage(self, call: str) -> None:
        """A jump from a before_* handler would pull the batch from under the stage that fired it."""
        if self._starting is not None:
            raise StageError(f"{call} cannot run from a {self._starting} handler: that stage has begun and "
                             f"would lose its batch; call it from an after_* handler, or between steps")

    def _place(self) -> dict[str, Any]:
        """Where the loop is, without its weights: random state, data position, counters, batch size."""
        return {
            "rng": self._rng_state,  # never written in place: swapping replaces it
            "sampler": self._sampler.state(),
            "counters": {"epoch": self.state.epoch, "step": self.state.step, "skipped": self.state.skipped,
                         "epoch_sums": list(self._epoch_sums)},
            "batch_size": self._batch_size,
        }

    def _batch_start(self) -> BatchStart:
        """What a batch opening now must be able to go back to (weights aside: only an update moves them)."""
        return BatchStart(self._place(), self._slots.copy_buffers(), self.history.mark())

    def _capture(self, name: str | None, opened: BatchStart | None = None) -> Snapshot:
        """A full copy of the loop; mid-batch (``opened``), as the batch found it."""
        model = self._copy_weights()
        if opened is not None:  # the weights have not moved since the batch opened; its buffers may have
            model.update(clone_tree(opened.buffers))
        place = opened.place if opened is not None else self._place()
        state = {
            "model": model,
            "optimizer_type": self._optimizer_name,
            "optimizer": copy_optimizer_state(self.optimizer),
            "scheduler": clone_tree(self.scheduler.state_dict()) if self.scheduler is not None else None,
            **place,
        }
        counters = place["counters"]
        history = opened.history if opened is not None else self.history.mark()
        return Snapshot(name, counters["step"], counters["epoch"], state, history, id(self))

    def _copy_weights(self) -> dict[str, Tensor]:
        """The model's weights and buffers, copied into the memory of a keyframe that was dropped.

        Reusing that memory (rather than allocating a new copy each time) keeps the allocator
        out of the way; in a background thread it would otherwise hand memory back to the
        system and fault it in again.
        """
        spare = self._keyframes.reuse()
        copies = {}
        for key, tensor in self._slots.tensors():
            old = spare.get(key) if spare is not None else None
            if old is not None and old.shape == tensor.shape and old.dtype == tensor.dtype:
                copies[key] = old.copy_(tensor.detach())  # detach(): cheaper than a no_grad() block
            else:
                copies[key] = tensor.detach().clone()
        return copies

    def _apply(self, state: dict[str, Any]) -> None:
        """Put a captured state back (model, optimizer, scheduler, randomness, position, counters)."""
        self.model.load_state_dict(state["model"])
        if state["optimizer_type"] != self._optimizer_name:  # set_optimizer happened in between
            self._optimizer_name = state["optimizer_type"]
            self.optimizer = (make_optimizer(self._optimizer_name, self.model, None, {})
                              if self._optimizer_name else self._given_optimizer)
        self.optimizer.load_state_dict(clone_optimizer_state(state["optimizer"]))
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(clone_tree(state["scheduler"]))
        self._go_to_place(state)
        counters = state["counters"]
        self.state = State(int(counters["epoch"]), int(counters["step"]), int(counters["skipped"]))
        self._batch_size = int(state["batch_size"])
        self._batch = None
        self._ratios = None
        self._landed()
        self._note_still()  # the loop as a keyframe or snapshot left it: nothing moved outside a step

    def _landed(self) -> None:
        """A jump in time ended here: no update ran at this position, so none is reported or measured."""
        self._last_batch = None
        # A step whose batch the jump dropped (from a handler) returns this.
        self.last_log = {"step": self.state.step, "epoch": self.state.epoch, "status": "restored", "restored": True}
        self.model.zero_grad(set_to_none=True)

    def _go_to_place(self, place: dict[str, Any]) -> None:
        """The data's position, the epoch's sums and the random stream of ``place``."""
        self._sampler.load_state({**place["sampler"], "position": int(place["sampler"]["position"])})
        sums = place["counters"]["epoch_sums"]
        self._epoch_sums = [float(sums[0]), int(sums[1]), float(sums[2])]
        self._rng_state = place["rng"].clone()

    def _try_state(self, state: dict[str, Any]) -> None:
        """Raise if ``state`` (from a file) would not load; changes nothing of the loop."""
        kind = state["optimizer_type"]
        if not kind and self._given_optimizer is None:
            raise ValueError("it was saved by a loop given an optimizer object, and this loop's optimizer was "
                             "chosen by name; build the loop with the same kind of optimizer object to load it")
        # The optimizer is tried on a copy of the model: one step proves its state fits (no missing
        # moments, no wrong shapes), which torch's load_state_dict does not check.
        scratch_model = copy.deepcopy(self.model)
        scratch = (make_optimizer(kind, scratch_model, None, {}) if kind
                   else _optimizer_copy(self._given_optimizer, self.model, scratch_model))
        _check_state_indices(state["optimizer"])
        scratch.load_state_dict(clone_optimizer_state(state["optimizer"]))
        for group in scratch.param_groups:  # torch loads any optimizer's settings into any other
            missing = set(scratch.defaults) - set(group)
            if missing:
                raise ValueError(f"it was saved with another kind of optimizer than this loop's "
                                 f"{type(scratch).__name__} (its settings lack {', '.join(sorted(missing))}); "
                                 "build the loop with the optimizer that saved it")
        _try_one_step(scratch)
        if self.scheduler is not None and state["scheduler"] is not None:
            copy.deepcopy(self.scheduler).load_state_dict(clone_tree(state["scheduler"]))
        torch.Generator().set_state(state["rng"])
        for generator_state in [state["sampler"]["rng"], *state["sampler"].get("generators", ())]:
            torch.Generator().set_state(generator_state)
        if len(state["sampler"].get("generators", ())) != len(self._sampler.generators):
            raise ValueError("it was saved with a DataLoader whose random generators differ from this one's")
        counters = state["counters"]
        values = [counters["epoch"], counters["step"], counters["skipped"], *counters["epoch_sums"]]
        if len(values) != 6 or not all(isinstance(v, (int, float)) and v >= 0 for v in values):
            raise ValueError("its counters are malformed")

    # --- replay -------------------------------------------------------------------------------

    def _replay(self, keyframe: Keyframe, step: int, skipped: int) -> tuple[int, int]:
        """Land on ``(step, skipped)`` by running again, silently, the updates after ``keyframe``.

        No handler runs and nothing is recorded; every update must give the loss and gradient norm
        the history holds for it, or the replay stops with ReplayError (something outside torch's
        random stream changed the run: numpy randomness in a Dataset, say). Returns the epochs and
        hyperparameter changes the replayed updates recorded.
        """
        self._apply(keyframe.snapshot.state)
        first = keyframe.step
        recorded = self._recorded_rows(first, step)
        history, events = self.history, self.events
        self.history, self.events, self._replaying = history.blank(), Events(), True
        try:
            while (self.state.step, self.state.skipped) < (step, skipped):
                log = self._step()
                if recorded is not None and log["status"] == "updated":
                    row = log["step"] - first - 1
                    if (log["loss"], log["grad_norm"]) != (recorded["loss"][row], recorded["grad_norm"][row]):
                        raise ReplayError(
                            f"replaying step {log['step']} gave another loss than the first time: something "
                            "outside torch's random stream changed the run (numpy or Python randomness in the "
                            "data or model, or a change made from a handler); rewind cannot be exact here, "
                            "use loop.snapshot() and loop.restore() instead")
            if (self.state.step, self.state.skipped) != (step, skipped):
                raise ReplayError(f"replaying to step {step} skipped other batches than the first time; rewind "
                                  "cannot be exact here, use loop.snapshot() and loop.restore() instead")
            return len(self.history.epoch), len(self.history.changes)
        finally:
            self.history, self.events, self._replaying = history, events, False

    def _recorded_rows(self, first: int, last: int) -> dict[str, np.ndarray] | None:
        """The history's loss and gradient norm of updates ``first + 1`` ... ``last`` (None if not all are held)."""
        columns = self.history.steps
        start, stop = np.searchsorted(columns["step"], [first + 1, last + 1])  # step numbers only grow
        if stop - start != last - first:
            return None
        return {key: columns[key][start:stop].copy() for key in ("loss", "grad_norm")}

    def _go_to(self, opened: BatchStart) -> None:
        """Weights, optimizer and scheduler as the batch ``opened`` found them (from a keyframe, replaying)."""
        keyframe = self._keyframes.find(opened.step)
        self._replay(keyframe, opened.step, opened.skipped)

    def _hold_still(self) -> tuple[Any, ...]:
        """Everything about the loop now, for ``_put_still`` to bring back exactly (an open batch too)."""
        untouched = self._still == self.revision  # nothing changed since the last step
        return self._capture(None), self._steps_in_hand(), untouched

    def _put_still(self, kept: tuple[Any, ...]) -> None:
        snapshot, in_hand, untouched = kept
        self._apply(snapshot.state)
        self._take_back(in_hand)
        self._still = self.revision if untouched else None

    def _steps_in_hand(self) -> tuple[Any, ...]:
        """What a capture leaves out: the open batch, the last one, their logs, ratios and gradients."""
        return (self._batch, self._last_batch, self._ratios, self.last_log, self.last_epoch_log,
                [p.grad for p in self._params])

    def _take_back(self, in_hand: tuple[Any, ...]) -> None:
        self._batch, self._last_batch, self._ratios, self.last_log, self.last_epoch_log, grads = in_hand
        for p, grad in zip(self._params, grads):
            p.grad = grad

    @contextmanager
    def _excursion(self) -> Iterator[None]:
        """Steps that are not part of the run (the lr finder's): afterwards the loop is exactly as it was.

        Nothing is recorded and no handler runs (a blank history, no events); the scheduler stays
        out of it (the caller sets the lr). What the loop had is put back whatever happens: its
        state, history, keyframes (rewind reaches behind the excursion), gradients, last logs, and
        each module's train/eval mode.
        """
        kept = self._hold_still()
        modes = [module.training for module in self.model.modules()]
        saved = (self.history, self.events, self._keyframes, self.scheduler, self._changed)
        self.history, self.events, self.scheduler = self.history.blank(), Events(), None
        self._keyframes = Keyframes(self._keyframes.budget_bytes)
        try:
            yield
        finally:
            self.history, self.events, self._keyframes, self.scheduler, self._changed = saved
            self._put_still(kept)
            for module, mode in zip(self.model.modules(), modes):
                module.training = mode

    # --- a failed stage -------------------------------------------------------------------------

    def _put_back(self, batch: Batch, retry: bool) -> None:
        """Close a batch that failed before its update, undoing what it did (BatchNorm's running statistics).

        ``retry``: the batch goes back too (and its epoch's order, if it began one), so the same
        samples come next with the same random numbers (dropout, augmentation): a retry gives
        exactly what a first try would have. Otherwise its samples count as used (a skipped batch).
        """
        if batch.opened.buffers:
            self.model.load_state_dict(batch.opened.buffers, strict=False)
        if retry:
            self._go_to_place(batch.opened.place)
        self._batch = None
        self.model.zero_grad(set_to_none=True)

    def _undo_update(self, batch: Batch) -> None:
        """Put back the weights, optimizer and scheduler state an interrupted update changed.

        Without a copy made before every update: the last keyframe and a replay give them back.
        Buffers keep this batch's forward (BatchNorm's statistics: an update never touches them); the
        gradients stay, so update() can be called again; so do live settings set meanwhile (lr).
        """
        in_hand = self._steps_in_hand()
        optimizer, optimizer_name = self.optimizer, self._optimizer_name  # set_optimizer may have run mid-batch
        settings = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        buffers, place = self._slots.copy_buffers(), self._place()  # as the forward left them
        self._go_to(batch.opened)
        if self.optimizer is not optimizer:  # a fresh optimizer, set in this batch: nothing of it to undo
            self.optimizer, self._optimizer_name = optimizer, optimizer_name
        if buffers:
            self.model.load_state_dict(buffers, strict=False)
        self._go_to_place(place)
        self._take_back(in_hand)
        for group, setting in zip(self.optimizer.param_groups, settings):
            group.update(setting)
        self._note_still()


def _optimizer_copy(optimizer: torch.optim.Optimizer, model: nn.Module,
                    scratch_model: nn.Module) -> torch.optim.Optimizer:
    """A copy of ``optimizer`` whose parameters are the scratch model's (so a trial step touches nothing real)."""
    scratch_of = {id(p): q for p, q in zip(model.parameters(), scratch_model.parameters())}
    memo = {id(p): scratch_of[id(p)] for group in optimizer.param_groups for p in group["params"]
            if id(p) in scratch_of}
    return copy.deepcopy(optimizer, memo)


def _check_state_indices(saved: dict[str, Any]) -> None:
    """Per-parameter state only for parameters the saved groups hold (torch keeps others, unused)."""
    held = {index for group in saved["param_groups"] for index in group["params"]}
    extra = sorted(set(saved["state"]) - held, key=str)
    if extra:
        raise ValueError(f"its optimizer state has entries for parameters {extra} that no parameter group holds")


def _try_one_step(optimizer: torch.optim.Optimizer) -> None:
    """One step with zero gradients on scratch parameters: fails if the loaded state does not fit them."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    try:
        optimizer.step()
    except Exception as error:
        raise ValueError(f"its optimizer state does not fit this model's parameters ({type(error).__name__}: "
                         f"{error})") from None
