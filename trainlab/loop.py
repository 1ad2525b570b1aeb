"""The Loop: a PyTorch training loop whose four stages a learner can call one at a time.

One training step is always the same fixed sequence::

    outputs = loop.forward()    # the model's predictions for the next batch
    loss = loop.loss()          # how wrong they are: one number, still attached to the graph
    grads = loop.backward()     # d(loss)/d(parameter) for every parameter: {name: gradient norm}
    log = loop.update()         # the optimizer moves the parameters; the batch is done

``step()`` runs what is left of a batch, ``run_epoch()`` what is left of an epoch and ``fit(epochs)``
several epochs. The loop owns the batching, so ``loop.batch_size`` and ``loop.lr`` can change at any
moment and take effect at the next batch / next update.

The loop holds its parts: the data (``data.py``), its run state and open batch (``state.py``), and
its ``TimeTravel`` (``time_travel.py``: snapshot, restore, rewind, reset, save, load, excursion).
"""

from __future__ import annotations

import math
import os
from contextlib import AbstractContextManager
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from trainlab.batching import call_model, loader_settings
from trainlab.callbacks import attached
from trainlab.checks import (check_count, check_flags, may_draw_random_numbers, non_finite_advice, not_one_number,
                             pick_device, rewind_bytes, watched_parameters)
from trainlab.data import LoopData
from trainlab.errors import NonFiniteError, StageError
from trainlab.events import STAGES, Event, Events, Handle
from trainlab.faults import plant_asked
from trainlab.guard import Guard, interrupts_deferred, use_threads
from trainlab.history import History
from trainlab.lr_finder import LRFinderResult, find_lr
from trainlab.metrics import RatioMeter, count_correct, first_non_finite, grad_norms, pick
from trainlab.schedules import check_scheduler_argument, make_scheduler, step_after_epoch
from trainlab.options import (check_batch_size, check_clip, check_seed, choose_optimizer, make_loss, set_lr,
                              set_weight_decay, switched_optimizer)
from trainlab.snapshot import Snapshot
from trainlab.state import Batch, OpenBatch, RunState, State
from trainlab.time_travel import ModelSlots, TimeTravel

__all__ = ["Loop", "State", "STAGES"]

_STEP_DONE = "interrupted: the step was finished first (a step is all or nothing)"


class Loop:
    """A training loop you can run stage by stage, batch by batch, epoch by epoch, or live.

    Example::

        X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
        loop = tl.Loop(tl.models.mlp(2, [16, 16], 2), (X, y), "cross_entropy", lr=0.1)
        loop.fit(epochs=10)

    ``lr`` defaults to 0.01 (or an optimizer object's own lr), ``batch_size`` to 32 and ``shuffle`` to
    True (or a DataLoader's own settings). ``validation_split`` holds out a seeded random fraction of
    the data (``loop.val_indices`` lists which samples). ``scheduler`` is a ``torch.optim.lr_scheduler``
    object or a function ``optimizer -> scheduler``, stepped after every epoch
    (``scheduler_interval="epoch"``) or every update (``"step"``). ``clip_grad_norm`` scales the
    gradients down before each update so their total norm is at most this (None: no clipping); live,
    like ``lr``. ``outputs`` names the part of what the model returns that holds its predictions, for
    accuracy and plots, when it returns a tuple or dict (``outputs=0``, ``outputs="logits"``); the loss
    always gets all of it. ``rewind_memory_mb`` caps the keyframes behind ``rewind``: a full copy every
    16 steps (fewer for big models), the steps between replayed exactly (16 MB: tens of thousands of
    steps of a small MLP, ~24 of a 1M-parameter one). ``threads`` sets torch's intra-op threads for the
    whole process until the last such loop is gone (None: leave them): one thread runs a lab's small
    models fastest, and on a shared CPU more threads make tiny operations 10-100x slower. ``fault``: see tl.faults.
    """

    def __init__(self, model: nn.Module, data: Any, loss_fn: Any, optimizer: Any = "sgd", lr: float | None = None,
                 batch_size: int | None = None, shuffle: bool | None = None, seed: int = 0,
                 validation_split: float = 0.0, val_data: Any = None, *,
                 momentum: float | None = None, weight_decay: float | None = None,
                 optimizer_options: dict[str, Any] | None = None, scheduler: Any = None,
                 scheduler_interval: str = "epoch", clip_grad_norm: float | None = None, fault: str | None = None,
                 outputs: int | str | None = None, accuracy: bool | None = None, device: str | torch.device = "cpu",
                 on_nonfinite: str = "raise", rewind_memory_mb: float = 16, threads: int | None = 1) -> None:
        """Build a loop; every argument is checked here, so mistakes surface before training."""
        check_flags(model, on_nonfinite, scheduler_interval, threads, shuffle, accuracy)
        check_seed(seed)
        rewind_budget = rewind_bytes(rewind_memory_mb)
        check_scheduler_argument(scheduler)  # before a given optimizer object is touched
        self._clip = check_clip(clip_grad_norm)
        self.device = pick_device(device)
        self.model = model.to(self.device)
        self.loss_fn, self.loss_name = make_loss(loss_fn)
        loader_batch, loader_shuffle = loader_settings(data)
        batch_size = check_batch_size(batch_size if batch_size is not None else loader_batch or 32)
        self._part = outputs
        self._data = LoopData(data, self.model, self.loss_fn, self.loss_name, accuracy, outputs, self.device, shuffle,
                             validation_split, val_data, seed)
        self.accuracy_kind = self._data.accuracy_kind
        self.train_indices, self.val_indices = self._data.train_indices, self._data.val_indices
        # Facts fixed at build: the validation data (X, y) or None, whether it validates and records
        # accuracy, and one sample's input shape, like (2,) or (1, 8, 8) (None: a model of several inputs).
        self.val_data, self.has_validation = self._data.val, self._data.val is not None
        self.classification = self.accuracy_kind is not None
        self.input_shape = self._data.input_shape
        self.optimizer, self._optimizer_name = choose_optimizer(optimizer, self.model, lr, momentum, weight_decay,
                                                                optimizer_options)
        # By name, an optimizer can be rebuilt (set_optimizer, restore); an object is kept as given.
        self._given_optimizer = None if self._optimizer_name else self.optimizer
        self.scheduler = make_scheduler(scheduler, self.optimizer)
        self.scheduler_interval, self.on_nonfinite, self.seed = scheduler_interval, on_nonfinite, seed
        if threads is not None:
            use_threads(self, threads)
        self.param_names, self._params = watched_parameters(self.model)  # measured, in module order
        self._slots = ModelSlots(self.model)  # every weight and buffer, read by name at each capture
        # Models made only of deterministic torch.nn layers skip the random-stream swap (a few us).
        self._random_model = may_draw_random_numbers(self.model)
        self.history = History(self.param_names, ["loss"] + (["accuracy"] if self.accuracy_kind else []),
                               validation=self._data.val is not None)
        self.events = Events()
        self._start_run(seed, batch_size, shuffle, loader_shuffle)
        self._time = TimeTravel(self, rewind_budget)
        self._time.mark_initial()
        plant_asked(self, fault)  # the bug clinic: a classic mistake, planted through the loop's public parts

    def _start_run(self, seed: int, batch_size: int, shuffle: bool | None, loader_shuffle: bool | None) -> None:
        """The run's state at step 0, and what the steps keep between them."""
        # The loop's own random stream (dropout, augmentation): swapped in around forward and
        # fetching, so two loops with the same seed give the same numbers and torch's is left alone.
        self._run = RunState(torch.Generator().manual_seed(seed).get_state(), batch_size)
        self._run.sampler = self._data.sampler(shuffle, loader_shuffle, seed, self._run.with_rng)
        self._run.sampler.check_batch_size(batch_size)
        self._ratios = RatioMeter(self.param_names, self._params)  # how far updates move the weights
        self._guard = Guard()
        self.clear_stop()  # no stop asked for yet (stop_reason is "")
        self._batch: Batch | None = None  # the open batch
        self._last_batch: Batch | None = None  # the last batch that updated the weights
        self.last_log: dict[str, Any] = {}
        self.last_epoch_log: dict[str, float] = {}

    # --- what a learner looks at ---------------------------------------------------

    @property
    def state(self) -> State:
        """The counters: ``epoch`` (completed epochs), ``step`` (completed updates), ``skipped`` batches."""
        return self._run.counters

    @property
    def next_stage(self) -> str:
        """The stage that is due: "forward", "loss", "backward" or "update"."""
        return self._batch.due if self._batch is not None else "forward"

    @property
    def batch(self) -> tuple[Any, Tensor] | None:
        """The open batch's ``(inputs, targets)``, or None between batches."""
        return (self._batch.inputs, self._batch.targets) if self._batch is not None else None

    @property
    def open_batch(self) -> OpenBatch | None:
        """A read-only look at the open batch: inputs, targets, what its stages filled in, its random state."""
        return OpenBatch.of(self._batch) if self._batch is not None else None

    @property
    def last_outputs(self) -> Any:
        """What the model returned for the open batch (after forward), or None."""
        return self._batch.outputs if self._batch is not None else None

    @property
    def last_predictions(self) -> Tensor | None:
        """The part of the open batch's outputs that holds the predictions (see ``outputs=``), or None."""
        return pick(self._batch.outputs, self._part) if self._batch is not None and self._batch.outputs is not None else None

    @property
    def last_loss(self) -> Tensor | None:
        """The open batch's loss (after loss()), or None."""
        return self._batch.loss if self._batch is not None else None

    @property
    def last_grad_norms(self) -> dict[str, float]:
        """{parameter name: gradient norm} from the last backward(), this batch's or the last update's."""
        batch = self._batch if self._batch is not None and self._batch.grad_norms is not None else self._last_batch
        return batch.grad_norms if batch is not None and batch.grad_norms is not None else {}

    @property
    def n_train(self) -> int:
        """The number of training samples (one epoch)."""
        return self._run.sampler.n

    @property
    def epoch_progress(self) -> tuple[int, int]:
        """(samples of this epoch already trained on, samples per epoch)."""
        return self._run.progress(self._batch)

    @property
    def train_data(self) -> tuple[Any, Tensor]:
        """The training split ``(X, y)`` (from a DataLoader: all its batches, collected when first asked)."""
        return self._data.whole_train

    def first_train_samples(self, n: int) -> tuple[Any, Tensor]:
        """The first ``n`` training samples ``(X, y)`` (from a DataLoader, only those, moving no random stream)."""
        with self._guard:  # fetching draws random numbers (augmentation): not while another thread trains
            return self._data.first_train(n)

    def __repr__(self) -> str:
        return (f"Loop(epoch={self.state.epoch}, step={self.state.step}, next_stage={self.next_stage!r}, "
                f"lr={self.lr:g}, batch_size={self._run.batch_size}, loss={self.loss_name})")

    # --- live hyperparameters ----------------------------------------------------------

    @property
    def lr(self) -> float:
        """The learning rate (the first group's); setting it scales every group's alike, from the next update."""
        return self.optimizer.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self._record_change("lr", set_lr(self.optimizer, value))

    @property
    def batch_size(self) -> int:
        """Samples per batch; setting it applies from the next batch, never mid-batch."""
        return self._run.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._run.batch_size = self._run.sampler.check_batch_size(check_batch_size(value))
        self._record_change("batch_size", self._run.batch_size)

    @property
    def weight_decay(self) -> float:
        """L2 penalty on the weights (the optimizer's ``weight_decay``); live, from the next update."""
        return float(self.optimizer.param_groups[0].get("weight_decay", 0.0))

    @weight_decay.setter
    def weight_decay(self, value: float) -> None:
        self._record_change("weight_decay", set_weight_decay(self.optimizer, value))

    @property
    def clip_grad_norm(self) -> float | None:
        """The most the gradients' total norm may be at an update (None: no clipping); live."""
        return self._clip

    @clip_grad_norm.setter
    def clip_grad_norm(self, value: float | None) -> None:
        self._clip = check_clip(value)
        self._record_change("clip_grad_norm", self._clip)

    @property
    def optimizer_name(self) -> str:
        """The optimizer's name: "sgd", "adam", ... (or its class name when given as an object)."""
        return self._optimizer_name or type(self.optimizer).__name__

    def set_optimizer(self, name: str, **options: Any) -> None:
        """Switch to another optimizer by name (fresh state, same lr and weight decay) from the next update.

        Example: ``loop.set_optimizer("sgd", momentum=0.9)``; while the dashboard plays, use its menu."""
        with self._guard:  # the optimizer must not change under a step running in another thread
            self.optimizer = switched_optimizer(name, self.model, self.lr, self.weight_decay, self.scheduler, options)
            self._optimizer_name = name.lower()
            self._record_change("optimizer", self._optimizer_name)

    def update_ratios(self, recent: bool = False) -> dict[str, float]:
        """How far the last update moved each parameter, relative to its size: ||change|| / ||weights||.

        Measured when asked, by replaying the last update from a keyframe ({} when the keyframes
        no longer reach it). ``recent=True``, for plots redrawn while training: the latest update
        measured so far, at no cost, and the next update is measured."""
        with self._guard:
            return self._time.update_ratios(recent)

    def _record_change(self, name: str, value: Any, replayable: bool = False) -> None:
        """Note a live change for the history and the widgets. ``replayable``: a replay makes it too (a scheduler)."""
        if not replayable:  # the next batch starts from a keyframe: a replay never crosses the change
            self._time.changed = True
        self.history.record_change(self.state.step, name, value)
        self.events.fire("after_change", self)

    def on(self, event: str | Event, fn: Callable[[Loop], None], *, observer: bool = False) -> Handle:
        """Call ``fn(loop)`` at ``event`` (e.g. "after_backward", or ``tl.Event.AFTER_BACKWARD``); returns a handle.

        ``observer=True`` promises ``fn`` only reads the loop (plots, logging): a handler inside the
        step that might change it costs rewind a copy of the weights per step; an observer costs nothing."""
        return self.events.on(event, fn, observer)

    # --- the four stages ---------------------------------------------------------------

    # Each public stage checks that it is due, then runs its body (``_forward`` ...); ``step`` runs the bodies
    # directly, so a batch pays for one check, not four. A subclass's own stages are run by step/fit too.
    _stage_methods: dict[str, str] = {stage: f"_{stage}" for stage in STAGES}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if any(getattr(cls, stage) is not getattr(Loop, stage) for stage in STAGES):
            cls._stage_methods = {stage: stage for stage in STAGES}

    def forward(self) -> Any:
        """Run the model on the current batch (starting the next batch if none is open)."""
        with self._guard:
            self._expect("forward")
            return self._forward()

    def loss(self) -> Tensor:
        """Compare the outputs with the targets: a 0-d tensor, still attached to the graph."""
        with self._guard:
            self._expect("loss")
            return self._loss()

    def backward(self) -> dict[str, float]:
        """Backpropagate: fill every parameter's ``.grad``; returns {parameter name: gradient norm}."""
        with self._guard:
            self._expect("backward")
            return self._backward()

    def update(self) -> dict[str, Any]:
        """Let the optimizer move the parameters; closes the batch and returns the step's log."""
        with self._guard, interrupts_deferred(self._request_stop, _STEP_DONE):  # a step is all or nothing
            self._expect("update")
            return self._update()

    # Every stage body has the same shape: before_<stage>, the work, after_<stage>. Whatever fails
    # midway is undone by the time travel (``undo_batch``, ``undo_update``), so a retry starts clean.

    def _forward(self) -> Any:
        batch = self._batch or self._open_batch()
        self.events.fire_before("before_forward", self)
        if not self.model.training:
            self.model.train()
        if self._random_model:  # kept (a reference, not a copy): the step's landscape draws the same masks
            batch.forward_rng = self._run.rng
        try:
            outputs = (self._run.with_rng(call_model, self.model, batch.inputs) if self._random_model
                       else call_model(self.model, batch.inputs))
        except BaseException:
            self._time.undo_batch(batch, retry=True)  # BatchNorm may have moved its statistics already
            raise
        batch.outputs = outputs
        self.events.fire("after_forward", self)
        return outputs

    def _loss(self) -> Tensor:
        batch = self._batch
        self.events.fire_before("before_loss", self)
        loss = self.loss_fn(batch.outputs, batch.targets)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise ValueError(not_one_number(loss))
        value = loss.item()  # the step's one sync for the loss
        if not math.isfinite(value):
            return self._non_finite(batch, loss, "loss", "loss", f"the loss is {value} at step {self.state.step + 1}")
        batch.loss, batch.loss_value = loss, value
        self.events.fire("after_loss", self)
        return loss

    def _backward(self) -> dict[str, float]:
        batch = self._batch
        self.events.fire_before("before_backward", self)
        for p in self._params:  # zeroed here, so after update() they can still be read
            p.grad = None
        try:
            batch.loss.backward()
        except BaseException:  # the graph may be half used up: the batch starts again from forward
            self._time.undo_batch(batch, retry=True)
            raise
        kind = self.accuracy_kind
        correct = count_correct(kind, pick(batch.outputs, self._part).detach(), batch.targets) if kind else None
        norms = grad_norms(self._params, correct)  # one sync for every layer and the accuracy
        batch.correct = norms.pop() if kind else 0.0
        bad = first_non_finite(self.param_names, self._params, norms)
        if bad is not None:
            return self._non_finite(batch, batch.loss, "backward", bad,
                                    f"the gradient of {bad!r} is not finite at step {self.state.step + 1}")
        batch.grad_norms = dict(zip(self.param_names, norms))
        self.events.fire("after_backward", self)
        return batch.grad_norms

    def _update(self) -> dict[str, Any]:
        batch = self._batch
        self.events.fire_before("before_update", self)
        grad_norm = math.sqrt(math.fsum([v * v for v in batch.grad_norms.values()]))
        before = self._ratios.weights() if self._ratios.wanted else None
        try:  # all or nothing: whatever raises (the optimizer, a scheduler), nothing has moved
            clipped = batch.clip_gradients(self._params, self._clip, grad_norm)
            self.optimizer.step()
            lr = self.lr
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
        except BaseException:
            self._time.undo_update(batch)  # the batch stays open at update, its gradients still there
            raise
        log = self._commit(batch, lr, grad_norm, clipped)
        if before is not None:
            self._ratios.measure(self.state.step, before)
        if self._run.sampler.epoch_done:
            self._end_epoch(then=self._updated)
        else:  # the common case, without a call more
            self._time.note_still()
            self.events.fire("after_update", self)
        return log

    def _updated(self) -> None:
        """The step has committed: note the loop as it left it, and tell the handlers."""
        self._time.note_still()
        self.events.fire("after_update", self)

    # --- bigger strides ------------------------------------------------------------------

    def step(self) -> dict[str, Any]:
        """Run the stages left in the current batch (or a whole new batch); returns its log."""
        with self._guard, interrupts_deferred(self._request_stop, _STEP_DONE):  # a step is all or nothing
            return self._step()

    def _step(self) -> dict[str, Any]:
        while True:
            batch = self._batch
            stage = batch.due if batch is not None else "forward"  # read each time: a handler may have run a stage
            getattr(self, self._stage_methods[stage])()
            if stage == "update" or self._batch is None:  # updated, skipped (non-finite) or moved in time
                return self.last_log

    def run_epoch(self) -> dict[str, float]:
        """Finish the current epoch (or run a whole new one), then validate; returns its log."""
        with self._guard, interrupts_deferred(self._request_stop):
            self.clear_stop()
            target = self.state.epoch + 1
            while self.state.epoch < target and not self._stop_requested:
                self._step()
            return self.last_epoch_log

    def fit(self, epochs: int = 1, callbacks: Sequence[Any] = ()) -> History:
        """Train until ``epochs`` more epochs have ended (a partly done one counts); returns the history.
        ``callbacks`` (e.g. ``EarlyStopping``) are attached for this call only."""
        epochs = check_count(epochs, "epochs")
        with self._guard, interrupts_deferred(self._request_stop), attached(callbacks, self):
            self.clear_stop()
            target = self.state.epoch + epochs
            self.events.fire("before_fit", self)
            while self.state.epoch < target and not self._stop_requested:
                self._step()
            self.events.fire("after_fit", self)
            return self.history

    def stop(self, reason: str = "stop requested") -> None:
        """Ask ``fit``/``run_epoch`` (or the dashboard's player) to stop at the next batch boundary."""
        self.stop_reason = reason
        self._stop_requested = True

    def _request_stop(self) -> None:
        self._stop_requested = True

    def clear_stop(self) -> None:
        """Forget a stop request (fit and run_epoch do this when they start; so does the dashboard's Play)."""
        self._stop_requested = False
        self.stop_reason = ""

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for since the last fit/run_epoch started."""
        return self._stop_requested

    def hold(self) -> Guard:
        """Own the loop from this thread for a ``with`` block (the dashboard's player does); others get LoopBusyError."""
        return self._guard

    def find_lr(self, start: float = 1e-7, end: float = 10.0, steps: int = 100, **options: Any) -> LRFinderResult:
        """The learning-rate range test from here; the loop is put back exactly afterwards (see ``lr_finder.py``).
        Example: ``result = loop.find_lr(); loop.lr = result.suggestion``."""
        return find_lr(self, start, end, steps, **options)

    # --- moving in time (time_travel.py) ----------------------------------------------------

    def snapshot(self, name: str | None = None) -> Snapshot:
        """An exact copy of the loop's state to ``restore`` later (mid-batch: the batch's start)."""
        return self._time.snapshot(name)

    def restore(self, snapshot: Snapshot) -> None:
        """Go back exactly to ``snapshot``; the run left behind is kept in ``history.branches``."""
        self._time.restore(snapshot)

    def rewind(self, steps: int = 1) -> int:
        """Undo the last ``steps`` updates (an open batch is dropped too); returns the step now reached."""
        return self._time.rewind(steps)

    @property
    def rewind_depth(self) -> int:
        """How many updates ``rewind`` can undo right now."""
        return self._time.rewind_depth

    def reset(self) -> None:
        """Back to the initial weights and step 0, keeping the current lr and batch size."""
        self._time.reset()

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint to ``path`` atomically (mid-batch: the batch's start)."""
        self._time.save(path)

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint from ``save``; a bad file raises CheckpointError and changes nothing."""
        self._time.load(path)

    def excursion(self) -> AbstractContextManager[None]:
        """Steps that are not part of the run: inside, nothing is recorded, no handler runs and the scheduler
        is not stepped; afterwards the loop is exactly as it was (weights, optimizer, position, history...).
        Example: ``with loop.excursion(): loop.lr = 1.0; loop.step()`` (the lr finder's way to try lrs)."""
        return self._time.excursion()

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """Loss (and accuracy) on ``data``, or on the validation data; in eval mode, without gradients."""
        with self._guard:
            return self._data.scores(data)

    def predict(self, inputs: Any) -> Tensor:
        """The model's predictions for ``inputs`` (the ``outputs`` part), in eval mode, without gradients."""
        with self._guard:
            return self._data.predictions(inputs)

    # --- inside a batch ------------------------------------------------------------------------

    def _expect(self, stage: str) -> None:
        due = self.next_stage
        if stage != due:
            hint = "call loop.step() to finish this batch" if due != "forward" else "start a batch with loop.forward()"
            raise StageError(f"{stage}() is not due: the next stage is {due}(); {hint}")

    def _open_batch(self) -> Batch:
        opened = self._time.batch_opening()  # (and a keyframe for rewind, when one is due)
        run, sampler = self._run, self._run.sampler
        try:  # a failed fetch (a raising __getitem__, Ctrl-C) leaves its samples and random numbers unused
            if sampler.short_of(run.batch_size):  # drop_last, and the batch size grew past what is left
                sampler.position = sampler.n  # the epoch's tail, too short for a batch, is dropped
                self._end_epoch()
            if sampler.epoch_done:
                run.start_epoch()
                self.events.fire_before("before_epoch", self)
            start, inputs, targets = run.take_batch(self._data)
        except BaseException:
            run.go_to(opened.place)
            raise
        self._batch = Batch(inputs, targets, start, opened, len(targets))
        return self._batch

    @property
    def revision(self) -> tuple:
        """Moves when the weights, buffers, optimizer or lrs change (a step, a jump, a cell's edit): views redraw then."""
        return self._slots.versions(), id(self.optimizer), [group["lr"] for group in self.optimizer.param_groups]

    def _non_finite(self, batch: Batch, loss: Tensor, stage: str, where: str, message: str) -> Tensor:
        """Stop a batch whose loss or gradients are NaN/inf: raise, or skip it (on_nonfinite)."""
        if self.on_nonfinite == "skip_batch":
            self._time.undo_batch(batch, retry=False)  # its samples count as used; no update happens
            self.state.skipped += 1
            self.last_log = {"step": self.state.step, "epoch": self.state.epoch, "status": "skipped", "skipped": True}
            if self._run.sampler.epoch_done:
                self._end_epoch()
            return loss
        advice = non_finite_advice(batch.inputs, batch.targets)
        self._time.undo_batch(batch, retry=True)  # a retry (smaller lr, a rewind) gets the same samples
        raise NonFiniteError(f"{message}: the parameters were not updated. {advice}", stage=stage, where=where)

    def _commit(self, batch: Batch, lr: float, grad_norm: float, clipped: float) -> dict[str, Any]:
        """Close a batch that updated the weights: its log, the history, the epoch's sums, the rewind buffer."""
        log = batch.log(self._run.counters, lr, grad_norm, clipped if self._clip is not None else None,
                        accuracy=self.accuracy_kind is not None)
        self.history.record_step(log, batch.grad_norms.values())
        self._run.count_update(batch)
        self._time.note_update(batch)
        self._last_batch = batch
        self._batch = None
        self.last_log = log
        return log

    def _end_epoch(self, then: Callable[[], None] | None = None) -> None:
        """The epoch's last batch closed: record the epoch (and validate), ``then()`` (the update's after-events)
        and announce the epoch (after_epoch), these two whatever the recording raised."""
        try:
            self._finish_epoch()
        finally:
            try:
                if then is not None:
                    then()
            finally:
                self.events.fire("after_epoch", self)

    def _finish_epoch(self) -> dict[str, float]:
        """Close the epoch whose last batch just ended: its mean loss, validation, the history."""
        index, log = self._run.end_epoch(accuracy=self.accuracy_kind is not None)
        try:
            if self._data.val is not None:
                log.update({f"val_{k}": v for k, v in self._data.scores().items()})
        finally:  # even if validation fails, the epoch has ended: record what we have
            self.history.record_epoch(index, log)
            self.last_epoch_log = {"epoch": index, **log}
            self._step_scheduler_after_epoch(log)
        return self.last_epoch_log

    def _step_scheduler_after_epoch(self, log: dict[str, float]) -> None:
        """Step an epoch scheduler; any scheduler's new lr is recorded as a change, for the plots and sliders."""
        if self.scheduler is not None:
            used = self.last_log.get("lr", self.lr)
            step_after_epoch(self.scheduler, self.scheduler_interval, log)
            if self.lr != used:
                self._record_change("lr", self.lr, replayable=True)
