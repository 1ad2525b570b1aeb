"""A model's summary, layer by layer (Keras' ``model.summary()``, Lightning's ``ModelSummary``).

    print(tl.summary(loop))

Each row is a module (the model itself first, then every submodule, nested ones indented): its
type, the shape of what it returned for one batch of training samples, its own parameters
(trainable and frozen; a container's are those not in its layers) and, once a backward pass has
run, the norm of their gradients. The table ends with the total, trainable and frozen counts.
The batch runs in eval mode without gradients, leaving the run as it was.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainlab.batching import call_model, first_tensor
from trainlab.looking import quietly

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["LayerSummary", "Summary", "summary"]

_HEADER = ("layer", "type", "output shape", "trainable", "frozen", "grad norm")


@dataclass(frozen=True)
class LayerSummary:
    """One module of the model."""

    name: str  # its name in the model ("encoder.0"); "" for the model itself
    kind: str  # its class name ("Linear")
    depth: int  # 0 for the model, 1 for its children, ...
    output_shape: Any  # a torch.Size, or a tuple/dict of them as the module returned; None: not called
    trainable: int  # its own parameters (not its submodules') that train
    frozen: int  # its own parameters with requires_grad=False
    grad_norm: float | None  # the norm of its own parameters' gradients (None: no gradients yet)

    @property
    def shape_text(self) -> str:
        """The output shape as shown: ``[32, 16]``, ``([32, 5, 8], ([1, 32, 8], [1, 32, 8]))``; "-" if not called."""
        return "-" if self.output_shape is None else _shape_text(self.output_shape)


@dataclass(frozen=True)
class Summary:
    """The rows, and the parameter counts (each parameter counted once, however many modules share it)."""

    rows: list[LayerSummary]
    batch_size: int  # the samples in the batch the shapes were measured on
    step: int  # the loop's step when summarised

    @property
    def trainable(self) -> int:
        return sum(row.trainable for row in self.rows)

    @property
    def frozen(self) -> int:
        return sum(row.frozen for row in self.rows)

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def table(self) -> list[list[str]]:
        """The rows as text cells, in the order of the columns of ``str()``."""
        return [[("  " * row.depth) + (row.name.rsplit(".", 1)[-1] if row.depth else "(model)"), row.kind,
                 row.shape_text, f"{row.trainable:,}", f"{row.frozen:,}", _norm(row.grad_norm)] for row in self.rows]

    def totals(self) -> list[str]:
        """The three lines that end the table."""
        return [f"Total params: {self.total:,}", f"Trainable params: {self.trainable:,}",
                f"Frozen params: {self.frozen:,}"]

    def caption(self) -> str:
        gradients = ("gradient norms from the last backward pass" if any(r.grad_norm is not None for r in self.rows)
                     else "gradient norms after the first backward pass")
        return f"Output shapes for a batch of {self.batch_size} training samples; {gradients}."

    def __str__(self) -> str:
        cells = [list(_HEADER)] + self.table()
        widths = [max(len(row[i]) for row in cells) for i in range(len(_HEADER))]
        right = {3, 4, 5}  # numbers line up on the right

        def line(row: list[str]) -> str:
            return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

        rule = "-" * len(line(cells[0]))
        body = [line(cells[0]), rule] + [line(row) for row in cells[1:]] + [rule]
        return "\n".join([self.caption()] + body + self.totals())

    __repr__ = __str__

    def to_html(self) -> str:
        """The table as HTML (the dashboard's "summary" panel)."""
        head = "".join(f"<th style='text-align:{'right' if i >= 3 else 'left'};padding:1px 6px'>{h}</th>"
                       for i, h in enumerate(_HEADER))
        body = "".join("<tr>" + "".join(
            f"<td style='text-align:{'right' if i >= 3 else 'left'};padding:1px 6px;white-space:pre'>"
            f"{html.escape(cell)}</td>" for i, cell in enumerate(cells)) + "</tr>" for cells in self.table())
        totals = "<br>".join(html.escape(text) for text in self.totals())
        return (f"<div class='trainlab-summary'><p>{html.escape(self.caption())}</p><table style='font-family:monospace;"
                f"font-size:12px'><tr>{head}</tr>{body}</table><p>{totals}</p></div>")


def summary(loop: Loop) -> Summary:
    """Every module of ``loop.model``: output shape for one batch, own parameters, gradient norm.

    Example: ``print(tl.summary(loop))``; ``tl.summary(loop).total`` is the parameter count.
    """
    model = loop.model
    modules = list(model.named_modules())
    shapes: dict[int, Any] = {}

    def keep(module: nn.Module, args: Any, output: Any) -> None:
        shapes.setdefault(id(module), _shape_of(output))  # a module called twice: its first call

    with quietly(loop):
        inputs, _ = loop.first_train_samples(loop.batch_size)
        handles = [module.register_forward_hook(keep) for _, module in modules]
        try:
            call_model(model, inputs)
        finally:
            for handle in handles:
                handle.remove()
    counted: set[int] = set()
    rows = []
    for name, module in modules:
        own = [p for p in module.parameters(recurse=False) if id(p) not in counted]
        counted.update(id(p) for p in own)
        rows.append(LayerSummary(
            name=name, kind=type(module).__name__, depth=name.count(".") + 1 if name else 0,
            output_shape=shapes.get(id(module)),
            trainable=sum(p.numel() for p in own if p.requires_grad),
            frozen=sum(p.numel() for p in own if not p.requires_grad),
            grad_norm=_grad_norm(own)))
    return Summary(rows, batch_size=len(first_tensor(inputs)), step=loop.state.step)


def _shape_of(output: Any) -> Any:
    """The shape of each tensor in what a module returned, laid out as it was (None for anything else)."""
    if isinstance(output, Tensor):
        return output.shape
    if isinstance(output, dict):
        return {key: _shape_of(value) for key, value in output.items()}
    if isinstance(output, (tuple, list)):
        return tuple(_shape_of(value) for value in output)
    return None


def _shape_text(shape: Any) -> str:
    if isinstance(shape, torch.Size):
        return "[" + ", ".join(str(size) for size in shape) + "]"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{key}: {_shape_text(value)}" for key, value in shape.items()) + "}"
    if isinstance(shape, tuple):
        return "(" + ", ".join(_shape_text(value) for value in shape) + ")"
    return "?"


def _grad_norm(parameters: list[nn.Parameter]) -> float | None:
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return None
    return float(torch.stack([g.double().norm() for g in grads]).norm())


def _norm(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if math.isfinite(value) else str(value)
