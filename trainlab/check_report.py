"""What ``tl.check_step`` and ``tl.check_loop`` return: a verdict, the first difference, and advice.

In a notebook a report shows itself as a small panel (``_repr_html_``: plain HTML, no widget
library): a green tick, or the four stages with the first one that differs highlighted, the numbers
on both sides and the advice. ``print(report)`` gives the same in one line.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainlab.mistakes import STAGE_ORDER

__all__ = ["CheckReport"]

_GREEN, _RED, _GREY = "#1a7f37", "#cf222e", "#8c959f"


@dataclass(frozen=True, eq=False)  # eq=False: tensors do not compare to one bool
class CheckReport:
    """The verdict on a learner's step (or epoch): ``ok``, or the first ``stage`` and ``where`` that differ.

    ``expected`` is the loop's number(s) there and ``got`` the learner's (a float for the loss, a
    tensor for outputs, a gradient or a weight); ``advice`` says what to do in one sentence, and
    ``mistake`` names the known mistake it recognised (see ``tl.mistakes.MISTAKES``), if any.
    """

    ok: bool
    steps: int  # how many steps were compared (all of them when ok)
    unit: str = "step"  # "step" (check_step) or "batch" (check_loop)
    stage: str | None = None  # "forward", "loss", "backward" or "update"
    where: str | None = None  # "outputs", "loss", or a parameter's name
    expected: Any = None
    got: Any = None
    advice: str = ""
    mistake: str | None = None
    step: int | None = None  # the step (from 1) where the difference showed

    def __bool__(self) -> bool:
        return self.ok

    @property
    def numbers(self) -> str:
        """The two sides of the difference, in words: values, or for tensors their size and largest gap."""
        return _numbers(self.expected, self.got)

    def __str__(self) -> str:
        if self.ok:
            what, plural = ("step", "s") if self.unit == "step" else ("epoch", "es")
            return (f"✓ your {what} is correct: the outputs, loss, gradients and weights match the loop's "
                    f"on {self.steps} {self.unit}{plural if self.steps != 1 else ''}")
        difference = f": {self.where} differs ({self.numbers})" if self.numbers else ""
        return f"✗ {self.unit} {self.step}, {self.stage}{difference}. {self.advice}"

    def __repr__(self) -> str:
        return f"CheckReport({self})"

    def _repr_html_(self) -> str:
        if self.ok:
            return (f'<div class="trainlab-check" style="border-left:4px solid {_GREEN};padding:6px 10px">'
                    f'<span style="color:{_GREEN};font-size:1.3em">✓</span> {html.escape(str(self)[2:])}</div>')
        reached = STAGE_ORDER.index(self.stage) if self.stage in STAGE_ORDER else 0
        cells = []
        for i, stage in enumerate(STAGE_ORDER):
            mark, color, weight = (("✓", _GREEN, "normal") if i < reached else ("✗", _RED, "bold") if i == reached
                                   else ("·", _GREY, "normal"))
            background = "background:#ffebe9;" if i == reached else ""
            cells.append(f'<td style="{background}padding:2px 10px;color:{color};font-weight:{weight}">'
                         f'{mark} {stage}</td>')
        numbers = (f'<div><code>{html.escape(self.where or "")}</code>: {html.escape(self.numbers)}</div>'
                   if self.numbers else f'<div><code>{html.escape(self.where or "")}</code></div>')
        return (f'<div class="trainlab-check" style="border-left:4px solid {_RED};padding:6px 10px">'
                f'<div><b>{self.unit.capitalize()} {self.step}</b>: the first difference is at '
                f'<b style="color:{_RED}">{html.escape(self.stage or "")}</b></div>'
                f'<table style="margin:4px 0"><tr>{"".join(cells)}</tr></table>{numbers}'
                f'<div style="margin-top:4px">{html.escape(self.advice)}</div></div>')


def _numbers(expected: Any, got: Any) -> str:
    if expected is None and got is None:
        return ""
    if isinstance(expected, Tensor) and isinstance(got, Tensor):
        if expected.shape != got.shape:
            return f"the loop's has shape {tuple(expected.shape)}, yours {tuple(got.shape)}"
        gap = (got.double() - expected.double()).abs()
        if not gap.numel():
            return ""
        index = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape)) if gap.dim() else ()
        at = f" at {list(index)}" if index else ""
        return (f"largest difference{at}: the loop's {_short(expected[index])}, yours {_short(got[index])}; "
                f"norms {_short(expected.norm())} and {_short(got.norm())}")
    return f"the loop's: {_short(expected)}; yours: {_short(got)}"


def _short(value: Any) -> str:
    if isinstance(value, Tensor):
        value = value.item() if value.numel() == 1 else f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return "nothing" if value is None else str(value)
