"""Where this step lands: the open batch's loss along the update the optimizer is about to make.

After ``backward()`` the optimizer knows its next move ``d`` (for plain SGD ``d = -lr * g``;
with momentum or Adam, whatever their state makes of ``g``). This module asks: what would
this batch's loss be at ``w + t * d``, for t from 0 to ``t_max``? t = 0 is the loss just
measured, t = 1 is where the update will land. A learner sees at once why a large lr
overshoots (the curve is already rising at t = 1) and a small one crawls (t = 1 barely
moves down a long slope).

Nothing of the loop is touched: the update is made on a scratch copy of the optimizer and
of the parameters (so its state, the weights and their ``.grad`` stay as they are), and each
loss is computed with ``torch.func.functional_call`` on substituted weights. The model
stays in the mode the batch's forward ran in (train mode: BatchNorm normalises with the
batch's own statistics), with copies of its buffers, so BatchNorm's running statistics are
not moved either. Dropout draws, for every t, the masks the batch's forward drew (its random
state, and torch's put back after): the curve is smooth, and t = 0 is exactly the batch's loss.
The new weights reach the model's call only: a loss function that reads the parameters itself
(an L2 penalty written into it) sees the current ones at every t.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from trainlab.arguments import is_whole_number, real_number
from trainlab.errors import StageError
from trainlab.metrics import clip_grad_norm
from trainlab.optimizers import needs_closure

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["StepLandscape", "step_landscape", "proposed_update"]

_MAX_POINTS = 1000  # each point is a forward pass over the batch


@dataclass(frozen=True)
class StepLandscape:
    """The batch's loss at ``w + t * d`` for each t (``d``: the update about to be made)."""

    t: np.ndarray  # from 0 to t_max; always holds 0 and 1
    losses: np.ndarray  # the batch's loss at each t (inf/NaN where it blows up)
    step: int  # the update this looks at (1 = the first)
    lr: float  # the learning rate of that update

    @property
    def current(self) -> float:
        """The batch's loss now (t = 0)."""
        return float(self.losses[np.flatnonzero(self.t == 0)[0]])

    @property
    def landing(self) -> float:
        """The batch's loss after the update (t = 1)."""
        return float(self.losses[np.flatnonzero(self.t == 1)[0]])


def step_landscape(loop: Loop, t_max: float = 3.0, points: int = 25) -> StepLandscape:
    """The open batch's loss along the coming update, for ``points`` values of t from 0 to ``t_max``.

    Call it after ``backward()`` (before ``update()``). Example::

        loop.forward(); loop.loss(); loop.backward()
        view = tl.step_landscape(loop)
        view.current, view.landing     # the loss now, and after the update
    """
    reach = real_number(t_max)
    if reach is None or not (math.isfinite(reach) and reach >= 1):
        raise ValueError(f"t_max is how far past the update to look, a number of at least 1, like 3; got {t_max!r}")
    if not (is_whole_number(points) and 2 <= points <= _MAX_POINTS):
        raise ValueError(f"points is how many values of t to try, a whole number from 2 to {_MAX_POINTS}, like 25; "
                         f"got {points!r}")
    with loop.hold():
        if loop.next_stage != "update":
            raise StageError(f"the step's landscape needs its gradients: call it after backward(), before update() "
                             f"(the next stage is {loop.next_stage}())")
        t = np.union1d(np.linspace(0.0, reach, int(points)), [0.0, 1.0])
        start = {name: p.detach() for name, p in loop.model.named_parameters()}
        landed = proposed_update(loop)
        inputs, targets = loop.batch
        outside = torch.get_rng_state()
        opened = loop.open_batch
        drawn = opened.forward_rng  # the random state the batch's forward drew from (None: no dropout)
        rng = outside if drawn is None else drawn
        cuda = loop.device if opened.forward_cuda_rng is not None else None  # on a GPU: its generator's part
        try:  # every t draws the forward's dropout masks; torch's random state is left as it was
            losses = [_on_device_stream(cuda, opened.forward_cuda_rng, _batch_loss, loop,
                                        _along(start, landed, value), inputs, targets, rng) for value in t]
        finally:
            torch.set_rng_state(outside)
        return StepLandscape(t, np.asarray(losses, np.float64), loop.state.step + 1, loop.lr)


def proposed_update(loop: Loop) -> dict[str, Tensor]:
    """The parameters as the coming update will leave them (by name), computed on scratch copies.

    The loop's own optimizer step, with its clipping, on copies of the parameters, their
    gradients and the optimizer's state: exact for any optimizer, and nothing real moves.
    """
    if needs_closure(loop.optimizer):
        raise ValueError(f"{type(loop.optimizer).__name__} evaluates the loss again inside its step: where it lands "
                         "is known only by taking the step")
    named = dict(loop.model.named_parameters())
    scratch = {name: _scratch_parameter(p) for name, p in named.items()}
    memo = {id(named[name]): copy_ for name, copy_ in scratch.items()}
    optimizer = copy.deepcopy(loop.optimizer, memo)  # its state, keyed by the scratch parameters
    if loop.clip_grad_value is not None:
        nn.utils.clip_grad_value_(list(scratch.values()), loop.clip_grad_value)
    if loop.clip_grad_norm is not None:
        clip_grad_norm(list(scratch.values()), loop.clip_grad_norm)
    optimizer.step()
    return {name: p.detach() for name, p in scratch.items()}


def _scratch_parameter(p: Tensor) -> Tensor:
    copy_ = p.detach().clone().requires_grad_(p.requires_grad)
    copy_.grad = p.grad.detach().clone() if p.grad is not None else None
    return copy_


def _along(start: dict[str, Tensor], landed: dict[str, Tensor], t: float) -> dict[str, Tensor]:
    """The weights at ``w + t * (landed - w)``; exactly ``w`` at t = 0 and exactly ``landed`` at t = 1."""
    if t == 0:
        return start
    if t == 1:
        return landed
    return {name: w + t * (landed[name] - w) for name, w in start.items()}


def _on_device_stream(device: torch.device | None, state: Tensor | None, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, on a GPU with the device's generator set to ``state`` first (and put back after)."""
    if device is None:
        return fn(*args)
    outside = torch.cuda.get_rng_state(device)
    torch.cuda.set_rng_state(state, device)
    try:
        return fn(*args)
    finally:
        torch.cuda.set_rng_state(outside, device)


def _batch_loss(loop: Loop, weights: dict[str, Tensor], inputs: Any, targets: Tensor, rng: Tensor) -> float:
    """The batch's loss with ``weights`` substituted; buffers are copies, dropout's mask the same every time."""
    buffers = {name: b.clone() for name, b in loop.model.named_buffers()}
    if isinstance(inputs, dict):  # as call_model calls the model: model(x), model(*inputs), model(**inputs)
        args, kwargs = (), inputs
    else:
        args, kwargs = ((inputs,) if isinstance(inputs, Tensor) else tuple(inputs)), {}
    torch.set_rng_state(rng)
    with torch.no_grad(), loop.autocast():  # under autocast too, as the batch ran (precision=)
        outputs = functional_call(loop.model, {**weights, **buffers}, args, kwargs or None)
        return float(loop.loss_fn(outputs, targets))
