"""Time travel: capture a loop's whole state, and put it back exactly (snapshots, rewind, reset, checkpoints).

Each loop has one ``TimeTravel`` (``loop._time``): ``loop.snapshot/restore/rewind/reset/save/load``
and ``loop.excursion`` delegate to it, and the loop's stages ask it for keyframes and to undo a
failed stage. It is one of the loop's own files and reads the loop's run (``loop._run``, a
``RunState``), open batch and model slots. A captured state is a ``LoopState`` (see
``checkpoint.py``): the weights and buffers, the optimizer's and scheduler's state, and the
run's place (random stream, position in the epoch, counters, batch size).

Everything that puts the loop back goes through one record and one context manager:
``Held`` is all of the loop at one moment, ``preserved()`` brings it back, and ``replacing``
swaps attributes for a block (fastai's ``replacing_yield``).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import checkpoint
from trainlab.arguments import is_whole_number
from trainlab.checkpoint import LoopState
from trainlab.errors import CheckpointError, ReplayError, StageError
from trainlab.events import Events
from trainlab.optimizers import children, needs_closure, zero_gradient
from trainlab.options import make_optimizer
from trainlab.precision import LossScaling
from trainlab.keyframes import Keyframe, Keyframes
from trainlab.snapshot import Snapshot, clone_optimizer_state, clone_tree, copy_optimizer_state, optimizer_copy
from trainlab.state import Batch, BatchStart

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["TimeTravel", "Held", "ModelSlots", "replacing"]


@contextmanager
def replacing(obj: Any, **attributes: Any) -> Iterator[Any]:
    """Give ``obj`` these attribute values for the block; the old ones come back whatever happens.

    Example: ``with replacing(loop, events=Events()): ...`` runs steps no handler sees.
    """
    old = {name: getattr(obj, name) for name in attributes}
    for name, value in attributes.items():
        setattr(obj, name, value)
    try:
        yield obj
    finally:
        for name, value in old.items():
            setattr(obj, name, value)


@dataclass(eq=False)
class Held:
    """All of a loop at one moment, for ``TimeTravel.put_back``: a full copy, and what a copy leaves out."""

    snapshot: Snapshot | None  # weights, optimizer, scheduler and place (None: left as they will be)
    batch: Batch | None  # the open batch
    last_batch: Batch | None  # the last batch that updated the weights
    ratios: tuple[int, dict[str, float]] | None  # the last measured update ratios
    last_log: dict[str, Any]
    last_epoch_log: dict[str, float]
    grads: list[Tensor | None]  # every parameter's .grad
    untouched: bool  # nothing changed outside a step since the last one (see Loop.revision)


class ModelSlots:
    """Where a model keeps each tensor of its ``state_dict``, to read them afresh at every capture.

    Reading by name each time (not by a reference cached at build) sees a buffer the model
    reassigns, like d2l's ``self.moving_mean = ...``, at the cost of a dict lookup per tensor.
    Non-persistent buffers (``register_buffer(..., persistent=False)``: not in the state_dict) are
    captured too, by the same keys: a model may change them in forward (a counter, a cache).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        slots = list(_slots(model))
        self.slots = [slot[:4] for slot in slots if slot[4]]  # the state_dict's
        self.extra = [slot[:3] for slot in slots if not slot[4]]  # non-persistent buffers: (key, holder, name)
        self.extra_keys = {key for key, _, _ in self.extra}
        # A model with its own state_dict (hooks, an override) is asked for it every time.
        self.custom = [key for key, _, _, _ in self.slots] != list(model.state_dict(keep_vars=True))
        self.parameter_keys = {key for key, _, _, is_buffer in self.slots if not is_buffer}
        self.has_buffers = self.custom or len(self.parameter_keys) < len(self.slots) or bool(self.extra)

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        """(key, tensor) for every weight and buffer (non-persistent ones last), as the model holds them now."""
        if self.custom:
            yield from self.model.state_dict(keep_vars=True).items()
        else:
            for key, holder, name, _ in self.slots:
                yield key, holder[name]
        for key, holder, name in self.extra:
            yield key, holder[name]

    def copy_buffers(self) -> dict[str, Tensor]:
        """Copies of the buffers (BatchNorm's running statistics, non-persistent ones too), by key."""
        if not self.has_buffers:
            return {}
        return {key: tensor.detach().clone() for key, tensor in self.tensors() if key not in self.parameter_keys}

    def load(self, tensors: dict[str, Tensor], strict: bool = True) -> None:
        """Put these weights and buffers (from ``tensors()``, or ``copy_buffers()`` with strict=False) back."""
        if not self.extra:
            self.model.load_state_dict(tensors, strict=strict)
            return
        self.model.load_state_dict({k: v for k, v in tensors.items() if k not in self.extra_keys}, strict=strict)
        with torch.no_grad():
            for key, holder, name in self.extra:
                saved, current = tensors.get(key), holder[name]
                if saved is None:  # a checkpoint from before they were captured: left as they are
                    continue
                if current.shape == saved.shape and current.dtype == saved.dtype:
                    current.copy_(saved)
                else:
                    holder[name] = saved.detach().clone().to(current.device)

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


def _slots(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, dict, str, bool, bool]]:
    """state_dict's walk: parameters, buffers, then each child module, by key (whether a buffer, whether persistent)."""
    for name, param in module._parameters.items():
        if param is not None:
            yield prefix + name, module._parameters, name, False, True
    for name, buffer in module._buffers.items():
        if buffer is not None:
            yield prefix + name, module._buffers, name, True, name not in module._non_persistent_buffers_set
    for name, child in module._modules.items():
        if child is not None:
            yield from _slots(child, f"{prefix}{name}.")


_BUILDS = itertools.count(1)  # one number per TimeTravel made: what a snapshot's owner names
QUIET = ("a step of a quiet fit",)  # ``still`` after such a step: nothing was measured (see note_still)


class TimeTravel:
    """One loop's moves in time: snapshot, restore, rewind, reset, save, load; capture, apply, replay."""

    def __init__(self, loop: Loop, budget_bytes: int) -> None:
        # A weak reference: the loop holds its TimeTravel, and without a cycle a loop dropped by its last
        # name is freed at once (releasing torch's threads, see guard.use_threads), not at the next gc.
        self._loop = weakref.ref(loop)
        self.keyframes = Keyframes(budget_bytes)
        self.replaying = False  # a rewind (or an undone update) is running steps again: record nothing
        self.still: tuple | None = None  # the loop's revision as the last step left it (see note_still)
        self.changed = False  # a live change since the last keyframe (see batch_opening)
        self.initial: Snapshot | None = None  # where reset() goes back to (see mark_initial)
        self.initial_hyper: tuple[float, int] = (0.0, 0)
        self.build = next(_BUILDS)  # Loop.__init__ again (a playground rebuild) starts a new one

    @property
    def loop(self) -> Loop:
        """The loop this time travel moves."""
        return self._loop()  # type: ignore[return-value]  # alive: only the loop calls its TimeTravel

    def mark_initial(self) -> None:
        """Remember the loop as it is now (just built) for ``reset``."""
        self.initial = self.snapshot("initial")
        self.initial_hyper = (self.loop.lr, self.loop.batch_size)

    # --- public ------------------------------------------------------------------------------

    def snapshot(self, name: str | None = None) -> Snapshot:
        """An exact copy of the loop's state to ``restore`` later (mid-batch: the batch's start)."""
        loop = self.loop
        with loop._guard:
            return self.capture(name, loop._batch.opened if loop._batch is not None else None)

    def restore(self, snapshot: Snapshot, left_behind: str | None = None) -> None:
        """Go back exactly to ``snapshot``; the run left behind is kept in ``history.branches``."""
        loop = self.loop
        if left_behind is None:
            left_behind = f"before restore to {snapshot.name or snapshot.step}" if isinstance(snapshot, Snapshot) else ""
        with loop._guard:
            if not isinstance(snapshot, Snapshot) or snapshot.owner[0] != id(loop):
                raise ValueError("restore takes a snapshot made by this loop's snapshot()")
            if snapshot.owner[1] != self.build:
                raise ValueError(f"{snapshot!r} was taken before the data or the model was rebuilt, and this run began "
                                 "then: it cannot come back (the old run is a branch in loop.history.branches)")
            self.refuse_mid_stage("restore()")
            self.apply(snapshot.state)
            loop.history.restore(snapshot.history, left_behind)
            self.keyframes.clear()
            loop.events.fire("after_restore", loop)

    def rewind(self, steps: int = 1) -> int:
        """Undo the last ``steps`` updates (an open batch is dropped too); returns the step now reached."""
        loop = self.loop
        with loop._guard:
            self._check_rewind(steps)
            self.refuse_mid_stage("rewind()")
            left, target = loop.state.step, loop.state.step - steps
            keyframe = self.keyframes.find(target)
            if keyframe.step == target:
                self.apply(keyframe.snapshot.state)
                mark = keyframe.snapshot.history
            else:
                with self.preserved(always=False):  # all or nothing: a failed replay (or Ctrl-C) changes nothing
                    epochs, changes = self.replay(keyframe, target, keyframe.skipped_at(target))
                self.landed()
                start = keyframe.snapshot.history
                mark = loop.history.mark_at(target, start.n_epochs + epochs, start.n_changes + changes)
            loop.history.restore(mark, f"rewound from step {left}")
            self.keyframes.forget_after(target)
            loop.events.fire("after_restore", loop)
            return loop.state.step

    def _check_rewind(self, steps: Any) -> None:
        if not (is_whole_number(steps) and steps >= 1):
            raise ValueError(f"rewind takes a whole number of steps, at least 1; got {steps!r}")
        depth = self.rewind_depth
        if steps > depth:
            raise ValueError(
                f"can rewind at most {depth} step(s) here: rewind reaches back over the updates since the "
                f"last restore/reset/load, within {self.keyframes.budget_bytes / 2**20:g} MB "
                "(rewind_memory_mb); use loop.snapshot() to keep a point for longer")

    @property
    def rewind_depth(self) -> int:
        """How many updates ``rewind`` can undo right now."""
        return self.keyframes.depth(self.loop.state.step)

    def reset(self) -> None:
        """Back to the initial weights and step 0, keeping the current lr and batch size."""
        loop = self.loop
        with loop._guard:
            lr, batch_size = loop.lr, loop.batch_size
            self.restore(self.initial, "before reset")
            initial_lr, initial_batch_size = self.initial_hyper
            if lr != initial_lr:
                loop.lr = lr
            if batch_size != initial_batch_size:
                loop.batch_size = batch_size

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint to ``path`` atomically (mid-batch: the batch's start)."""
        loop = self.loop
        with loop._guard:
            start = self.capture(None, loop._batch.opened if loop._batch is not None else None)
            checkpoint.write(path, start.state, loop.history.state_dict(start.history))

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint from ``save``; a bad file raises CheckpointError and changes nothing."""
        loop = self.loop
        with loop._guard:
            payload = checkpoint.read(path)
            state = payload["state"]
            checkpoint.check_model(state["model"], dict(loop._slots.tensors()), optional=loop._slots.extra_keys)
            fetch, sampler = loop._data.fetch, loop._run.sampler  # a sampler of its own: any indices, repeats too
            checkpoint.check_position(state, loop.n_train, shuffle=sampler.shuffle,
                                      n_items=len(fetch.dataset) if fetch and fetch.sampler else None)
            checkpoint.check_optimizer_groups(state)
            try:  # everything is tried on scratch copies first: a refused file changes nothing
                self.try_state(state)
                history = loop.history.parse_state_dict(payload["history"])
            except Exception as error:
                raise CheckpointError(f"{str(path)!r} does not fit this loop: {error}") from None
            self.refuse_mid_stage("load()")
            self.apply(state)
            loop.history.adopt(history, "before load")
            self.keyframes.clear()
            loop.events.fire("after_restore", loop)

    @contextmanager
    def excursion(self) -> Iterator[None]:
        """Steps that are not part of the run (the lr finder's): afterwards the loop is exactly as it was.

        Nothing is recorded and no handler runs (a blank history, no events); the scheduler stays
        out of it (the caller sets the lr). What the loop had is put back whatever happens: its
        state, history, keyframes (rewind reaches behind the excursion), gradients, last logs,
        stop request, and each module's train/eval mode.
        """
        loop = self.loop
        with loop._guard:
            modes = [module.training for module in loop.model.modules()]
            stop = (loop._stop_requested, loop.stop_reason)
            try:
                with self.preserved(), \
                        replacing(loop, history=loop.history.blank(), events=Events(), scheduler=None), \
                        replacing(self, keyframes=Keyframes(self.keyframes.budget_bytes), changed=self.changed):
                    yield
            finally:
                for module, mode in zip(loop.model.modules(), modes):
                    module.training = mode
                loop._stop_requested, loop.stop_reason = stop

    # --- keyframes during a run -----------------------------------------------------------------

    # These run at every step: the loop is read through ``self._loop()`` (no property call).

    def batch_opening(self) -> BatchStart:
        """A batch opens: a keyframe for rewind if one is due (see ``keyframes.py``); returns what it goes back to."""
        loop = self._loop()
        if not self.replaying and (
                self.keyframes.due(loop._run.counters.step)
                or self.changed  # a live change (lr, batch size...), maybe in the middle of the last step
                or loop.events.in_step_writers > 0  # a handler may change the step: replay cannot run it
                # changed outside a step (a cell, a handler, a jump); nothing can, between two steps of a quiet fit
                or self.still is not QUIET and self.still != loop.revision):
            loop._settle()  # the keyframe holds the epoch's sums: every right prediction counted
            self.keyframes.add(self.capture(None))
            self.changed = False
        return BatchStart(loop._run.capture(), loop._slots.copy_buffers(), loop.history.mark())

    def note_update(self, batch: Batch) -> None:
        """An update was made: a replay from the last keyframe can now reach it."""
        if not self.replaying:
            self.keyframes.note_update(batch.opened.skipped)

    def note_still(self, quiet: bool = False) -> None:
        """The loop as a step (or a jump) left it: a later difference was made outside the steps. ``quiet``: a
        step of a fit no handler listens to; nothing runs before its next step, so nothing is measured yet."""
        self.still = QUIET if quiet else self._loop().revision

    def end_quiet(self) -> None:
        """A quiet fit returned (or raised): the loop as its last step left it."""
        if self.still is QUIET:
            self.note_still()

    # --- capture and apply ------------------------------------------------------------------

    def refuse_mid_stage(self, call: str) -> None:
        """A jump from a before_* handler would pull the batch from under the stage that fired it."""
        starting = self.loop.events.starting
        if starting is not None:
            raise StageError(f"{call} cannot run from a {starting} handler: that stage has begun and "
                             f"would lose its batch; call it from an after_* handler, or between steps")

    def capture(self, name: str | None, opened: BatchStart | None = None) -> Snapshot:
        """A full copy of the loop; mid-batch (``opened``), as the batch found it."""
        loop = self.loop
        model = self._copy_weights()
        if opened is not None:  # the weights have not moved since the batch opened; its buffers may have
            model.update(clone_tree(opened.buffers))
        place = opened.place if opened is not None else loop._run.capture()
        state: LoopState = {
            "model": model,
            "optimizer_type": loop._optimizer_name,
            "optimizer": copy_optimizer_state(loop.optimizer),
            "scheduler": clone_tree(loop.scheduler.state_dict()) if loop.scheduler is not None else None,
            **place,
        }
        if loop._scaling is not None:  # fp16: the loss scale moves with the run
            state["scaler"] = loop._scaling.state_dict()
        counters = place["counters"]
        history = opened.history if opened is not None else loop.history.mark()
        return Snapshot(name, counters["step"], counters["epoch"], state, history, (id(loop), self.build))

    def _copy_weights(self) -> dict[str, Tensor]:
        """The model's weights and buffers, copied into the memory of a keyframe that was dropped.

        Reusing that memory (rather than allocating a new copy each time) keeps the allocator
        out of the way; in a background thread it would otherwise hand memory back to the
        system and fault it in again.
        """
        spare = self.keyframes.reuse()
        copies = {}
        for key, tensor in self.loop._slots.tensors():
            old = spare.get(key) if spare is not None else None
            if old is not None and old.shape == tensor.shape and old.dtype == tensor.dtype:
                copies[key] = old.copy_(tensor.detach())  # detach(): cheaper than a no_grad() block
            else:
                copies[key] = tensor.detach().clone()
        return copies

    def apply(self, state: LoopState) -> None:
        """Put a captured state back (model, optimizer, scheduler, randomness, position, counters)."""
        loop = self.loop
        loop._slots.load(state["model"])
        if state["optimizer_type"] != loop._optimizer_name:  # set_optimizer happened in between
            loop._optimizer_name = state["optimizer_type"]
            loop.optimizer = (make_optimizer(loop._optimizer_name, loop.model, None, {})
                              if loop._optimizer_name else loop._given_optimizer)
        loop.optimizer.load_state_dict(clone_optimizer_state(state["optimizer"]))
        if loop.scheduler is not None and state["scheduler"] is not None:
            loop.scheduler.load_state_dict(clone_tree(state["scheduler"]))
        if loop._scaling is not None:  # (a file saved without fp16 starts the scale afresh)
            loop._scaling.load_state_dict(state.get("scaler"))
        loop._run.apply(state)
        loop._batch = None
        loop._ratios.latest = None
        self.landed()
        self.note_still()  # the loop as a keyframe or snapshot left it: nothing moved outside a step

    def landed(self) -> None:
        """A jump in time ended here: no update ran at this position, so none is reported or measured."""
        loop = self.loop
        loop._last_batch = None
        # A step whose batch the jump dropped (from a handler) returns this.
        loop.last_log = {"step": loop.state.step, "epoch": loop.state.epoch, "status": "restored", "restored": True}
        loop.model.zero_grad(set_to_none=True)

    def try_state(self, state: LoopState) -> None:
        """Raise if ``state`` (from a file) would not load; changes nothing of the loop."""
        loop = self.loop
        kind = state["optimizer_type"]
        if not kind and loop._given_optimizer is None:
            raise ValueError("it was saved by a loop given an optimizer object, and this loop's optimizer was "
                             "chosen by name; build the loop with the same kind of optimizer object to load it")
        # The optimizer is tried on a copy of the model: one step proves its state fits (no missing
        # moments, no wrong shapes), which torch's load_state_dict does not check.
        scratch_model = copy.deepcopy(loop.model)
        scratch = (make_optimizer(kind, scratch_model, None, {}) if kind
                   else optimizer_copy(loop._given_optimizer, loop.model, scratch_model))
        _check_state_indices(state["optimizer"])
        scratch.load_state_dict(clone_optimizer_state(state["optimizer"]))
        _check_optimizer_kind(scratch)
        _try_one_step(scratch)
        if loop.scheduler is not None and state["scheduler"] is not None:
            copy.deepcopy(loop.scheduler).load_state_dict(clone_tree(state["scheduler"]))
        if loop._scaling is not None and state.get("scaler") is not None:
            LossScaling(loop.device.type).load_state_dict(state["scaler"])
        _check_place(state, len(loop._run.sampler.generators))

    # --- holding still ------------------------------------------------------------------------

    def hold(self, whole: bool = True) -> Held:
        """Everything about the loop now, for ``put_back`` (``whole=False``: all but a full copy)."""
        loop = self.loop
        untouched = self.still == loop.revision  # nothing changed since the last step
        return Held(self.capture(None) if whole else None, loop._batch, loop._last_batch, loop._ratios.latest,
                    loop.last_log, loop.last_epoch_log, [p.grad for p in loop._params], untouched)

    def put_back(self, held: Held) -> None:
        """Bring back what ``hold`` kept: the full copy (if any), the open batch, logs, ratios and gradients."""
        loop = self.loop
        if held.snapshot is not None:
            self.apply(held.snapshot.state)
        loop._batch, loop._last_batch, loop._ratios.latest = held.batch, held.last_batch, held.ratios
        loop.last_log, loop.last_epoch_log = held.last_log, held.last_epoch_log
        for p, grad in zip(loop._params, held.grads):
            p.grad = grad
        if held.snapshot is not None:
            self.still = loop.revision if held.untouched else None

    @contextmanager
    def preserved(self, always: bool = True) -> Iterator[Held]:
        """The loop put back as it is now when the block ends (``always=False``: only if the block fails)."""
        held = self.hold()
        try:
            yield held
        except BaseException:
            self.put_back(held)
            raise
        if always:
            self.put_back(held)

    # --- replay -------------------------------------------------------------------------------

    def replay(self, keyframe: Keyframe, step: int, skipped: int) -> tuple[int, int]:
        """Land on ``(step, skipped)`` by running again, silently, the updates after ``keyframe``.

        No handler runs and nothing is recorded; every update must give the loss and gradient norm
        the history holds for it, or the replay stops with ReplayError (something outside torch's
        random stream changed the run: numpy randomness in a Dataset, say). Returns the epochs and
        hyperparameter changes the replayed updates recorded.
        """
        loop = self.loop
        self.apply(keyframe.snapshot.state)
        first = keyframe.step
        recorded = self._recorded_rows(first, step)
        with replacing(loop, history=loop.history.blank(), events=Events(), _quiet=False), \
                replacing(self, replaying=True):
            while (loop.state.step, loop.state.skipped) < (step, skipped):
                log = loop._step()
                if recorded is not None and log["status"] == "updated":
                    row = log["step"] - first - 1
                    if not (_same(log["loss"], recorded["loss"][row])
                            and _same(log["grad_norm"], recorded["grad_norm"][row])):
                        raise ReplayError(
                            f"replaying step {log['step']} gave another loss than the first time: something "
                            "outside torch's random stream changed the run (numpy or Python randomness in the "
                            "data or model, or a change made from a handler); rewind cannot be exact here, "
                            "use loop.snapshot() and loop.restore() instead")
            if (loop.state.step, loop.state.skipped) != (step, skipped):
                raise ReplayError(f"replaying to step {step} skipped other batches than the first time; rewind "
                                  "cannot be exact here, use loop.snapshot() and loop.restore() instead")
            return len(loop.history.epoch), len(loop.history.changes)

    def _recorded_rows(self, first: int, last: int) -> dict[str, np.ndarray] | None:
        """The history's loss and gradient norm of updates ``first + 1`` ... ``last`` (None if not all are held)."""
        columns = self.loop.history.steps
        start, stop = np.searchsorted(columns["step"], [first + 1, last + 1])  # step numbers only grow
        if stop - start != last - first:
            return None
        return {key: columns[key][start:stop].copy() for key in ("loss", "grad_norm")}

    def go_to(self, opened: BatchStart) -> None:
        """Weights, optimizer and scheduler as the batch ``opened`` found them (from a keyframe, replaying)."""
        keyframe = self.keyframes.find(opened.step)
        self.replay(keyframe, opened.step, opened.skipped)

    def update_ratios(self, recent: bool) -> dict[str, float]:
        """The last update's ratios (see ``Loop.update_ratios``): measured by replaying it from a keyframe."""
        loop, meter = self.loop, self.loop._ratios
        if recent:
            meter.wanted = True
            return meter.latest[1] if meter.latest is not None else {}
        last = loop._last_batch
        if last is None:
            return {}
        step = last.opened.step + 1
        if meter.latest is None or meter.latest[0] != step:
            before = self.weights_before(last)
            if before is None:
                return {}
            meter.measure(step, before)
        return meter.latest[1]

    def weights_before(self, batch: Batch) -> dict[str, Tensor] | None:
        """The parameters as ``batch`` found them (before its update), by replay; the loop is left as it was."""
        with self.preserved():
            try:
                self.go_to(batch.opened)
            except LookupError:
                return None
            return self.loop._ratios.weights()

    # --- a failed stage -------------------------------------------------------------------------

    def undo_batch(self, batch: Batch, retry: bool) -> None:
        """Close a batch that failed before its update, undoing what it did (BatchNorm's running statistics).

        ``retry``: the batch goes back too (and its epoch's order, if it began one), so the same
        samples come next with the same random numbers (dropout, augmentation): a retry gives
        exactly what a first try would have. Otherwise its samples count as used (a skipped batch).
        """
        loop = self.loop
        if batch.opened.buffers:
            loop._slots.load(batch.opened.buffers, strict=False)
        if retry:
            loop._run.go_to(batch.opened.place)
        loop._batch = None
        loop.model.zero_grad(set_to_none=True)

    def undo_update(self, batch: Batch, before: tuple[dict[str, Tensor], Any] | None = None) -> None:
        """Put back the weights, optimizer and scheduler state an interrupted update changed.

        Without a copy made before every update: the last keyframe and a replay give them back.
        Buffers keep this batch's forward (BatchNorm's statistics: an update never touches them; with an
        optimizer that re-evaluates the loss, ``before`` holds them and the place as the update found them);
        the gradients stay, so update() can be called again; so do live settings set meanwhile (lr).
        """
        loop = self.loop
        held = self.hold(whole=False)
        optimizer, optimizer_name = loop.optimizer, loop._optimizer_name  # set_optimizer may have run mid-batch
        settings = [{k: v for k, v in group.items() if k != "params"} for group in loop.optimizer.param_groups]
        # as the forward left them
        buffers, place = before if before is not None else (loop._slots.copy_buffers(), loop._run.capture())
        self.go_to(batch.opened)
        if loop.optimizer is not optimizer:  # a fresh optimizer, set in this batch: nothing of it to undo
            loop.optimizer, loop._optimizer_name = optimizer, optimizer_name
        if buffers:
            loop._slots.load(buffers, strict=False)
        loop._run.go_to(place)
        self.put_back(held)
        for group, setting in zip(loop.optimizer.param_groups, settings):
            group.update(setting)
        self.note_still()


def _same(number: float, recorded: float) -> bool:
    """The number recorded, NaN included (fp16: the gradient norm of a step whose gradients overflowed)."""
    return number == recorded or (math.isnan(number) and math.isnan(recorded))


def _check_optimizer_kind(scratch: torch.optim.Optimizer) -> None:
    """torch loads any optimizer's settings into any other: refuse settings that lack this kind's own."""
    for optimizer in children(scratch):
        for group in optimizer.param_groups:
            missing = set(optimizer.defaults) - set(group) - {"differentiable"}  # torch's copies add it, False
            if missing:
                raise ValueError(f"it was saved with another kind of optimizer than this loop's "
                                 f"{type(optimizer).__name__} (its settings lack {', '.join(sorted(missing))}); "
                                 "build the loop with the optimizer that saved it")


def _check_place(state: LoopState, n_generators: int) -> None:
    """Random states torch accepts, as many DataLoader generators as this loop's, counters that are counts."""
    torch.Generator().set_state(state["rng"])
    for generator_state in [state["sampler"]["rng"], *state["sampler"].get("generators", ())]:
        torch.Generator().set_state(generator_state)
    if len(state["sampler"].get("generators", ())) != n_generators:
        raise ValueError("it was saved with a DataLoader whose random generators differ from this one's")
    counters = state["counters"]
    values = [counters["epoch"], counters["step"], counters["skipped"], *counters["epoch_sums"]]
    if len(values) != 6 or not all(isinstance(v, (int, float)) and v >= 0 for v in values):
        raise ValueError("its counters are malformed")


def _check_state_indices(saved: dict[str, Any]) -> None:
    """Per-parameter state only for parameters the saved groups hold (torch keeps others, unused)."""
    held = {index for group in saved["param_groups"] for index in group["params"]}
    extra = sorted(set(saved["state"]) - held, key=str)
    if extra:
        raise ValueError(f"its optimizer state has entries for parameters {extra} that no parameter group holds")


def _try_one_step(optimizer: torch.optim.Optimizer) -> None:
    """One step with zero gradients on scratch parameters: fails if the loaded state does not fit them."""
    for child in children(optimizer):
        for group in child.param_groups:
            for p in group["params"]:
                p.grad = zero_gradient(child, p)
    try:
        if needs_closure(optimizer):  # LBFGS: a zero gradient ends its step at once
            optimizer.step(lambda: torch.zeros(()))
        else:
            optimizer.step()
    except Exception as error:
        raise ValueError(f"its optimizer state does not fit this model's parameters ({type(error).__name__}: "
                         f"{error})") from None
