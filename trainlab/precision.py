"""Mixed precision: the forward pass and the loss under ``torch.autocast`` (``Loop(..., precision="bf16")``).

bfloat16 keeps float32's range, so no gradient scaling is needed: the hand loop it matches is

    with torch.autocast("cpu", dtype=torch.bfloat16):   # "cuda" on a GPU
        loss = loss_fn(model(x), y)
    loss.backward(); optimizer.step()

The weights, gradients and optimizer state stay float32.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch

__all__ = ["PRECISIONS", "autocast_context"]

#: What ``precision=`` takes: None (float32 throughout, the default) or "bf16".
PRECISIONS = (None, "32", "bf16")


def autocast_context(precision: Any, device: torch.device) -> Callable[[], Any]:
    """A function giving the context the model and loss run in: autocast to bfloat16, or nothing."""
    if precision in (None, "32"):
        return nullcontext
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    if precision in ("16", "fp16", "16-mixed"):
        raise ValueError("precision='fp16' needs gradient scaling (a GradScaler), which trainlab does not do yet; use "
                         "precision='bf16' (bfloat16 has float32's range, so it needs no scaling)")
    raise ValueError(f"precision must be None (float32) or 'bf16' (the forward pass and loss in bfloat16 under "
                     f"torch.autocast); got {precision!r}")
