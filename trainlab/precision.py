"""Mixed precision: the forward pass and the loss under ``torch.autocast`` (``Loop(..., precision=...)``).

``"bf16"``: bfloat16 keeps float32's range, so no gradient scaling is needed. The hand loop it matches:

    with torch.autocast("cpu", dtype=torch.bfloat16):   # "cuda" on a GPU
        loss = loss_fn(model(x), y)
    loss.backward(); optimizer.step()

``"fp16"``: float16's small range makes small gradients vanish, so the loss is scaled up before
backward and the gradients scaled back down before the step (``torch.amp.GradScaler``); a step whose
gradients overflowed is skipped by the scaler, which then halves its scale. The hand loop it matches:

    scaler = torch.amp.GradScaler("cuda")                # "cpu" works too
    with torch.autocast("cuda", dtype=torch.float16):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)                           # (so clipping and the norms see the true gradients)
    scaler.step(optimizer); scaler.update()

The weights, gradients and optimizer state stay float32 either way.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["PRECISIONS", "LossScaling", "autocast_context", "loss_scaling"]

#: What ``precision=`` takes: None (float32 throughout, the default), "bf16" or "fp16".
PRECISIONS = (None, "32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(precision: Any, device: torch.device) -> Callable[[], Any]:
    """A function giving the context the model and loss run in: autocast to bfloat16 or float16, or nothing."""
    if precision in (None, "32"):
        return nullcontext
    if precision in _DTYPES:
        dtype = _DTYPES[precision]
        return lambda: torch.autocast(device.type, dtype=dtype)
    raise ValueError(f"precision must be None (float32), 'bf16' (bfloat16) or 'fp16' (float16 with gradient "
                     f"scaling): the forward pass and loss run in it under torch.autocast; got {precision!r}")


class LossScaling:
    """fp16's gradient scaling around one ``torch.amp.GradScaler``, in the order a hand loop calls it.

    The scaler is made afresh at every update's first backward and whenever time travel puts a scale
    back, so a step tried again never finds one half done. The gradients held between backward and
    update are always unscaled already; a scaler that did not unscale them itself (the loop was put
    back meanwhile: an update that failed, an excursion) scales them up and unscales them again
    before it steps, which gives the very same gradients (the scale is a power of two) and its own
    record of whether they overflowed."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self.scaler = self._fresh(None)
        self._unscaled_by: torch.amp.GradScaler | None = None  # the scaler that unscaled the gradients held now

    @property
    def scale(self) -> float:
        """The factor the loss is multiplied by before backward now (65536 to start; halved after an overflow)."""
        return self.scaler.get_scale()

    def backward(self, loss: Tensor, first: bool) -> None:
        """``scaler.scale(loss).backward()``; a fresh scaler at an update's ``first`` micro-batch."""
        if first:
            self.load_state_dict(self.scaler.state_dict())
        self.scaler.scale(loss).backward()

    def unscale(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """The gradients divided back by the scale (once all of the update's micro-batches have run)."""
        for optimizer in optimizers:
            self.scaler.unscale_(optimizer)
        self._unscaled_by = self.scaler

    def unscaled(self, norms: list[float]) -> list[float]:
        """Gradient norms measured before ``unscale`` (an update's earlier micro-batches), as the true gradients'."""
        scale = self.scale
        return [norm / scale for norm in norms]

    def step(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Each optimizer steps unless the gradients overflowed; then the scale is updated."""
        if self._unscaled_by is not self.scaler:  # put back since the backward: this scaler has not seen them
            scale = self.scale
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad.mul_(scale)
            self.unscale(optimizers)
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        self._unscaled_by = None

    def state_dict(self) -> dict[str, Any]:
        """The scale and its growth tracker, for snapshots and checkpoints."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Put a scale back (None: the starting one), in a fresh scaler (one with no step half done)."""
        self.scaler = self._fresh(state)

    def _fresh(self, state: dict[str, Any] | None) -> torch.amp.GradScaler:
        scaler = torch.amp.GradScaler(self.device_type)
        if state is not None:
            scaler.load_state_dict(state)
        # GradScaler makes its scale tensor at its first scale(): make it now, so that it can unscale what
        # an earlier scaler scaled (see step).
        scaler.scale(torch.zeros((), device=self.device_type))
        return scaler


def loss_scaling(precision: Any, device: torch.device) -> LossScaling | None:
    """The gradient scaling fp16 needs, or None."""
    return LossScaling(device.type) if precision == "fp16" else None
