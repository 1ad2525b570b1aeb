"""The Loop: a PyTorch training loop whose four stages a learner can call one at a time.

One training step is always the same fixed sequence::

    outputs = loop.forward()    # the model's predictions for the next batch
    loss = loop.loss()          # how wrong they are: one number, still attached to the graph
    grads = loop.backward()     # d(loss)/d(parameter) for every parameter: {name: gradient norm}
    log = loop.update()         # the optimizer moves the parameters; the batch is done

``step()`` runs what is left of a batch, ``run_epoch()`` what is left of an epoch and
``fit(epochs)`` several epochs. The loop owns the batching, so ``loop.batch_size`` and
``loop.lr`` can change at any moment and take effect at the next batch / next update.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from trainlab import checkpoint
from trainlab.batching import EpochSampler, as_tensors, loader_settings, split_validation
from trainlab.callbacks import attach_all
from trainlab.errors import CheckpointError, LoopBusyError, NonFiniteError, StageError
from trainlab.events import Events, Handle
from trainlab.history import History
from trainlab.options import (accuracy_kind, check_batch_size, check_lr, check_optimizer_options, check_seed,
                              check_targets, check_weight_decay, make_loss, make_optimizer, real_number)
from trainlab.snapshot import RewindBuffer, Snapshot, clone_optimizer_state, clone_tree, copy_optimizer_state

__all__ = ["Loop", "State", "STAGES"]

STAGES = ("forward", "loss", "backward", "update")
_EVAL_BATCH = 1024  # evaluation needs no gradients, so it can use big batches


@dataclass
class State:
    """Counters of a loop's progress."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed updates
    skipped: int = 0  # batches skipped because of non-finite values (on_nonfinite="skip_batch")


class Loop:
    """A training loop you can run stage by stage, batch by batch, epoch by epoch, or live.

    Example::

        X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
        loop = tl.Loop(tl.models.mlp(2, [16, 16], 2), (X, y), "cross_entropy", lr=0.1)
        loop.fit(epochs=10)
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        loss_fn: Any,
        optimizer: Any = "sgd",
        lr: float | None = None,
        batch_size: int | None = None,
        shuffle: bool | None = None,
        seed: int = 0,
        validation_split: float = 0.0,
        val_data: Any = None,
        *,
        momentum: float | None = None,
        weight_decay: float | None = None,
        optimizer_options: dict[str, Any] | None = None,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        accuracy: bool | None = None,
        device: str | torch.device = "cpu",
        on_nonfinite: str = "raise",
        rewind_memory_mb: float = 16,
        threads: int | None = 1,
    ) -> None:
        """Build a loop; every argument is checked here, so mistakes surface before training.

        ``lr`` defaults to 0.01 (or an optimizer object's own lr), ``batch_size`` to 32 and
        ``shuffle`` to True (or a DataLoader's own settings). ``validation_split`` holds out a
        seeded random fraction of the data (``loop.val_indices`` lists which samples).
        ``scheduler`` is a ``torch.optim.lr_scheduler`` object or a function ``optimizer ->
        scheduler``, stepped after every epoch (``scheduler_interval="epoch"``) or every update
        (``"step"``). ``rewind_memory_mb`` caps the automatic snapshots behind ``rewind`` (16 MB:
        over a thousand steps of a small MLP; more costs speed, as the copies fall out of the CPU's cache).
        ``threads`` sets torch's intra-op threads for the whole process (None: leave them): one
        thread runs a lab's small models fastest, and on a shared CPU (Binder, a dashboard
        playing next to the kernel) more threads make tiny operations 10-100x slower.
        """
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if on_nonfinite not in ("raise", "skip_batch"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip_batch'; got {on_nonfinite!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step'; got {scheduler_interval!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a whole number, at least 1, or None; got {threads!r}")
        for name, flag in (("shuffle", shuffle), ("accuracy", accuracy)):
            if flag is not None and not isinstance(flag, bool):
                raise ValueError(f"{name} must be True, False or None (the default); got {flag!r}")
        check_seed(seed)
        rewind_bytes = _rewind_bytes(rewind_memory_mb)
        _check_scheduler_argument(scheduler)  # before a given optimizer object is touched
        self.device = _pick_device(device)
        self.model = model.to(self.device)
        self.loss_fn, self.loss_name = make_loss(loss_fn)
        self._accuracy_kind = accuracy_kind(self.loss_fn) if accuracy in (None, True) else None
        if accuracy is True and self._accuracy_kind is None:
            raise ValueError("accuracy=True needs a classification loss (cross_entropy or bce)")
        loader_batch, loader_shuffle = loader_settings(data)
        batch_size = batch_size if batch_size is not None else loader_batch or 32
        shuffle = shuffle if shuffle is not None else (True if loader_shuffle is None else loader_shuffle)
        self._batch_size = check_batch_size(batch_size)

        self._take_data(data, validation_split, val_data, seed)
        _probe(self.model, self.loss_fn, self._accuracy_kind, *self._train)

        options = check_optimizer_options(optimizer_options)
        options.update({k: v for k, v in (("momentum", momentum), ("weight_decay", weight_decay)) if v is not None})
        self.optimizer = make_optimizer(optimizer, self.model, None if lr is None else check_lr(lr), options)
        # By name, an optimizer can be rebuilt (set_optimizer, restore); an object is kept as given.
        self._optimizer_name = optimizer.lower() if isinstance(optimizer, str) else None
        self._given_optimizer = None if self._optimizer_name else self.optimizer
        self.scheduler = _make_scheduler(scheduler, self.optimizer)
        self.scheduler_interval = scheduler_interval
        self.on_nonfinite = on_nonfinite
        self.seed = seed
        if threads is not None:
            torch.set_num_threads(threads)

        # Parameters we watch: every trainable one, in module order.
        named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        self.param_names = [name for name, _ in named]
        self._params = [p for _, p in named]
        self._model_state = self.model.state_dict(keep_vars=True)  # live references, for cheap copies

        keys = ["loss"] + (["accuracy"] if self._accuracy_kind else [])
        keys += [f"val_{k}" for k in keys] if self._val is not None else []
        self.history = History(self.param_names, keys)
        self.events = Events()
        self.state = State()
        self._sampler = EpochSampler(len(self._train[0]), shuffle, seed)
        # The loop's own random stream (dropout etc.): swapped in around forward, so two
        # loops with the same seed give the same numbers and the global RNG is left alone.
        # Models made only of deterministic torch.nn layers skip the swap (it costs a few us).
        self._rng_state = torch.Generator().manual_seed(seed).get_state()
        self._random_model = _may_draw_random_numbers(self.model)
        self._rewind = RewindBuffer(rewind_bytes)
        self._guard = _Exclusive(threading.RLock())
        self._stop_requested = False
        self.stop_reason = ""
        self._last_update_start: Snapshot | None = None
        self._close_batch()
        self._epoch_sums = [0.0, 0, 0.0]  # loss * samples, samples, correct predictions
        self.last_log: dict[str, float] = {}
        self.last_epoch_log: dict[str, float] = {}
        self._initial = self.snapshot("initial")
        self._initial_hyper = (self.lr, self._batch_size)

    def _take_data(self, data: Any, validation_split: float, val_data: Any, seed: int) -> None:
        """Turn the data into tensors on the device and split off the validation part, once."""
        if val_data is not None and validation_split:
            raise ValueError("give either validation_split or val_data, not both")
        inputs, targets = as_tensors(data, "data")
        check_targets(self.loss_name, self._accuracy_kind, targets, "data")
        inputs, targets = _in_model_dtype(self.model, inputs.to(self.device), targets.to(self.device))
        self.train_indices, self.val_indices = split_validation(len(inputs), validation_split, seed)
        if validation_split:
            self._train = inputs[self.train_indices], targets[self.train_indices]
            self._val = inputs[self.val_indices], targets[self.val_indices]
        else:
            self._train = inputs, targets
            self._val = self._prepared(val_data, "val_data") if val_data is not None else None

    # --- what a learner looks at ---------------------------------------------------

    @property
    def next_stage(self) -> str:
        """The stage that is due: "forward", "loss", "backward" or "update"."""
        return STAGES[self._stage]

    @property
    def n_train(self) -> int:
        """The number of training samples (one epoch)."""
        return self._sampler.n

    @property
    def epoch_progress(self) -> tuple[int, int]:
        """(samples of this epoch already trained on, samples per epoch)."""
        if self.batch is not None:
            return self._batch_start, self._sampler.n
        return (0 if self._sampler.epoch_done else self._sampler.position), self._sampler.n

    @property
    def has_validation(self) -> bool:
        """Whether the loop validates after each epoch."""
        return self._val is not None

    @property
    def classification(self) -> bool:
        """Whether accuracy is recorded."""
        return self._accuracy_kind is not None

    @property
    def train_data(self) -> tuple[Tensor, Tensor]:
        """The training split ``(X, y)``."""
        return self._train

    @property
    def val_data(self) -> tuple[Tensor, Tensor] | None:
        """The validation data ``(X, y)``, or None."""
        return self._val

    def __repr__(self) -> str:
        return (f"Loop(epoch={self.state.epoch}, step={self.state.step}, next_stage={self.next_stage!r}, "
                f"lr={self.lr:g}, batch_size={self._batch_size}, loss={self.loss_name})")

    # --- live hyperparameters ----------------------------------------------------------

    @property
    def lr(self) -> float:
        """The learning rate; setting it applies to the next update (every parameter group)."""
        return self.optimizer.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = check_lr(value)
        for group in self.optimizer.param_groups:
            group["lr"] = value
        self._record_change("lr", value)

    @property
    def batch_size(self) -> int:
        """Samples per batch; setting it applies from the next batch, never mid-batch."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = check_batch_size(value)
        self._record_change("batch_size", self._batch_size)

    @property
    def weight_decay(self) -> float:
        """L2 penalty on the weights (the optimizer's ``weight_decay``); live, from the next update."""
        return float(self.optimizer.param_groups[0].get("weight_decay", 0.0))

    @weight_decay.setter
    def weight_decay(self, value: float) -> None:
        value = check_weight_decay(value)
        if "weight_decay" not in self.optimizer.param_groups[0]:
            raise ValueError(f"{type(self.optimizer).__name__} has no weight_decay setting")
        for group in self.optimizer.param_groups:
            group["weight_decay"] = value
        self._record_change("weight_decay", value)

    @property
    def optimizer_name(self) -> str:
        """The optimizer's name: "sgd", "adam", ... (or its class name when given as an object)."""
        return self._optimizer_name or type(self.optimizer).__name__

    def set_optimizer(self, name: str, **options: Any) -> None:
        """Switch to another optimizer by name (fresh state, same lr and weight decay) from the next update.

        While the dashboard plays, use its optimizer menu (it switches between two batches).

        Example: ``loop.set_optimizer("adam")`` or ``loop.set_optimizer("sgd", momentum=0.9)``
        """
        with self._exclusive():  # the optimizer must not change under a step running in another thread
            if self.scheduler is not None:
                raise ValueError("this loop's scheduler drives its optimizer; build a new Loop to change both")
            if not isinstance(name, str):
                raise ValueError(f"set_optimizer takes a name like 'adam'; got {name!r}")
            options.setdefault("weight_decay", self.weight_decay)
            self.optimizer = make_optimizer(name, self.model, self.lr, options)
            self._optimizer_name = name.lower()
            self._record_change("optimizer", self._optimizer_name)

    def update_ratios(self) -> dict[str, float]:
        """How far the last update moved each parameter, relative to its size: ||change|| / ||weights||."""
        before = self._last_update_start
        if before is None:
            return {}
        old = [before.state["model"][name] for name in self.param_names]
        new = [p.detach() for p in self._params]
        sizes = torch._foreach_norm(old)
        changes = torch._foreach_norm(torch._foreach_sub(new, old))
        numbers = torch.stack(changes + sizes).tolist()  # one sync for every layer
        k = len(self.param_names)
        return {name: numbers[i] / numbers[k + i] if numbers[k + i] else math.inf
                for i, name in enumerate(self.param_names)}

    def _record_change(self, name: str, value: float) -> None:
        self.history.record_change(self.state.step, name, value)
        self.events.fire("after_change", self)

    # --- events --------------------------------------------------------------------------

    def on(self, event: str, fn: Callable[["Loop"], None]) -> Handle:
        """Call ``fn(loop)`` at ``event`` (e.g. "after_backward"); returns a handle with ``remove()``."""
        return self.events.on(event, fn)

    # --- the four stages ---------------------------------------------------------------

    # Each public stage checks that it is due, then runs its body (``_forward`` ...);
    # ``step`` runs the bodies directly, in order, so a batch pays for one check, not four.
    # A subclass that redefines a stage has its own version run by step/fit/run_epoch too.
    _stage_methods: tuple[str, ...] = ("_forward", "_loss", "_backward", "_update")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if any(getattr(cls, stage) is not getattr(Loop, stage) for stage in STAGES):
            cls._stage_methods = STAGES

    def forward(self) -> Tensor:
        """Run the model on the current batch (starting the next batch if none is open)."""
        with self._exclusive():
            self._expect("forward")
            return self._forward()

    def loss(self) -> Tensor:
        """Compare the outputs with the targets: a 0-d tensor, still attached to the graph."""
        with self._exclusive():
            self._expect("loss")
            return self._loss()

    def backward(self) -> dict[str, float]:
        """Backpropagate: fill every parameter's ``.grad``; returns {parameter name: gradient norm}."""
        with self._exclusive():
            self._expect("backward")
            return self._backward()

    def update(self) -> dict[str, float]:
        """Let the optimizer move the parameters; closes the batch and returns the step's log."""
        with self._exclusive():
            self._expect("update")
            return self._update()

    def _forward(self) -> Tensor:
        if self.batch is None:
            self._open_batch()
        self.events.fire("before_forward", self)
        if not self.model.training:
            self.model.train()
        x = self.batch[0]
        outputs = self._with_loop_rng(self.model, x) if self._random_model else self.model(x)
        self.last_outputs = outputs
        self._stage = 1
        self.events.fire("after_forward", self)
        return outputs

    def _loss(self) -> Tensor:
        self.events.fire("before_loss", self)
        loss = self.loss_fn(self.last_outputs, self.batch[1])
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise ValueError(_not_one_number(loss))
        value = loss.item()  # the step's one sync for the loss
        if not math.isfinite(value):
            return self._non_finite(loss, "loss", "loss", f"the loss is {value} at step {self.state.step + 1}")
        self.last_loss = loss
        self._loss_value = value
        self._stage = 2
        self.events.fire("after_loss", self)
        return loss

    def _backward(self) -> dict[str, float]:
        self.events.fire("before_backward", self)
        for p in self._params:  # zeroed here, so after update() they can still be read
            p.grad = None
        self.last_loss.backward()
        norms, correct = self._grad_norms()
        bad = _first_non_finite(self.param_names, self._params, norms)
        if bad is not None:
            return self._non_finite(self.last_loss, "backward", bad,
                                    f"the gradient of {bad!r} is not finite at step {self.state.step + 1}")
        self.last_grad_norms = dict(zip(self.param_names, norms))
        self._correct = correct
        self._stage = 3
        self.events.fire("after_backward", self)
        return self.last_grad_norms

    def _update(self) -> dict[str, float]:
        self.events.fire("before_update", self)
        try:
            self.optimizer.step()
        except BaseException:
            self._put_back_weights()  # an interrupted step must not leave half-moved weights
            raise
        log = self._commit_step()
        epoch_ended = self._sampler.epoch_done
        if epoch_ended:
            self._finish_epoch()
        try:
            self.events.fire("after_update", self)
        finally:  # an ended epoch is always announced, even if an after_update handler raised
            if epoch_ended:
                self.events.fire("after_epoch", self)
        return log

    # --- bigger strides ------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        """Run the stages left in the current batch (or a whole new batch); returns its log."""
        with self._exclusive():
            return self._step()

    def _step(self) -> dict[str, float]:
        while True:
            stage = self._stage  # read again each time: a handler may have run a stage itself
            getattr(self, self._stage_methods[stage])()
            if stage == 3 or self.batch is None:  # updated, or skipped (non-finite)
                return self.last_log

    def run_epoch(self) -> dict[str, float]:
        """Finish the current epoch (or run a whole new one), then validate; returns its log."""
        with self._exclusive(), self._interrupts_deferred():
            self.clear_stop()
            target = self.state.epoch + 1
            while self.state.epoch < target and not self._stop_requested:
                self._step()
            return self.last_epoch_log

    def fit(self, epochs: int = 1, callbacks: Sequence[Any] = ()) -> History:
        """Train until ``epochs`` more epochs have ended (a partly done one counts); returns the history.

        ``callbacks`` (e.g. ``EarlyStopping``) are attached for this call only.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a whole number of at least 1; got {epochs!r}")
        with self._exclusive(), self._interrupts_deferred():
            handles = attach_all(callbacks, self)
            try:
                self.clear_stop()
                target = self.state.epoch + epochs
                self.events.fire("before_fit", self)
                while self.state.epoch < target and not self._stop_requested:
                    self._step()
                self.events.fire("after_fit", self)
            finally:
                for handle in handles:
                    handle.remove()
            return self.history

    def stop(self, reason: str = "stop requested") -> None:
        """Ask ``fit``/``run_epoch`` (or the dashboard's player) to stop at the next batch boundary."""
        self.stop_reason = reason
        self._stop_requested = True

    def clear_stop(self) -> None:
        """Forget a stop request (fit and run_epoch do this when they start; so does the dashboard's Play)."""
        self._stop_requested = False
        self.stop_reason = ""

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for since the last fit/run_epoch started."""
        return self._stop_requested

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """Loss (and accuracy) on ``data``, or on the validation data; in eval mode, without gradients."""
        with self._exclusive():
            if data is None and self._val is None:
                raise ValueError("this loop has no validation data: build it with validation_split=0.2 "
                                 "or val_data=(X, y), or pass data: loop.evaluate((X_test, y_test))")
            inputs, targets = self._val if data is None else self._prepared(data, "evaluate's data")
            return self._evaluate(inputs, targets)

    def predict(self, inputs: Tensor) -> Tensor:
        """The model's outputs for ``inputs``, in eval mode, without gradients (for plots)."""
        with self._exclusive():
            x = self._predict_inputs(inputs)
            with _eval_mode(self.model), torch.no_grad():
                return self.model(x)

    def _predict_inputs(self, inputs: Any) -> Tensor:
        """``inputs`` as a batch like the training inputs (same dtype and device), or a ValueError."""
        train_x = self._train[0]
        shape = tuple(train_x.shape[1:])
        batch = f"(n, {', '.join(map(str, shape))})"
        try:
            x = torch.as_tensor(inputs)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"predict takes a batch of inputs, a tensor or array of shape {batch}; "
                             f"got {type(inputs).__name__}") from None
        if tuple(x.shape) == shape:
            raise ValueError(f"predict takes a batch; for one sample of shape {shape} pass x.unsqueeze(0) or [x]")
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"predict takes inputs shaped like the training inputs, {batch}; got shape {tuple(x.shape)}")
        return x.to(self.device, train_x.dtype)

    # --- time travel -----------------------------------------------------------------------

    def snapshot(self, name: str | None = None) -> Snapshot:
        """An exact copy of the loop's state to ``restore`` later (mid-batch: the batch's start)."""
        with self._exclusive():
            if self.batch is not None:  # the batch's start; its weights get a copy of their own (see _copy_weights)
                pending = self._pending
                state = dict(pending.state, model=clone_tree(pending.state["model"]))
                return Snapshot(name, pending.step, pending.epoch, state, pending.history, id(self))
            return self._capture(name)

    def restore(self, snapshot: Snapshot) -> None:
        """Go back exactly to ``snapshot``; the run left behind is kept in ``history.branches``."""
        with self._exclusive():
            if not isinstance(snapshot, Snapshot) or snapshot.owner != id(self):
                raise ValueError("restore takes a snapshot made by this loop's snapshot()")
            self._apply(snapshot.state)
            self.history.restore(snapshot.history, f"before restore to {snapshot.name or snapshot.step}")
            self._rewind.clear()
            self.events.fire("after_restore", self)

    def rewind(self, steps: int = 1) -> int:
        """Undo the last ``steps`` updates (an open batch is dropped too); returns the step now reached."""
        with self._exclusive():
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"rewind takes a whole number of steps, at least 1; got {steps!r}")
            depth = self._rewind.depth(self.state.step)
            if steps > depth:
                raise ValueError(
                    f"can rewind at most {depth} step(s) here: automatic snapshots cover the updates since the "
                    f"last restore/reset/load, within {self._rewind.budget_bytes / 2**20:g} MB "
                    "(rewind_memory_mb); use loop.snapshot() to keep a point for longer")
            target = self._rewind.take(self.state.step - steps)
            self._apply(target.state)
            self.history.restore(target.history, f"rewound from step {target.step + steps}")
            self.events.fire("after_restore", self)
            return self.state.step

    @property
    def rewind_depth(self) -> int:
        """How many updates ``rewind`` can undo right now."""
        return self._rewind.depth(self.state.step)

    def reset(self) -> None:
        """Back to the initial weights and step 0, keeping the current lr and batch size."""
        with self._exclusive():
            lr, batch_size = self.lr, self._batch_size
            self.restore(self._initial)
            for name, now, initial in (("lr", lr, self._initial_hyper[0]), ("batch_size", batch_size, self._initial_hyper[1])):
                if now != initial:
                    setattr(self, name, now)

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint to ``path`` atomically (mid-batch: the batch's start)."""
        with self._exclusive():
            # Mid-batch, the batch's start; nothing is copied: the file is written before anything moves.
            start = self._pending if self.batch is not None else self._capture(None)
            checkpoint.write(path, start.state, self.history.state_dict(start.history))

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint from ``save``; a bad file raises CheckpointError and changes nothing."""
        with self._exclusive():
            payload = checkpoint.read(path)
            state = payload["state"]
            checkpoint.check_model(state["model"], self.model.state_dict())
            checkpoint.check_position(state, self.n_train, shuffle=self._sampler.shuffle)
            checkpoint.check_optimizer_groups(state)
            try:  # everything is tried on scratch copies first: a refused file changes nothing
                self._try_state(state)
                history = self.history.parse_state_dict(payload["history"])
            except Exception as error:
                raise CheckpointError(f"{str(path)!r} does not fit this loop: {error}") from None
            self._apply(state)
            self.history.adopt(history, "before load")
            self._rewind.clear()
            self.events.fire("after_restore", self)

    # --- inside a batch ------------------------------------------------------------------------

    def _expect(self, stage: str) -> None:
        due = self.next_stage
        if stage != due:
            hint = "call loop.step() to finish this batch" if due != "forward" else "start a batch with loop.forward()"
            raise StageError(f"{stage}() is not due: the next stage is {due}(); {hint}")

    def _open_batch(self) -> None:
        self._pending = self._capture(None)
        if self._sampler.epoch_done:
            self._sampler.start_epoch()
            self._epoch_sums = [0.0, 0, 0.0]
            self.events.fire("before_epoch", self)
        start, stop = self._sampler.take(self._batch_size)
        self._batch_start = start
        self.batch = self._sampler.rows(*self._train, start, stop)

    def _close_batch(self) -> None:
        self.batch: tuple[Tensor, Tensor] | None = None
        self._stage = 0
        self.last_outputs: Tensor | None = None
        self.last_loss: Tensor | None = None

    def _with_loop_rng(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        outside = torch.get_rng_state()
        torch.set_rng_state(self._rng_state)
        try:
            return fn(x)
        finally:
            self._rng_state = torch.get_rng_state()
            torch.set_rng_state(outside)

    def _grad_norms(self) -> tuple[list[float], float]:
        """Every parameter's gradient norm (and the batch's correct predictions) in one host sync."""
        grads = [p.grad if p.grad is not None else _ZERO for p in self._params]
        values = list(torch._foreach_norm(grads))
        if self._accuracy_kind:
            values.append(_correct(self._accuracy_kind, self.last_outputs.detach(), self.batch[1], values[0].dtype))
        numbers = torch.stack(values).tolist() if values else []
        correct = numbers.pop() if self._accuracy_kind else 0.0
        return numbers, correct

    def _non_finite(self, loss: Tensor, stage: str, where: str, message: str) -> Tensor:
        """Stop a batch whose loss or gradients are NaN/inf: raise, or skip it (on_nonfinite)."""
        if self.on_nonfinite == "skip_batch":
            self.state.skipped += 1
            self.last_log = {"step": self.state.step, "epoch": self.state.epoch, "skipped": True}
            self._close_batch()  # its samples count as used; no update happens
            if self._sampler.epoch_done:
                self._finish_epoch()
                self.events.fire("after_epoch", self)
            return loss
        bad_data = _non_finite_data(self.batch)
        advice = (f"This batch's {bad_data} hold NaN or infinite values: fix the data, or build the loop with "
                  "on_nonfinite='skip_batch' to skip such batches" if bad_data else
                  "Undo recent updates with loop.rewind(), lower the learning rate (loop.lr = ...) and continue")
        # Put the batch back, so that after a rewind or a smaller lr the same samples come next,
        # with the same random numbers (dropout): a retry gives what a first try would have.
        self._sampler.position = self._batch_start
        self._rng_state = self._pending.state["rng"]
        self._close_batch()
        raise NonFiniteError(f"{message}: the parameters were not updated. {advice}", stage=stage, where=where)

    def _commit_step(self) -> dict[str, float]:
        batch_size = len(self.batch[1])
        norms = self.last_grad_norms.values()
        grad_norm = math.sqrt(math.fsum(v * v for v in norms))
        accuracy = self._correct / batch_size if self._accuracy_kind else float("nan")
        lr = self.lr
        self.history.record_step(self.state.epoch, self._loss_value, accuracy, lr, batch_size, grad_norm,
                                 list(norms))
        sums = self._epoch_sums
        sums[0] += self._loss_value * batch_size
        sums[1] += batch_size
        sums[2] += self._correct
        self.state.step += 1
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        self._rewind.push(self._pending)  # never recycles the snapshot just pushed: it is also...
        self._last_update_start = self._pending  # ...the last update's start, for update_ratios
        self._close_batch()
        log = {"step": self.state.step, "epoch": self.state.epoch, "loss": self._loss_value, "lr": lr,
               "batch_size": batch_size, "grad_norm": grad_norm}
        if self._accuracy_kind:
            log["accuracy"] = accuracy
        self.last_log = log
        return log

    def _finish_epoch(self) -> dict[str, float]:
        """Close the epoch whose last batch just ended: its mean loss, validation, the history."""
        loss_sum, samples, correct = self._epoch_sums
        log = {"loss": loss_sum / samples if samples else float("nan")}
        if self._accuracy_kind:
            log["accuracy"] = correct / samples if samples else float("nan")
        index = self.state.epoch
        self.state.epoch += 1
        try:
            if self._val is not None:
                log.update({f"val_{k}": v for k, v in self._evaluate(*self._val).items()})
        finally:  # even if validation fails, the epoch has ended: record what we have
            self.history.record_epoch(index, log)
            self.last_epoch_log = {"epoch": index, **log}
            self._step_scheduler_after_epoch(log)
        return self.last_epoch_log

    def _step_scheduler_after_epoch(self, log: dict[str, float]) -> None:
        if self.scheduler is None or self.scheduler_interval != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(log.get("val_loss", log["loss"]))
        else:
            self.scheduler.step()

    def _evaluate(self, inputs: Tensor, targets: Tensor) -> dict[str, float]:
        loss_sum, correct = 0.0, 0.0
        with _eval_mode(self.model), torch.no_grad():
            for start in range(0, len(inputs), _EVAL_BATCH):
                x, y = inputs[start:start + _EVAL_BATCH], targets[start:start + _EVAL_BATCH]
                outputs = self.model(x)
                loss_sum += self.loss_fn(outputs, y).item() * len(y)
                if self._accuracy_kind:
                    correct += _correct(self._accuracy_kind, outputs, y).item()
        result = {"loss": loss_sum / len(inputs)}
        if self._accuracy_kind:
            result["accuracy"] = correct / len(inputs)
        return result

    def _prepared(self, data: Any, what: str) -> tuple[Tensor, Tensor]:
        inputs, targets = as_tensors(data, what)
        check_targets(self.loss_name, self._accuracy_kind, targets, what)
        train_x = self._train[0]
        if inputs.shape[1:] != train_x.shape[1:]:
            raise ValueError(f"{what}: each input has shape {tuple(inputs.shape[1:])} but the training "
                             f"inputs have {tuple(train_x.shape[1:])}")
        train_y = self._train[1]  # converted like the training data was (numpy's float64, say)
        inputs, targets = inputs.to(self.device, train_x.dtype), targets.to(self.device)
        if targets.is_floating_point() and train_y.is_floating_point():
            targets = targets.to(train_y.dtype)
        _probe(self.model, self.loss_fn, self._accuracy_kind, inputs, targets)  # labels, target shapes
        return inputs, targets

    # --- state capture (snapshots, rewind, checkpoints) -----------------------------------------

    def _capture(self, name: str | None) -> Snapshot:
        state = {
            "model": self._copy_weights(),
            "optimizer_type": self._optimizer_name,
            "optimizer": copy_optimizer_state(self.optimizer),
            "scheduler": clone_tree(self.scheduler.state_dict()) if self.scheduler is not None else None,
            "rng": self._rng_state,  # never written in place: swapping replaces it
            "sampler": self._sampler.state(),
            "counters": {"epoch": self.state.epoch, "step": self.state.step, "skipped": self.state.skipped,
                         "epoch_sums": list(self._epoch_sums)},
            "batch_size": self._batch_size,
        }
        return Snapshot(name, self.state.step, self.state.epoch, state, self.history.mark(), id(self))

    def _copy_weights(self) -> dict[str, Tensor]:
        """The model's weights and buffers, copied into the memory of a snapshot the rewind buffer dropped.

        Reusing that memory (rather than allocating a new copy every step) keeps the
        allocator out of the hot path; in a background thread it would otherwise hand
        memory back to the system and fault it in again several times a step.
        """
        spare = self._rewind.reuse()
        if spare is None:
            return {key: tensor.detach().clone() for key, tensor in self._model_state.items()}
        for key, tensor in self._model_state.items():
            spare[key].copy_(tensor.detach())  # detach(): cheaper than a no_grad() block for a few tensors
        return spare

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
        self._rng_state = state["rng"].clone()
        sampler = state["sampler"]
        self._sampler.load_state({"rng": sampler["rng"], "order": sampler["order"],
                                  "position": int(sampler["position"])})
        counters = state["counters"]
        self.state = State(int(counters["epoch"]), int(counters["step"]), int(counters["skipped"]))
        self._epoch_sums = [float(counters["epoch_sums"][0]), int(counters["epoch_sums"][1]),
                            float(counters["epoch_sums"][2])]
        self._batch_size = int(state["batch_size"])
        self._close_batch()
        self._last_update_start = None
        # No update ran at the new position: a step whose batch this jump dropped returns this.
        self.last_log = {"step": self.state.step, "epoch": self.state.epoch, "restored": True}
        self.model.zero_grad(set_to_none=True)

    def _try_state(self, state: dict[str, Any]) -> None:
        """Raise if ``state`` (from a file) would not load; changes nothing of the loop."""
        kind = state["optimizer_type"]
        if not kind and self._given_optimizer is None:
            raise ValueError("it was saved by a loop given an optimizer object, and this loop's optimizer was "
                             "chosen by name; build the loop with the same kind of optimizer object to load it")
        scratch = make_optimizer(kind, self.model, None, {}) if kind else copy.deepcopy(self._given_optimizer)
        scratch.load_state_dict(clone_optimizer_state(state["optimizer"]))
        for group in scratch.param_groups:  # torch loads any optimizer's settings into any other
            missing = set(scratch.defaults) - set(group)
            if missing:
                raise ValueError(f"it was saved with another kind of optimizer than this loop's "
                                 f"{type(scratch).__name__} (its settings lack {', '.join(sorted(missing))}); "
                                 "build the loop with the optimizer that saved it")
        if self.scheduler is not None and state["scheduler"] is not None:
            copy.deepcopy(self.scheduler).load_state_dict(clone_tree(state["scheduler"]))
        torch.Generator().set_state(state["rng"])
        torch.Generator().set_state(state["sampler"]["rng"])
        counters = state["counters"]
        values = [counters["epoch"], counters["step"], counters["skipped"], *counters["epoch_sums"]]
        if len(values) != 6 or not all(isinstance(v, (int, float)) and v >= 0 for v in values):
            raise ValueError("its counters are malformed")

    def _put_back_weights(self) -> None:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.model.load_state_dict(self._pending.state["model"])
        self.optimizer.load_state_dict(clone_optimizer_state(self._pending.state["optimizer"]))
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr

    # --- threads and interrupts --------------------------------------------------------------------

    def _exclusive(self) -> "_Exclusive":
        """Refuse calls from a thread while another thread (the dashboard's player) owns the loop."""
        return self._guard

    def hold(self) -> "_Exclusive":
        """Own the loop from this thread until the block ends; other threads get LoopBusyError.

        Example: ``with loop.hold(): ...`` (the dashboard's player holds it while playing).
        """
        return self._guard

    @contextmanager
    def _interrupts_deferred(self) -> Iterator[None]:
        """Turn Ctrl-C / Kernel → Interrupt into a stop at the next batch boundary, then re-raise it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        interrupted = []

        def request_stop(signum: int, frame: Any) -> None:
            interrupted.append(signum)
            self._stop_requested = True
            signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts at once

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGINT) is request_stop:
                signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt("training stopped at a batch boundary; call fit() again to continue")


_ZERO = torch.zeros(())


class _Exclusive:
    """A re-entrant, non-blocking lock as a context manager (a plain class: it runs five times a step)."""

    __slots__ = ("lock",)

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        if not self.lock.acquire(blocking=False):
            raise LoopBusyError("the loop is playing in the background (the dashboard's Play); "
                                "press Pause, or call dash.pause(), before calling it from a cell")

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


_RANDOM_LAYERS = (nn.modules.dropout._DropoutNd, nn.RReLU)


def _may_draw_random_numbers(model: nn.Module) -> bool:
    """Whether forward may use the RNG: a random torch layer, or any layer of the user's own."""
    return any(isinstance(m, _RANDOM_LAYERS) or not type(m).__module__.startswith("torch.nn")
               for m in model.modules())


def _pick_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(chosen.type, False):
        raise ValueError(f"this machine has no {chosen.type} device; use device='cpu' (or 'auto': a GPU if there is one)")
    return chosen


_SCHEDULER_HINT = ("scheduler must be a torch.optim.lr_scheduler built on the loop's optimizer, "
                   "or a function optimizer -> scheduler, e.g. lambda opt: StepLR(opt, step_size=10)")


def _check_scheduler_argument(scheduler: Any) -> None:
    if scheduler is not None and not callable(scheduler) and not hasattr(scheduler, "step"):
        raise ValueError(_SCHEDULER_HINT)


def _make_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer) -> Any:
    if scheduler is None:
        return None
    if callable(scheduler) and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)
    if not hasattr(scheduler, "step") or getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError(_SCHEDULER_HINT)
    return scheduler


def _correct(kind: str, outputs: Tensor, targets: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """The number of right predictions in a batch, as a tensor (no sync); counted as ``dtype`` if given."""
    if kind == "multiclass":
        labels = targets.argmax(1) if targets.is_floating_point() else targets
        return (outputs.argmax(1) == labels).sum(dtype=dtype)
    threshold = 0.0 if kind == "binary_logits" else 0.5
    return ((outputs.reshape(targets.shape) > threshold) == (targets > 0.5)).sum(dtype=dtype)


def _first_non_finite(names: list[str], params: list[nn.Parameter], norms: list[float]) -> str | None:
    """The first parameter whose gradient has a NaN/inf, judged on the gradient itself.

    A finite norm proves a finite gradient; an infinite norm may come from a huge but
    finite gradient (float32 overflows in the sum of squares), so look closer there.
    """
    if math.isfinite(math.fsum(norms)):
        return None
    for i, (name, p) in enumerate(zip(names, params)):
        if not math.isfinite(norms[i]):
            if not bool(torch.isfinite(p.grad).all()):
                return name
            norms[i] = float(p.grad.double().norm())
    return None


def _not_one_number(loss: Any) -> str:
    """Why a loss function's result cannot be trained on, and what to return instead."""
    if not isinstance(loss, Tensor):
        return (f"the loss function must return a tensor computed from the outputs (so backward() can follow "
                f"it); it returned a {type(loss).__name__}")
    return (f"the loss function must return one number (a 0-d tensor); it returned shape {tuple(loss.shape)}: "
            "use a loss with reduction='mean'")


def _rewind_bytes(megabytes: Any) -> int:
    """The rewind budget in bytes, or a ValueError: a number of MB, at least 0 (0 turns rewind off)."""
    number = real_number(megabytes)
    if number is None or not 0 <= number < math.inf:
        raise ValueError(f"rewind_memory_mb is a number of megabytes, at least 0 (0 turns rewind off), "
                         f"like rewind_memory_mb=16; got {megabytes!r}")
    return int(number * 2**20)


def _in_model_dtype(model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """The data as given if the model runs on it; else its floats in the model's dtype.

    numpy gives float64 and torch layers are float32: such data is converted, as Keras does.
    A model that takes float64 itself (to centre raw timestamps, say) keeps its precision.
    """
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is None or not inputs.is_floating_point() or inputs.dtype == dtype or _runs_on(model, inputs[:2]):
        return inputs, targets
    return inputs.to(dtype), targets.to(dtype) if targets.is_floating_point() else targets


def _runs_on(model: nn.Module, x: Tensor) -> bool:
    try:
        _quiet_forward(model, x)
        return True
    except Exception:
        return False


def _quiet_forward(model: nn.Module, x: Tensor) -> Any:
    """The model's outputs for ``x`` in eval mode, leaving no trace: no graph, no random numbers drawn."""
    with _eval_mode(model), torch.no_grad(), torch.random.fork_rng(devices=[]):
        return model(x)


def _non_finite_data(batch: tuple[Tensor, Tensor]) -> str | None:
    """Which part of a batch holds NaN/inf ("inputs" or "targets"), or None if it is all finite."""
    for name, tensor in zip(("inputs", "targets"), batch):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _probe(model: nn.Module, loss_fn: Any, kind: str | None, inputs: Tensor, targets: Tensor) -> None:
    """Run the model and loss on two samples now, so shape mistakes are reported at build time."""
    x, y = inputs[:2], targets[:2]
    try:
        outputs = _quiet_forward(model, x)
    except Exception as error:
        raise ValueError(f"the model failed on a batch of the data (inputs of shape {tuple(x.shape[1:])}): "
                         f"{error}. Check that the model's input size matches the data") from error
    if not isinstance(outputs, Tensor):
        raise ValueError(f"the model must return a tensor; it returned {type(outputs).__name__}")
    if kind == "multiclass" and outputs.dim() != 2:
        hint = ("; the inputs have no feature axis: give them shape (n, 1) with X.view(-1, 1)" if x.dim() == 1
                else "")
        raise ValueError(f"a classifier must output one score per class for each sample, shape (batch, classes); "
                         f"on 2 samples the model outputs shape {tuple(outputs.shape)}{hint}")
    if kind == "multiclass" and not targets.is_floating_point():
        classes = outputs.shape[1]
        top = int(targets.max())
        if top >= classes or int(targets.min()) < 0:
            raise ValueError(f"the targets hold class {top} but the model outputs {classes} scores per sample; "
                             f"build it with at least {top + 1} outputs")
    if kind is None and outputs.shape != y.shape and outputs.dim() and outputs.numel() == y.numel():
        raise ValueError(f"the model outputs shape {tuple(outputs.shape[1:])} per sample but the targets have "
                         f"{tuple(y.shape[1:])}; reshape the targets (e.g. y.view(-1, 1)) so they match")
    try:
        loss = loss_fn(outputs, y)
    except Exception as error:
        raise ValueError(f"the loss function failed on the model's outputs: {error}") from error
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        raise ValueError(_not_one_number(loss))
