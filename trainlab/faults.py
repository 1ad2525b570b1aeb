"""The bug clinic: plant one of the classic training-loop mistakes in a loop, and read it from the dashboard.

    loop = tl.Loop(model, (X, y), "cross_entropy", lr=0.3, fault="forgot_zero_grad")
    tl.Dashboard(loop)                 # what do the plots show?
    tl.faults.reveal(loop, guess="forgot_step")   # right or not, and which mistake it was

    tl.faults.NAMES                    # {name: the symptom it shows}
    tl.Loop(..., seed=seat, fault="random")       # one per learner, chosen by the seed

Each fault sits where the mistake would sit in a learner's own code, planted through what any
loop offers: the model (a forward hook, its parameters' gradient hooks), the loss function
(``loop.loss_fn``), the optimizer (its step hooks) and the loop's events. Nothing of the loop's
own is touched, so it still travels in time exactly: Reset, Rewind and snapshots work on a sick
loop too (after a jump, a gradient pile older than the last few thousand steps starts again).
"""

from __future__ import annotations

import html
import random
import weakref
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from trainlab.mistakes import MISTAKES

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["Fault", "FAULTS", "NAMES", "plant", "plant_asked", "planted", "remove", "reveal", "Reveal"]

_PILE_BYTES = 16 * 2**20  # the forgotten zero_grad's gradient piles kept for jumps back in time


@dataclass(frozen=True)
class Fault:
    """A mistake the clinic can plant: what was wrong in the code, and what the dashboard shows."""

    name: str
    mistake: str  # what the loop's code does wrong, as a learner would have written it
    symptom: str  # what the dashboard shows, within the first 50 steps
    plant: Callable[[Loop], Callable[[], None]]  # plants it; returns what takes it out again
    applies: Callable[[Loop], bool] = lambda loop: True  # whether this loop can show it

    @property
    def advice(self) -> str:
        """The check's advice for the same mistake in a learner's code."""
        return MISTAKES[self.name].advice


# --- how each one is planted ----------------------------------------------------------------------------


class _GradientPile:
    """``optimizer.zero_grad()`` forgotten: every backward adds this batch's gradients to all the earlier ones.

    Each parameter's gradient hook returns the batch's gradient plus the pile so far, so the loop
    measures, plots and steps with the piled gradients, as a hand loop would. Piles are kept by
    step (a rewind or an lr finder's trial steps find the right one). The handler at
    ``before_backward`` is not an observer: it tells the loop the step depends on more than its
    weights, so rewind keeps a copy before every step rather than replaying across the pile.
    """

    def __init__(self, loop: Loop) -> None:
        self.loop = weakref.ref(loop)
        params = [p for p in loop.model.parameters() if p.requires_grad]
        self.piles: dict[int, list[Tensor | None]] = {}
        self.keep = max(2, _PILE_BYTES // max(1, sum(p.numel() * p.element_size() for p in params)))
        self.handles = [p.register_hook(partial(self.add, i, len(params))) for i, p in enumerate(params)]
        self.handles.append(loop.on("before_backward", self.prune))

    def add(self, i: int, n: int, grad: Tensor) -> Tensor:
        step = self.loop().state.step  # type: ignore[union-attr]  # the loop owns the hooks: it is alive
        earlier = self.piles.get(step)
        total = grad if earlier is None or earlier[i] is None else grad + earlier[i]
        self.piles.setdefault(step + 1, [None] * n)[i] = total.detach().clone()
        return total

    def prune(self, loop: Loop) -> None:
        oldest = loop.state.step - self.keep
        for step in [s for s in self.piles if s < oldest]:
            del self.piles[step]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class _OptimizerHooks:
    """A fault on the optimizer's step (its pre- and post-step hooks), following the loop to a new optimizer."""

    def __init__(self, loop: Loop, after_step: Callable[[list[Tensor], list[Tensor]], None]) -> None:
        self.after_step = after_step
        self.optimizer: Any = None
        self.handles: list[Any] = []
        self.follow(loop)
        # set_optimizer, or a jump back to before one, brings another optimizer: the fault moves to it.
        self.events = [loop.on("after_change", self.follow, observer=True),
                       loop.on("after_restore", self.follow, observer=True)]

    def follow(self, loop: Loop) -> None:
        if loop.optimizer is self.optimizer:
            return
        self.unhook()
        self.optimizer = loop.optimizer
        self.params = [p for group in loop.optimizer.param_groups for p in group["params"]]
        self.handles = [loop.optimizer.register_step_pre_hook(self.before),
                        loop.optimizer.register_step_post_hook(self.after)]

    def before(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.start = [p.detach().clone() for p in self.params]

    def after(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            self.after_step(self.start, self.params)

    def unhook(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def remove(self) -> None:
        self.unhook()
        for handle in self.events:
            handle.remove()


def _undo_step(start: list[Tensor], params: list[Tensor]) -> None:
    for p, before in zip(params, start):
        p.copy_(before)


def _tenfold_step(start: list[Tensor], params: list[Tensor]) -> None:
    for p, before in zip(params, start):
        p.copy_(before + 10 * (p - before))


class _SummedLoss:
    """The loss function, summed over the batch instead of averaged (the mean times the batch size)."""

    def __init__(self, loss_fn: Callable[..., Tensor]) -> None:
        self.loss_fn = loss_fn

    def __call__(self, outputs: Any, targets: Tensor) -> Tensor:
        return self.loss_fn(outputs, targets) * len(targets)


class _ShuffledLabels:
    """The loss function given each sample's neighbour's label: inputs and labels no longer match."""

    def __init__(self, loss_fn: Callable[..., Tensor]) -> None:
        self.loss_fn = loss_fn

    def __call__(self, outputs: Any, targets: Tensor) -> Tensor:
        return self.loss_fn(outputs, targets.roll(1, 0))


def _replaced_loss(wrapper: type) -> Callable[[Loop], Callable[[], None]]:
    def plant_it(loop: Loop) -> Callable[[], None]:
        original, held = loop.loss_fn, weakref.ref(loop)  # weakly: the registry must not keep the loop alive
        loop.loss_fn = wrapper(original)
        return lambda: setattr(held(), "loss_fn", original)
    return plant_it


def _softmax_outputs(loop: Loop) -> Callable[[], None]:
    handle = loop.model.register_forward_hook(lambda module, args, outputs: outputs.softmax(dim=1))
    return handle.remove


def _pile(loop: Loop) -> Callable[[], None]:
    return _GradientPile(loop).remove


def _on_optimizer(after_step: Callable[[list[Tensor], list[Tensor]], None]) -> Callable[[Loop], Callable[[], None]]:
    return lambda loop: _OptimizerHooks(loop, after_step).remove


def _classifier(loop: Loop) -> bool:
    return loop.accuracy_kind == "multiclass"


#: Every fault the clinic can plant, by name.
FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("forgot_zero_grad", "optimizer.zero_grad() is never called, so each step's gradients pile onto the "
          "ones before",
          "the gradient norms grow step after step, and the loss swings and climbs", _pile),
    Fault("forgot_step", "optimizer.step() is never called: the gradients are computed, and nothing uses them",
          "the loss stays flat and the boundary never moves, although the gradients are there; the update "
          "ratios are 0", _on_optimizer(_undo_step)),
    Fault("loss_summed", "the loss is summed over the batch instead of averaged",
          "from the very first step the training loss is batch-size times too big (about 11 instead of 0.69 with "
          "two classes and batches of 16) and the validation loss much smaller; the steps are that much too "
          "big too, so the loss jumps about", _replaced_loss(_SummedLoss)),
    Fault("softmax_before_loss", "the outputs go through a softmax before CrossEntropyLoss, which applies one "
          "itself", "the loss creeps down slowly and never below about 0.31 (two classes; 1.46 with ten), "
          "with gradients half a healthy loop's or less, even once the accuracy is high", _softmax_outputs,
          _classifier),
    Fault("labels_shuffled", "the labels were shuffled separately from the inputs, so they no longer match",
          "the loss stays near where it started (0.69 with two classes) and the accuracy near a coin toss; "
          "the boundary never settles", _replaced_loss(_ShuffledLabels)),
    Fault("lr_magnitude", "every update is ten times what the learning rate (the slider) says: a learning rate "
          "an order of magnitude too large", "from the second step the loss jumps up, to several times where it "
          "started, and keeps jumping, though the slider shows a rate that trains well",
          _on_optimizer(_tenfold_step)),
)}

#: Each fault's name and the symptom it shows on the dashboard.
NAMES: dict[str, str] = {name: fault.symptom for name, fault in FAULTS.items()}


# --- planting, revealing ----------------------------------------------------------------------------------


@dataclass
class _Planted:
    name: str
    undo: Callable[[], None]


_PLANTED: weakref.WeakKeyDictionary[Any, _Planted] = weakref.WeakKeyDictionary()


def plant(loop: Loop, name: str = "random", seed: int | None = None, patient: int = 0) -> None:
    """Plant the fault ``name`` (see ``NAMES``) in ``loop``, hidden until ``reveal``.

    ``"random"`` picks one this loop can show, by ``seed`` (default: the loop's own seed): one per
    learner, so neighbours cannot copy. A seat's patients 0, 1, 2... (``patient``) get different ones.
    Example: ``tl.faults.plant(loop, "random", seed=seat, patient=1)``.
    """
    if planted(loop) is not None:
        raise ValueError("this loop already has a planted fault; tl.faults.remove(loop) takes it out")
    if name == "random":
        choices = [fault.name for fault in FAULTS.values() if fault.applies(loop)]
        order = random.Random(loop.seed if seed is None else seed).sample(choices, len(choices))
        name = order[patient % len(order)]
    elif name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; choose one of: {', '.join(FAULTS)}, or 'random'")
    fault = FAULTS[name]
    if not fault.applies(loop):
        raise ValueError(f"the fault {name!r} shows only in a classifier trained with cross-entropy")
    _PLANTED[loop] = _Planted(name, fault.plant(loop))


def plant_asked(loop: Loop, fault: str | None) -> None:
    """``Loop(..., fault=name)``: plant it once the loop is built (None: nothing to plant)."""
    if fault is not None:
        plant(loop, fault)


def planted(loop: Loop) -> str | None:
    """The name of the fault planted in ``loop``, or None (this is what ``reveal`` reads)."""
    entry = _PLANTED.get(loop)
    return entry.name if entry is not None else None


def remove(loop: Loop) -> None:
    """Take the planted fault out of ``loop`` (the loop trains correctly from its next step)."""
    entry = _PLANTED.pop(loop, None)
    if entry is not None:
        entry.undo()


@dataclass(frozen=True)
class Reveal:
    """What ``reveal`` says: the planted fault, and whether a guess named it."""

    fault: str | None
    guess: str | None = None

    @property
    def right(self) -> bool | None:
        """Whether the guess named the planted fault (None when there was no guess)."""
        return None if self.guess is None else self.guess == self.fault

    def __str__(self) -> str:
        if self.fault is None:
            return "No fault was planted in this loop: it is healthy."
        fault = FAULTS[self.fault]
        verdict = "" if self.guess is None else ("✓ Right! " if self.right else f"✗ Not {self.guess!r}. ")
        return (f"{verdict}The planted fault was {fault.name!r}: {fault.mistake}. What it shows: {fault.symptom}. "
                f"The cure, in your own code: {fault.advice}.")

    def __repr__(self) -> str:
        return f"Reveal({self})"

    def _repr_html_(self) -> str:
        color = {True: "#1a7f37", False: "#cf222e", None: "#0969da"}[self.right]
        return f'<div style="border-left:4px solid {color};padding:6px 10px">{html.escape(str(self))}</div>'


def reveal(loop: Loop, guess: str | None = None) -> Reveal:
    """Say which fault was planted in ``loop`` and, given a ``guess`` (a name from ``NAMES``), whether it was right."""
    if guess is not None and guess not in FAULTS:
        raise ValueError(f"guess one of: {', '.join(FAULTS)}; got {guess!r}")
    return Reveal(planted(loop), guess)
