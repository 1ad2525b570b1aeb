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
its ``TimeTravel`` (``time_travel.py``: snapshot, restore, rewind, reset, save, load, excursion). Its
methods come in four files: the stages and strides here, what a learner reads in ``readouts.py``, the
live hyperparameters in ``hyperparameters.py`` and the moves in time in ``travel.py``.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from trainlab.batching import call_model, loader_settings, n_rows
from trainlab.callbacks import attached
from trainlab.checks import (check_count, check_flags, may_draw_random_numbers, non_finite_advice, not_one_number,
                             pick_device, rewind_bytes, watched_parameters)
from trainlab import hyperparameters, readouts, travel
from trainlab.hyperparameters import check_clip_value, clipping_allowed
from trainlab.data import LoopData
from trainlab.errors import NonFiniteError, StageError
from trainlab.events import STAGES, Event, Events, Handle
from trainlab.faults import plant_asked
from trainlab.guard import Guard, interrupts_deferred, use_threads
from trainlab.history import History
from trainlab.lr_finder import LRFinderResult, find_lr
from trainlab.metrics import RatioMeter, count_correct, first_non_finite, grad_norms, ignored_label, pick
from trainlab.optimizers import GroupShares, children, closure_for, needs_closure
from trainlab.precision import autocast_context, loss_scaling
from trainlab.schedules import check_scheduler_argument, make_scheduler, plateau_metric, step_after_epoch
from trainlab import playground  # Loop.from_recipe, loop.recipe(), loop.momentum, loop.dropout, loop.note_change
from trainlab.options import check_batch_size, check_clip, check_seed, choose_optimizer, make_loss
from trainlab.state import Batch, CudaStream, RunState, State
from trainlab.tally import EVERY, Tally, countable_later
from trainlab.time_travel import ModelSlots, TimeTravel

__all__ = ["Loop", "State", "STAGES"]

_STEP_DONE = "interrupted: the step was finished first (a step is all or nothing)"


class Loop:
    """A training loop you can run stage by stage, batch by batch, epoch by epoch, or live.

    Example::

        X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
        loop = tl.Loop(tl.models.mlp(2, [16, 16], 2), (X, y), "cross_entropy", lr=0.1)
        loop.fit(epochs=10)

    What it accepts (the README's "Bring your own model" has the details):

    - ``data``: ``(X, y)`` tensors or arrays, a ``Dataset`` (read once) or a ``DataLoader`` (drawn through).
      X may be several inputs (a tuple or dict: ``model(*X)``, ``model(**X)``), y several targets (a
      tuple or dict, passed to the loss as they are; ``accuracy=0`` or ``"label"`` names the one accuracy
      reads). ``validation_split`` holds out a seeded random fraction (``loop.val_indices``), or give
      ``val_data``. ``drop_last`` drops a last batch shorter than the batch size (a DataLoader's own is
      used); a model whose BatchNorm cannot train on one sample never gets a one-sample batch (such a
      tail joins the batch before it).
    - ``loss_fn``: "mse", "cross_entropy", "bce", or any callable ``loss(outputs, targets)``.
      Classification is per sample (outputs ``(n, classes)``) or per token / pixel (outputs ``(n, classes,
      d1, ...)`` against targets ``(n, d1, ...)``; accuracy leaves out the loss's ``ignore_index``).
      ``outputs`` names the part of a tuple or dict the model returns that holds its predictions
      (``outputs=0``, ``outputs="logits"``); the loss always gets all of it.
    - ``optimizer``: a name (every ``torch.optim`` class: "sgd", "adagrad", "lbfgs", ...), an object
      (its groups keep their lr ratios under ``lr=`` and ``loop.lr``; a group built with weight decay 0
      keeps 0 under ``loop.weight_decay``), or a list stepped together (``[SparseAdam(sparse),
      Adam(dense)]``). LBFGS gets a closure that runs the model and loss again. ``lr`` defaults to 0.01
      (or the object's own).
    - ``scheduler``: a ``torch.optim.lr_scheduler`` object or a function ``optimizer -> scheduler``,
      stepped after every epoch (``scheduler_interval="epoch"``) or update (``"step"``); a
      ReduceLROnPlateau after every epoch with ``scheduler_metric`` ("val_loss" by default, else "loss";
      "val_accuracy" for ``mode="max"``).
    - ``clip_grad_norm`` (the gradients' total norm at most this) and ``clip_grad_value`` (each entry at
      most this in size, applied first): None for no clipping; live, like ``lr``.
    - ``accumulate=k``: each update from k micro-batches of ``batch_size`` (each loss divided by k; the
      epoch's last update takes what is left); ``step()`` runs all k, ``state.step`` counts updates.
    - ``precision="bf16"``: the forward pass and loss under ``torch.autocast`` in bfloat16; ``"fp16"``: in
      float16, with a GradScaler (``loop.loss_scale``).
    - ``batch_size`` defaults to 32 and ``shuffle`` to True (or a DataLoader's own settings).

    ``rewind_memory_mb`` caps the keyframes behind ``rewind``: a full copy every
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
                 scheduler_interval: str = "epoch", scheduler_metric: str | None = None,
                 clip_grad_norm: float | None = None, clip_grad_value: float | None = None,
                 outputs: int | str | None = None, accuracy: bool | int | str | None = None,
                 drop_last: bool | None = None, accumulate: int = 1, precision: str | None = None,
                 device: str | torch.device = "cpu", fault: str | None = None,
                 on_nonfinite: str = "raise", rewind_memory_mb: float = 16, threads: int | None = 1) -> None:
        """Build a loop; every argument is checked here, so mistakes surface before training."""
        check_flags(model, on_nonfinite, scheduler_interval, threads, shuffle, accuracy)
        check_seed(seed)
        rewind_budget = rewind_bytes(rewind_memory_mb)
        check_scheduler_argument(scheduler)  # before a given optimizer object is touched
        self._clip, self._clip_value = check_clip(clip_grad_norm), check_clip_value(clip_grad_value)
        self.accumulate = check_count(accumulate, "accumulate (micro-batches per update)")
        self.device = pick_device(device)
        self.autocast = autocast_context(precision, self.device)  # what the model and loss run in: with loop.autocast()
        self.precision, self._scaling = precision, loss_scaling(precision, self.device)  # fp16: a GradScaler
        self.model = model.to(self.device)
        self.loss_fn, self.loss_name = make_loss(loss_fn)
        loader_batch, loader_shuffle = loader_settings(data)
        batch_size = check_batch_size(batch_size if batch_size is not None else loader_batch or 32)
        self._part = outputs
        self._data = LoopData(data, self.model, self.loss_fn, self.loss_name, accuracy, outputs, self.device, shuffle,
                             validation_split, val_data, seed, drop_last)
        self._data.context = self.autocast
        self.accuracy_kind = self._data.accuracy_kind
        # Which of several targets accuracy reads, and the label it leaves out (per token: ignore_index).
        self._target_part, self._ignore = self._data.target_part, ignored_label(self.loss_fn)
        self.train_indices, self.val_indices = self._data.train_indices, self._data.val_indices
        # Facts fixed at build: the validation data (X, y) or None, whether it validates and records
        # accuracy, and one sample's input shape, like (2,) or (1, 8, 8) (None: a model of several inputs).
        self.val_data, self.has_validation = self._data.val, self._data.val is not None
        # What accuracy counts: "sample", "token" (per token or pixel), "label" (multi-label), or None.
        self.classification, self.accuracy_unit = self.accuracy_kind is not None, self._data.accuracy_unit
        self.input_shape = self._data.input_shape
        self.optimizer, self._optimizer_name = choose_optimizer(optimizer, self.model, lr, momentum, weight_decay,
                                                                optimizer_options)
        self._use_optimizer(scheduler, scheduler_interval, scheduler_metric)
        self.on_nonfinite, self.seed = on_nonfinite, seed
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

    def _use_optimizer(self, scheduler: Any, interval: str, metric: str | None) -> None:
        """Settle the optimizer just chosen: what may be rebuilt, its groups' decay, its scheduler."""
        # By name, an optimizer can be rebuilt (set_optimizer, restore); an object is kept as given.
        self._given_optimizer = None if self._optimizer_name else self.optimizer
        self._decay = GroupShares(self.optimizer)  # which groups a live weight decay moves
        clipping_allowed(self, self._clip or self._clip_value)
        if needs_closure(self.optimizer) and (self.accumulate > 1 or self._scaling is not None):
            raise ValueError(f"{type(self.optimizer).__name__} evaluates the loss again inside its step, on one "
                             "batch: it cannot accumulate micro-batches (accumulate=1) nor scale fp16's gradients "
                             "(precision='bf16' needs no scaling)")
        self.scheduler, self.scheduler_interval = make_scheduler(scheduler, self.optimizer), interval
        self._metric = plateau_metric(self.scheduler, interval, metric, self._data.val is not None,
                                      self.accuracy_kind is not None)  # what a ReduceLROnPlateau watches

    def _start_run(self, seed: int, batch_size: int, shuffle: bool | None, loader_shuffle: bool | None) -> None:
        """The run's state at step 0, and what the steps keep between them."""
        # The loop's own random stream (dropout, augmentation): swapped in around forward and
        # fetching, so two loops with the same seed give the same numbers and torch's is left alone.
        self._run = RunState(torch.Generator().manual_seed(seed).get_state(), batch_size)
        if self.device.type == "cuda":  # dropout on a GPU draws from the device's generator: part of the stream
            self._run.cuda = CudaStream(self.device.index if self.device.index is not None else
                                        torch.cuda.current_device(), seed)
        self._run.sampler = self._data.sampler(shuffle, loader_shuffle, seed, self._run.with_rng)
        self._run.sampler.check_batch_size(batch_size)
        self._ratios = RatioMeter(self.param_names, self._params)  # how far updates move the weights
        self._guard = Guard()
        self.clear_stop()  # no stop asked for yet (stop_reason is "")
        self._batch: Batch | None = None  # the open batch
        self._last_batch: Batch | None = None  # the last batch that updated the weights
        self.last_log: dict[str, Any] = {}
        self.last_epoch_log: dict[str, float] = {}
        self._tally, self._quiet = Tally(), False  # a quiet fit (_run_to_epoch) counts accuracy in bulk (tally.py)

    # --- what a learner looks at: properties defined in readouts.py ---------------------------------------

    state, next_stage, batch, open_batch = readouts.state, readouts.next_stage, readouts.batch, readouts.open_batch
    last_outputs, last_predictions, last_loss = readouts.last_outputs, readouts.last_predictions, readouts.last_loss
    last_grad_norms, n_train, epoch_progress = readouts.last_grad_norms, readouts.n_train, readouts.epoch_progress
    train_data, first_train_samples = readouts.train_data, readouts.first_train_samples
    accuracy_target, loss_scale = readouts.accuracy_target, readouts.loss_scale
    evaluate, predict = readouts.evaluate, readouts.predict

    def __repr__(self) -> str:
        return (f"Loop(epoch={self.state.epoch}, step={self.state.step}, next_stage={self.next_stage!r}, "
                f"lr={self.lr:g}, batch_size={self._run.batch_size}, loss={self.loss_name})")

    # --- live hyperparameters: properties defined in hyperparameters.py, each checked and recorded ----------

    lr, batch_size, weight_decay = hyperparameters.lr, hyperparameters.batch_size, hyperparameters.weight_decay
    weight_decay_groups, optimizer_name = hyperparameters.weight_decay_groups, hyperparameters.optimizer_name
    clip_grad_norm, clip_grad_value = hyperparameters.clip_grad_norm, hyperparameters.clip_grad_value
    set_optimizer = hyperparameters.set_optimizer

    def _record_change(self, name: str, value: Any, replayable: bool = False) -> None:
        """Note a live change for the history and the widgets. ``replayable``: a replay makes it too (a scheduler)."""
        if not replayable:  # the next batch starts from a keyframe: a replay never crosses the change
            self._time.changed = True
        self.history.record_change(self.state.step, name, value)
        self.events.fire("after_change", self)

    # The playground (playground.py, recipe.py): recipes, live momentum and dropout, changes made outside the loop.
    (from_recipe, recipe, momentum, dropout), note_change = playground.LOOP_ATTRIBUTES, _record_change

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
        batch = self._batch
        if batch is None:
            batch = self._open_batch()
        elif batch.finished:  # accumulate=k: the update's next micro-batch
            batch = self._next_micro_batch(batch)
        self.events.fire_before("before_forward", self)
        if not self.model.training:
            self.model.train()
        if self._random_model:  # kept (a reference, not a copy): the step's landscape draws the same masks
            batch.forward_rng = self._run.rng
            if self._run.cuda is not None:
                batch.forward_cuda_rng = self._run.cuda.state
        try:
            outputs = (self._run_model(batch.inputs) if self.autocast is not nullcontext else
                       self._run.with_rng(call_model, self.model, batch.inputs) if self._random_model
                       else call_model(self.model, batch.inputs))
        except BaseException:
            self._time.undo_batch(batch, retry=True)  # BatchNorm may have moved its statistics already
            raise
        batch.outputs = outputs
        self.events.fire("after_forward", self)
        return outputs

    def _run_model(self, inputs: Any) -> Any:
        """The model on ``inputs``: on the loop's random stream if it may draw, under autocast with ``precision``."""
        with self.autocast():
            return self._run.with_rng(call_model, self.model, inputs) if self._random_model \
                else call_model(self.model, inputs)

    def _loss_of(self, outputs: Any, targets: Any) -> Tensor:
        with self.autocast():
            return self.loss_fn(outputs, targets)

    def _loss(self) -> Tensor:
        batch = self._batch
        self.events.fire_before("before_loss", self)
        try:  # a loss that raises puts the batch back, like forward and backward (BatchNorm's statistics)
            loss = (self.loss_fn(batch.outputs, batch.targets) if self.autocast is nullcontext
                    else self._loss_of(batch.outputs, batch.targets))
            if not isinstance(loss, Tensor) or loss.dim() != 0:
                raise ValueError(not_one_number(loss))
            value = loss.item()  # the step's one sync for the loss
        except BaseException:
            self._time.undo_batch(batch, retry=True)
            raise
        if not math.isfinite(value):
            return self._non_finite(batch, loss, "loss", "loss", f"the loss is {value} at step {self.state.step + 1}")
        batch.loss, batch.loss_value = loss, value
        self.events.fire("after_loss", self)
        return loss

    def _backward(self) -> dict[str, float]:
        batch = self._batch
        self.events.fire_before("before_backward", self)
        if not batch.micro:  # zeroed here (at an update's first micro-batch), so after update() they can be read
            for p in self._params:
                p.grad = None
        kind = self.accuracy_kind
        try:  # whatever fails (the graph may be half used up): the batch starts again from forward
            loss = batch.loss / self.accumulate if self.accumulate > 1 else batch.loss
            if self._scaling is None:
                loss.backward()
            else:  # fp16: scaled up for backward, unscaled once the update's last micro-batch is in
                self._scaling.backward(loss, first=not batch.micro)
                if batch.last:
                    self._scaling.unscale(children(self.optimizer))
            correct = None
            if kind:
                scores = pick(batch.outputs, self._part)
                targets = batch.targets if self._target_part is None else pick(batch.targets, self._target_part)
                if self._quiet and self.accumulate == 1 and countable_later(kind, scores, targets):
                    batch.tally = (scores, targets)  # counted with the next steps' (tally.py)
                else:  # float: stacked with the norms
                    correct = count_correct(kind, scores.detach(), targets, torch.float32, ignore_index=self._ignore)
            norms = grad_norms(self._params, correct)  # one sync for every layer and the accuracy
        except BaseException:
            self._time.undo_batch(batch, retry=True)
            raise
        batch.correct = norms.pop() if correct is not None else 0.0
        if self._scaling is not None and not batch.last:  # fp16, mid-update: the gradients are still scaled up
            norms = self._scaling.unscaled(norms)
        # fp16: gradients that overflowed are the scaler's to handle (it skips the step, then halves its scale).
        bad = first_non_finite(self.param_names, self._params, norms) if self._scaling is None else None
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
        closure = needs_closure(self.optimizer)
        found = (self._slots.copy_buffers(), self._run.capture()) if closure else None  # its closure moves them
        try:  # all or nothing: whatever raises (the optimizer, a scheduler), nothing has moved
            clipped = batch.clip_gradients(self._params, self._clip, grad_norm, self._clip_value)
            if closure:  # LBFGS: a closure that runs the model and loss again at the weights it tries
                self.optimizer.step(closure_for(batch.loss, self._params,
                                                lambda: self._loss_of(self._run_model(batch.inputs), batch.targets)))
            elif self._scaling is not None:
                self._scaling.step(children(self.optimizer))
            else:
                self.optimizer.step()
            lr = self.lr
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
        except BaseException:
            self._settle()  # (the replay that puts the update back starts from a keyframe's sums)
            self._time.undo_update(batch, found)  # the batch stays open at update, its gradients still there
            raise
        log = self._commit(batch, lr, grad_norm, clipped)
        if before is not None:
            self._ratios.measure(self.state.step, before)
        if self._run.sampler.epoch_done:
            self._end_epoch(then=self._updated)
        else:  # the common case, without a call more
            self._time.note_still(self._quiet)
            self.events.fire("after_update", self)
        return log

    def _updated(self) -> None:
        """The step has committed: note the loop as it left it, and tell the handlers."""
        self._time.note_still(self._quiet)
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
            self._run_to_epoch(self.state.epoch + 1)
            return self.last_epoch_log

    def fit(self, epochs: int = 1, callbacks: Sequence[Any] = ()) -> History:
        """Train until ``epochs`` more epochs have ended (a partly done one counts); returns the history.
        ``callbacks`` (e.g. ``EarlyStopping``) are attached for this call only."""
        epochs = check_count(epochs, "epochs")
        with self._guard, interrupts_deferred(self._request_stop), attached(callbacks, self):
            self.clear_stop()
            target = self.state.epoch + epochs
            self.events.fire("before_fit", self)
            self._run_to_epoch(target)
            self.events.fire("after_fit", self)
            return self.history

    def _run_to_epoch(self, target: int) -> None:
        """Steps until epoch ``target`` begins or a stop is asked for. Quiet (no handler: nothing runs between
        steps), it counts accuracy in bulk (tally.py) and looks for no change made outside a step (note_still)."""
        self._quiet = self.events.quiet
        try:
            while self.state.epoch < target and not self._stop_requested:
                self._step()
        finally:
            self._quiet = False
            self._settle()
            self._time.end_quiet()

    def _settle(self) -> None:
        """Count the right predictions kept for later into the logs, the epoch's sums and the history."""
        self._tally.settle(self._run.epoch_sums, self.history)

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

    # --- moving in time: each delegates to the loop's TimeTravel (travel.py, time_travel.py) --------------

    snapshot, restore, rewind, rewind_depth = travel.snapshot, travel.restore, travel.rewind, travel.rewind_depth
    reset, save, load, excursion = travel.reset, travel.save, travel.load, travel.excursion
    update_ratios = travel.update_ratios

    def _on_stream(self, fn: Callable[..., Any], *args: Any, advance: bool) -> Any:
        """``fn(*args)`` on the loop's random stream if the model may draw (``advance``: the run's, else a copy)."""
        if not self._random_model:
            return fn(*args)
        return self._run.with_rng(fn, *args) if advance else self._run.on_copy_of_rng(fn, *args)

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
        if self.accumulate == 1:
            self._batch = Batch(inputs, targets, start, opened, len(targets) if isinstance(targets, Tensor)
                                else n_rows(targets))
        else:  # the first of the update's micro-batches; the last one when the epoch has no more samples
            self._batch = Batch(inputs, targets, start, opened, n_rows(targets), last=sampler.epoch_done,
                                take_size=run.batch_size)
        return self._batch

    def _next_micro_batch(self, batch: Batch) -> Batch:
        """accumulate=k: the update's next micro-batch, as large as its first was meant to be."""
        run = self._run
        try:  # a failed fetch puts the whole update back, like a failed stage
            _, inputs, targets = run.take_batch(self._data, batch.take_size)
        except BaseException:
            self._time.undo_batch(batch, retry=True)
            raise
        last = batch.micro + 2 >= self.accumulate or run.sampler.epoch_done
        self._batch = Batch(inputs, targets, batch.start, batch.opened, n_rows(targets), micro=batch.micro + 1,
                            last=last, carried=batch.totals(), take_size=batch.take_size)
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
        clipping = self._clip is not None or self._clip_value is not None
        log = batch.log(self._run.counters, lr, grad_norm, clipped if clipping else None,
                        accuracy=self.accuracy_kind is not None)
        if batch.tally is not None:
            self._tally.add(*batch.tally, log)
        self.history.record_step(log, batch.grad_norms.values())
        self._run.count_update(batch)
        self._time.note_update(batch)
        self._last_batch = batch
        self._batch = None
        self.last_log = log
        if batch.tally is not None and (len(self._tally) >= EVERY or not self._quiet):  # (or finished by a step)
            self._settle()
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
        self._settle()
        index, log = self._run.end_epoch(accuracy=self.accuracy_kind is not None)
        try:
            if self._data.val is not None:
                # Part of the run (a hand loop's validation draws from torch's one stream too): it advances the stream.
                log.update({f"val_{k}": v for k, v in self._on_stream(self._data.scores, advance=True).items()})
        finally:  # even if validation fails, the epoch has ended: record what we have
            self.history.record_epoch(index, log)
            self.last_epoch_log = {"epoch": index, **log}
            self._step_scheduler_after_epoch(log)
        return self.last_epoch_log

    def _step_scheduler_after_epoch(self, log: dict[str, float]) -> None:
        """Step an epoch scheduler; any scheduler's new lr is recorded as a change, for the plots and sliders."""
        if self.scheduler is not None:
            used = self.last_log.get("lr", self.lr)
            step_after_epoch(self.scheduler, self.scheduler_interval, log, self._metric)
            if self.lr != used:
                self._record_change("lr", self.lr, replayable=True)
