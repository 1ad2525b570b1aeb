"""Check my loop: a learner's own training step (or epoch) against the loop's, stage by stage.

    def my_step(model, optimizer, loss_fn, inputs, targets):
        optimizer.zero_grad()               # forget the last batch's gradients
        outputs = model(inputs)             # forward
        loss = loss_fn(outputs, targets)    # loss
        loss.backward()                     # backward
        optimizer.step()                    # update
        return loss

    report = tl.check_step(my_step, loop, steps=3)   # in a notebook: a green tick, or the first difference
    report.ok, report.stage, report.where, report.advice

How: the learner's code runs on copies of the loop's model and optimizer, watched through
PyTorch's own hooks (the model's forward hooks, each parameter's gradient hook, the optimizer's
step hook) and a loss function that records its calls. The loop runs its own four stages on the
same batches inside ``loop.excursion()``, so afterwards it is exactly as it was. The two are
compared in the order a step runs: the outputs, the loss, every gradient at the moment the
optimizer steps, the weights after the step. The first difference makes the report, with the
known mistake it shows when there is one (``mistakes.py``).
"""

from __future__ import annotations

import copy
import math
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from trainlab.batching import joined, rows
from trainlab.check_report import CheckReport
from trainlab.checks import check_count
from trainlab.errors import StageError
from trainlab.faults import planted
from trainlab.mistakes import MISTAKES
from trainlab.snapshot import optimizer_copy

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["check_step", "check_loop", "CheckReport"]

_RTOL, _ATOL = 1e-4, 1e-6  # a learner's own formula (a hand-written MSE, say) rounds a little differently


def check_step(my_step: Callable[..., Any], loop: Loop, steps: int = 1) -> CheckReport:
    """Run ``my_step(model, optimizer, loss_fn, inputs, targets)`` against the loop's own step, ``steps`` times.

    Each step gets the loop's next batch; the learner's code runs on copies of the model and
    optimizer (holding the loop's last gradients, as a hand loop's would), the loop is left exactly
    as it was. ``steps=3`` catches what shows only from the second step (a forgotten zero_grad).
    """
    _check_function(my_step, "my_step(model, optimizer, loss_fn, inputs, targets)")
    steps = check_count(steps, "steps")
    with loop.hold(), _randomness_kept():
        _check_ready(loop, "check_step")
        watched = _Watched(loop)
        try:
            with loop.excursion(), _LoopSteps(loop) as reference:
                for number in range(1, steps + 1):
                    expected = reference.next()
                    watched.rng_for[len(watched.calls)] = expected.rng
                    mark = watched.mark()
                    try:
                        with loop.autocast():  # the precision the loop's own model and loss run in
                            returned = my_step(watched.model, watched.optimizer, watched.loss_fn,
                                               _cloned(expected.inputs), expected.targets.clone())
                    except Exception as error:  # the learner's code failed: say where, and why if we know
                        return _failed(error, watched.attempt(mark), number, "step")
                    difference = _compare(expected, watched.attempt(mark, returned), loop.loss_fn, watched.names)
                    if difference is not None:
                        return CheckReport(False, number, "step", step=number, **difference)
        finally:
            watched.close()
    return CheckReport(True, steps, "step")


def check_loop(my_train_epoch: Callable[..., Any], loop: Loop) -> CheckReport:
    """Run ``my_train_epoch(model, optimizer, loss_fn, data_loader)`` against the loop's own epoch.

    ``data_loader`` gives the batches of the loop's next epoch (what is left of the current one,
    if it has begun) as ``(inputs, targets)``; like a shuffling DataLoader it gives another order
    each time it is gone through again, so inputs and labels drawn from two passes do not match.
    Each batch is compared as ``check_step`` compares a step; the loop is left exactly as it was.
    """
    _check_function(my_train_epoch, "my_train_epoch(model, optimizer, loss_fn, data_loader)")
    with loop.hold(), _randomness_kept():
        _check_ready(loop, "check_loop")
        watched = _Watched(loop)
        try:
            with loop.excursion(), _LoopSteps(loop) as reference:
                expected = reference.rest_of_epoch()
            watched.rng_for = {i: step.rng for i, step in enumerate(expected)}
            loader = EpochBatches([(step.inputs, step.targets) for step in expected], loop.seed)
            try:
                with loop.autocast():
                    my_train_epoch(watched.model, watched.optimizer, watched.loss_fn, loader)
            except Exception as error:
                number = max(len(watched.calls), 1)
                return _failed(error, watched.batch_attempt(number - 1), number, "batch")
            for i, step in enumerate(expected):
                if i >= len(watched.calls):
                    return CheckReport(False, i + 1, "batch", step=i + 1, stage="forward", where="outputs",
                                       advice=f"the epoch stopped after {i} of its {len(expected)} batches: "
                                              "train on every batch, for inputs, targets in data_loader")
                difference = _compare(step, watched.batch_attempt(i), loop.loss_fn, watched.names)
                if difference is not None:
                    return CheckReport(False, i + 1, "batch", step=i + 1, **difference)
        finally:
            watched.close()
    return CheckReport(True, len(expected), "batch")


class EpochBatches:
    """The batches ``check_loop`` hands a learner's epoch, as a shuffling DataLoader gives them.

    The first pass gives the loop's own batches; each later pass the same samples in another order
    (as ``DataLoader(..., shuffle=True)`` reshuffles at every ``for``), in batches of the same sizes.
    """

    def __init__(self, batches: list[tuple[Any, Tensor]], seed: int) -> None:
        self._batches, self._seed, self._passes = batches, seed, 0
        self.batch_size = len(batches[0][1]) if batches else 0

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[tuple[Any, Tensor]]:
        self._passes += 1
        batches = self._batches if self._passes == 1 else self._reshuffled()
        for inputs, targets in batches:
            yield _cloned(inputs), targets.clone()

    def _reshuffled(self) -> list[tuple[Any, Tensor]]:
        inputs, targets = joined([b[0] for b in self._batches]), torch.cat([b[1] for b in self._batches])
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(self._seed + self._passes))
        cuts = np.cumsum([0] + [len(b[1]) for b in self._batches])
        return [(rows(inputs, order[a:b]), targets[order[a:b]]) for a, b in zip(cuts[:-1], cuts[1:])]


# --- the loop's side ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Expected:
    """One of the loop's own steps: its batch and random state, and what each stage gave."""

    inputs: Any
    targets: Tensor
    rng: Tensor | None  # the random state its forward drew from (dropout's masks); None: no randomness
    outputs: list[Tensor]
    loss: float
    grads: list[Tensor | None]  # at the moment the optimizer stepped (after any clipping)
    before: list[Tensor]  # the weights before the update
    after: list[Tensor]  # and after


class _LoopSteps:
    """The loop's own steps, one at a time, recorded (inside ``loop.excursion()``, which puts it all back)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.params = list(loop.model.parameters())
        self._grads: list[Tensor | None] = []

    def __enter__(self) -> _LoopSteps:
        # The optimizer's own hook sees the gradients exactly as it uses them; removed on leaving.
        self._handle = self.loop.optimizer.register_step_pre_hook(self._at_step)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()

    def _at_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._grads = [_copy(p.grad) for p in self.params]

    def next(self) -> _Expected:
        """Run the loop's next step, stage by stage, and record it."""
        loop = self.loop
        outputs = loop.forward()
        (inputs, targets), rng = loop.batch, loop.open_batch.forward_rng
        loop.loss()
        loop.backward()
        before = [p.detach().clone() for p in self.params]
        log = loop.update()
        return _Expected(inputs, targets, rng, _frozen(outputs), log["loss"], self._grads, before,
                         [p.detach().clone() for p in self.params])

    def rest_of_epoch(self) -> list[_Expected]:
        """The loop's steps until its current epoch ends."""
        epoch, steps = self.loop.state.epoch, []
        while self.loop.state.epoch == epoch:
            steps.append(self.next())
        return steps


# --- the learner's side ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    """One call of the learner's model: the model as the call found it, what it was given and returned."""

    seq: int
    inputs: list[Tensor]
    in_eval: list[str]  # the modules in eval mode
    weights: list[Tensor]
    grads: list[Tensor | None]
    outputs: list[Tensor] | None = None
    attached: bool = False  # whether the outputs lead back to the weights (no detach, no no_grad)


@dataclass(eq=False)
class _LossCall:
    seq: int
    outputs: list[Tensor]  # what the loss function was given
    attached: bool
    targets: list[Tensor]
    value: Any


@dataclass(eq=False)
class _OptimizerStep:
    seq: int
    grads: list[Tensor | None]


@dataclass(eq=False)
class _Attempt:
    """What the learner's code did for one step (or one batch of an epoch)."""

    call: _Call | None
    loss_call: _LossCall | None
    loss: Any  # what to compare with the loop's loss: my_step's return value, or the loss function's
    loss_required: bool  # my_step must give one (an epoch may use a loss function of its own)
    returned: Any
    step: _OptimizerStep | None
    n_steps: int
    backward: int | None  # when the first gradient arrived after the model's call (None: never)
    grads_after: list[Tensor | None] | None  # the gradients once the step was over (None: not known)
    weights_after: list[Tensor]


class _Watched:
    """Copies of the loop's model and optimizer for the learner's code, watched by PyTorch's hooks."""

    def __init__(self, loop: Loop) -> None:
        self.names = list(loop.param_names)
        self.model = copy.deepcopy(loop.model).train()
        self.params = list(self.model.parameters())
        for mine, theirs in zip(self.params, loop.model.parameters()):  # the gradients a hand loop would hold
            mine.grad = _copy(theirs.grad)
        self.optimizer = optimizer_copy(loop.optimizer, loop.model, self.model)
        self.loss_fn = _RecordedLoss(loop.loss_fn, self)
        self.rng_for: dict[int, Tensor | None] = {}  # model call -> the random state it starts from
        self.calls: list[_Call] = []
        self.losses: list[_LossCall] = []
        self.steps: list[_OptimizerStep] = []
        self.backwards: list[int] = []
        self._seq, self._last = 0, ""
        self._handles = [self.model.register_forward_pre_hook(self._before_call, with_kwargs=True),
                         self.model.register_forward_hook(self._after_call),
                         self.optimizer.register_step_pre_hook(self._at_step)]
        self._handles += [p.register_post_accumulate_grad_hook(self._accumulated) for p in self.params
                          if p.requires_grad]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def tick(self, kind: str) -> int:
        self._seq += 1
        self._last = kind
        return self._seq

    def _before_call(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        rng = self.rng_for.get(len(self.calls))
        if rng is not None:  # the same dropout masks as the loop's forward drew
            torch.set_rng_state(rng)
        self.calls.append(_Call(self.tick("forward"), _frozen((args, kwargs)),
                                [name or "model" for name, m in self.model.named_modules() if not m.training],
                                [p.detach().clone() for p in self.params], [_copy(p.grad) for p in self.params]))

    def _after_call(self, module: nn.Module, args: Any, output: Any) -> None:
        call = self.calls[-1]
        call.outputs, call.attached = _frozen(output), _attached(output)

    def _accumulated(self, param: Tensor) -> None:
        if self._last != "backward":
            self.backwards.append(self.tick("backward"))

    def _at_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps.append(_OptimizerStep(self.tick("step"), [_copy(p.grad) for p in self.params]))

    def mark(self) -> tuple[int, int, int]:
        """Where the records stand before a step of the learner's: the calls, losses and steps so far."""
        return len(self.calls), len(self.losses), len(self.steps)

    def attempt(self, mark: tuple[int, int, int], returned: Any = None) -> _Attempt:
        """What one call of ``my_step`` did, from ``mark`` on."""
        calls, losses, steps = (self.calls[mark[0]:], self.losses[mark[1]:], self.steps[mark[2]:])
        call = calls[0] if calls else None
        loss_call = losses[-1] if losses else None
        loss = returned if returned is not None else (loss_call.value if loss_call else None)
        return _Attempt(call, loss_call, loss, True, returned, steps[0] if steps else None, len(steps),
                        self._first_backward_after(call), [_copy(p.grad) for p in self.params],
                        [p.detach().clone() for p in self.params])

    def batch_attempt(self, i: int) -> _Attempt:
        """What a learner's epoch did with batch ``i``: from its model call to the next one."""
        call = self.calls[i] if i < len(self.calls) else None
        start = call.seq if call else 0
        end = self.calls[i + 1].seq if i + 1 < len(self.calls) else math.inf
        losses = [c for c in self.losses if start < c.seq < end]
        steps = [s for s in self.steps if start < s.seq < end]
        after = (self.calls[i + 1].weights if i + 1 < len(self.calls)
                 else [p.detach().clone() for p in self.params])
        loss_call = losses[0] if losses else None
        return _Attempt(call, loss_call, loss_call.value if loss_call else None, False, None,
                        steps[0] if steps else None,
                        len(steps), self._first_backward_after(call), None, after)

    def _first_backward_after(self, call: _Call | None) -> int | None:
        if call is None:
            return None
        return next((seq for seq in self.backwards if seq > call.seq), None)


class _RecordedLoss:
    """The loop's loss function, recording what each call was given and gave back."""

    def __init__(self, loss_fn: Callable[..., Tensor], watched: _Watched) -> None:
        self.loss_fn, self._watched = loss_fn, watched

    def __call__(self, outputs: Any, targets: Any, *args: Any, **kwargs: Any) -> Any:
        value = self.loss_fn(outputs, targets, *args, **kwargs)
        self._watched.losses.append(_LossCall(self._watched.tick("loss"), _frozen(outputs), _attached(outputs),
                                              _frozen(targets), value))
        return value

    def __getattr__(self, name: str) -> Any:  # loss_fn.reduction and the like, as the loss function has them
        return getattr(self.loss_fn, name)

    def __repr__(self) -> str:
        return repr(self.loss_fn)


# --- comparing, and naming the mistake -------------------------------------------------------------------


def _compare(expected: _Expected, got: _Attempt, loss_fn: Callable[..., Tensor],
             names: list[str]) -> dict[str, Any] | None:
    """The first difference between the loop's step and the learner's, as the report's fields (None: none)."""
    return (_forward(expected, got) or _loss(expected, got, loss_fn) or _backward(expected, got, names)
            or _update(expected, got, names))


def _difference(stage: str, where: str, expected: Any, got: Any, mistake: str | None = None,
                advice: str = "") -> dict[str, Any]:
    return {"stage": stage, "where": where, "expected": expected, "got": got, "mistake": mistake,
            "advice": MISTAKES[mistake].advice if mistake and not advice else advice}


def _forward(expected: _Expected, got: _Attempt) -> dict[str, Any] | None:
    call = got.call
    if call is None or call.outputs is None:
        return _difference("forward", "outputs", expected.outputs[0], None,
                           advice="the model was never called: outputs = model(inputs)")
    if _all_close(expected.outputs, call.outputs):
        return None
    mine = call.outputs[0] if call.outputs else None
    if call.in_eval:
        return _difference("forward", "outputs", expected.outputs[0], mine, "eval_mode",
                           MISTAKES["eval_mode"].advice + f" (in eval mode: {', '.join(call.in_eval[:3])})")
    if not _all_close(_frozen(expected.inputs), call.inputs):
        return _difference("forward", "outputs", expected.outputs[0], mine, "wrong_inputs")
    return _difference("forward", "outputs", expected.outputs[0], mine,
                       advice="the outputs differ from the model's on this batch: compute them with "
                              "outputs = model(inputs)")


def _loss(expected: _Expected, got: _Attempt, loss_fn: Callable[..., Tensor]) -> dict[str, Any] | None:
    value = got.loss
    if value is None and got.call is not None and not got.loss_required:
        return None  # an epoch that used a loss function of its own: its gradients will tell
    if value is None:
        return _difference("loss", "loss", expected.loss, None,
                           advice="no loss to compare: return it from your step (return loss), computed "
                                  "with the loss_fn it is given")
    if isinstance(value, Tensor) and value.numel() != 1:
        return _difference("loss", "loss", expected.loss, value.detach(), "loss_not_reduced")
    try:
        number = float(value.detach() if isinstance(value, Tensor) else value)
    except (TypeError, ValueError):
        return _difference("loss", "loss", expected.loss, value,
                           advice=f"your step returned a {type(value).__name__}; return the loss")
    if _close_numbers(number, expected.loss):
        return None
    return _difference("loss", "loss", expected.loss, number, *_loss_mistake(expected, got, number, loss_fn))


def _loss_mistake(expected: _Expected, got: _Attempt, number: float,
                  loss_fn: Callable[..., Tensor]) -> tuple[str | None, str]:
    targets = expected.targets
    given = got.loss_call
    if given is not None and given.targets and not _all_close([targets], given.targets[:1]):
        mine = given.targets[0]
        if mine.shape == targets.shape and mine.dtype == targets.dtype:  # targets, but of other inputs
            return "labels_shuffled", ""
        return None, "the loss was not given this batch's targets: loss = loss_fn(outputs, targets)"
    for size in {len(targets), targets.numel(), expected.outputs[0].numel()}:
        if size > 1 and _close_numbers(number, expected.loss * size):
            return "loss_summed", ""
    if _close_numbers(number, _softmaxed_loss(expected, loss_fn)):
        return "softmax_before_loss", ""
    return None, "the loss differs from the loop's: compute it as loss = loss_fn(outputs, targets)"


def _softmaxed_loss(expected: _Expected, loss_fn: Callable[..., Tensor]) -> float:
    """The loss the loop would get from softmax probabilities instead of its outputs (nan if it cannot)."""
    outputs = expected.outputs[0]
    if len(expected.outputs) != 1 or outputs.dim() < 2:
        return math.nan
    try:
        with torch.no_grad():
            return float(loss_fn(outputs.softmax(dim=1), expected.targets))
    except Exception:  # a loss that takes no such outputs: then it was not this mistake
        return math.nan


def _backward(expected: _Expected, got: _Attempt, names: list[str]) -> dict[str, Any] | None:
    grads = got.step.grads if got.step is not None else got.grads_after
    if grads is None:  # no optimizer step, in an epoch: the weights say what happened
        return None
    i = _first_different(expected.grads, grads)
    if i is None:
        return None
    where, want, mine = names[i], expected.grads[i], grads[i]
    if got.backward is None and _detached(got):
        return _difference("backward", where, want, mine, "detached_outputs")
    cut_off = isinstance(got.returned, (Tensor, float)) and getattr(got.returned, "grad_fn", None) is None
    if got.backward is None and cut_off:  # a number, or a tensor made of one: backward reached no weight
        return _difference("backward", where, want, mine, "loss_item")
    if got.step is not None and (got.backward is None or got.step.seq < got.backward):
        return _difference("backward", where, want, mine, "step_before_backward")
    if got.backward is None:
        return _difference("backward", where, want, mine,
                           advice="no gradient reached the weights: call loss.backward() before optimizer.step()")
    if _scaled(expected.grads, grads) == len(expected.targets) > 1:  # a summed loss of the learner's own
        return _difference("backward", where, want, mine, "loss_summed")
    entry = got.call.grads if got.call is not None else []
    if any(g is not None and bool(g.any()) for g in entry) and all(
            _close_or_none(_plus(w, e), g) for w, e, g in zip(expected.grads, entry, grads)):
        return _difference("backward", where, want, mine, "forgot_zero_grad")
    return _difference("backward", where, want, mine,
                       advice="the gradients differ from the loop's: call loss.backward() once, on this batch's loss")


def _update(expected: _Expected, got: _Attempt, names: list[str]) -> dict[str, Any] | None:
    i = _first_different(expected.after, got.weights_after)
    if i is None:
        return None
    where, want, mine = names[i], expected.after[i], got.weights_after[i]
    before = got.call.weights if got.call is not None else expected.before
    if _all_close(before, got.weights_after):
        return _difference("update", where, want, mine, "forgot_step")
    if got.n_steps > 1:
        return _difference("update", where, want, mine,
                           advice=f"optimizer.step() was called {got.n_steps} times in one step: call it once")
    factor = _power_of_ten(expected, before, got.weights_after)
    if factor is not None:
        return _difference("update", where, want, mine, "lr_magnitude",
                           MISTAKES["lr_magnitude"].advice + f" (here {factor:g} times as far)")
    return _difference("update", where, want, mine,
                       advice="the weights after the step differ from the loop's: let optimizer.step() make "
                              "the update")


def _power_of_ten(expected: _Expected, before: list[Tensor], after: list[Tensor]) -> float | None:
    """The factor k if the learner's update is k times the loop's for a power of ten k (10, 0.01...), else None."""
    k = _scaled([a - b for a, b in zip(expected.after, expected.before)], [a - b for a, b in zip(after, before)])
    if k is None or k <= 0:
        return None
    exponent = round(math.log10(k))
    return 10.0 ** exponent if exponent != 0 and abs(math.log10(k) - exponent) < 0.02 else None


def _scaled(want: list[Tensor | None], mine: list[Tensor | None]) -> float | None:
    """k if ``mine`` is ``k * want`` throughout (to a thousandth), k rounded to 3 digits; else None."""
    if any((a is None) != (b is None) for a, b in zip(want, mine)):
        return None
    want_all = torch.cat([a.double().flatten() for a in want if a is not None] or [torch.zeros(0)])
    mine_all = torch.cat([b.double().flatten() for b in mine if b is not None] or [torch.zeros(0)])
    if not bool(want_all.any()):
        return None
    k = float(mine_all @ want_all / (want_all @ want_all))
    if float((mine_all - k * want_all).norm()) > 1e-3 * float(mine_all.norm()):
        return None
    return float(f"{k:.3g}")


def _failed(error: Exception, got: _Attempt, number: int, unit: str) -> CheckReport:
    """The learner's code raised: the stage it reached, and the mistake when the error shows one."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    said = f"your code raised {type(error).__name__}" + (f" ({text})" if text else "") + ": "
    mistake, stage = None, _stage_reached(got)
    if "does not require grad" in text or "does not have a grad_fn" in text:
        mistake = "detached_outputs" if _detached(got) else "loss_item"
    elif isinstance(error, AttributeError) and "backward" in text:
        mistake = "loss_item"
    elif "only for scalar outputs" in text:
        mistake = "loss_not_reduced"
    if mistake is not None:
        stage = MISTAKES[mistake].stage
        advice = said + MISTAKES[mistake].advice
    else:
        advice = said + "read the error: it names the line that failed"
    where = {"forward": "outputs", "loss": "loss"}.get(stage, "the gradients" if stage == "backward" else "weights")
    return CheckReport(False, number, unit, stage=stage, where=where, advice=advice, mistake=mistake, step=number)


def _detached(got: _Attempt) -> bool:
    """Whether the outputs the loss was given (or the model returned) lead nowhere back to the weights."""
    loss_given_detached = got.loss_call is not None and not got.loss_call.attached
    return loss_given_detached or (got.call is not None and not got.call.attached)


def _stage_reached(got: _Attempt) -> str:
    if got.call is None or got.call.outputs is None:
        return "forward"
    if got.loss_call is None:
        return "loss"
    return "backward" if got.backward is None else "update"


# --- small helpers -----------------------------------------------------------------------------------


def _frozen(value: Any) -> list[Tensor]:
    """Every tensor in ``value`` (a tensor, or tuples, lists and dicts of them), detached copies."""
    return [t.detach().clone() for t in _tensors(value)]


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _attached(value: Any) -> bool:
    return any(t.requires_grad for t in _tensors(value) if t.is_floating_point())


def _copy(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach().clone()


def _cloned(inputs: Any) -> Any:
    """A copy of a batch's inputs (a tensor, or a tuple or dict of them): the learner may change it in place."""
    if isinstance(inputs, Tensor):
        return inputs.clone()
    if isinstance(inputs, dict):
        return {key: _cloned(value) for key, value in inputs.items()}
    return type(inputs)(_cloned(value) for value in inputs)


def _close(want: Tensor, mine: Tensor) -> bool:
    if want.shape != mine.shape:
        return False
    if not want.is_floating_point():
        return torch.equal(want, mine)
    want, mine = want.double(), mine.double()
    scale = float(torch.maximum(want.abs().max(), mine.abs().max())) if want.numel() else 0.0
    return bool(((want - mine).abs() <= _ATOL + _RTOL * scale).all())


def _close_or_none(want: Tensor | None, mine: Tensor | None) -> bool:
    """Gradients: None (no gradient yet) counts as zeros."""
    if want is None or mine is None:
        other = mine if want is None else want
        return other is None or not bool(other.any())
    return _close(want, mine)


def _all_close(want: list[Tensor], mine: list[Tensor]) -> bool:
    return len(want) == len(mine) and all(_close(a, b) for a, b in zip(want, mine))


def _first_different(want: list[Tensor | None], mine: list[Tensor | None]) -> int | None:
    return next((i for i, (a, b) in enumerate(zip(want, mine)) if not _close_or_none(a, b)), None)


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _close_numbers(mine: float, want: float) -> bool:
    if not (math.isfinite(mine) and math.isfinite(want)):
        return False
    return abs(mine - want) <= _ATOL + _RTOL * max(abs(want), abs(mine))


def _check_function(fn: Any, shape: str) -> None:
    if not callable(fn):
        raise ValueError(f"give the function itself, {shape}; got {fn!r}")


def _check_ready(loop: Loop, what: str) -> None:
    """A check starts between batches, on a loop without a planted fault (its reference must be right)."""
    if loop.next_stage != "forward":
        raise StageError(f"{what}() runs between batches, and this batch is at {loop.next_stage}(); "
                         "call loop.step() to finish it first")
    if loop.accumulate > 1:
        raise ValueError(f"{what}() compares one batch per update, and this loop makes each update from "
                         f"{loop.accumulate} micro-batches (accumulate={loop.accumulate}); check against a loop "
                         "built with accumulate=1")
    if loop.loss_scale is not None:
        raise ValueError(f"{what}() runs the learner's code without the loop's gradient scaling, and this loop "
                         "scales fp16's gradients (precision='fp16'); check against a loop built with "
                         "precision='bf16' or without precision=")
    if planted(loop) is not None:
        raise ValueError(f"this loop has a planted fault (the bug clinic), so its own step is not the right "
                         f"answer; {what}() against a loop built without fault=")


@contextmanager
def _randomness_kept() -> Iterator[None]:
    """torch's, numpy's and Python's random states (and grad mode) as they were, whatever the learner's code drew."""
    python, numpy_state, grad = random.getstate(), np.random.get_state(), torch.is_grad_enabled()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy_state)
            torch.set_grad_enabled(grad)
