"""The "mistakes" plot: the samples the model gets most wrong (``tl.top_losses``), drawn as the data is shaped.

- images, (C, H, W) or (H, W) inputs (the digits: 8x8 pictures): a gallery, each picture with its
  true and predicted label and its loss (red when wrong);
- points of a plane (2-D classification): the decision boundary, the worst points ringed in red;
- token ids (int sequences), or anything else: a line of text per sample (its tokens, or its first numbers).

On the validation data (the training data when there is none). A picked cell of the "confusion"
plot narrows it to that cell's samples (true class t predicted as p), worst first. It runs the
model over the data, so the dashboard draws it on its data budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab.top_losses import TopLosses, top_losses
from trainlab.widgets.confusion_plot import ConfusionPlot
from trainlab.widgets.data_view import DecisionBoundaryPlot
from trainlab.widgets.pictures import is_picture, picture
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["MistakesPlot", "input_kind"]

_COLUMNS = 3
_LABEL_ROWS = 3  # picture rows of room above each picture for its label
_GREYS = [[0.0, "#ffffff"], [1.0, "#000000"]]  # ink is high values, as in the digits
_WRONG, _RIGHT = "#d62728", "#2ca02c"
_MAX_NUMBERS = 6  # numbers shown per sample in the text view
# Open red circles round the worst points (a colour per point, so the light renderer draws them over the boundary).
_RINGS = dict(color=[], colorscale=[[0, _WRONG], [1, _WRONG]], cmin=0, cmax=1, size=15, symbol="circle-open",
              line=dict(width=3))


def input_kind(loop: Loop) -> str:
    """How a sample's input is drawn: "image" ((C, H, W) with C 1 or 3, or (H, W)), "plane" (2-D points of a
    classification), "tokens" (int sequences) or "numbers"."""
    shape = loop.input_shape
    if shape is None:
        return "numbers"  # several inputs
    if shape == (2,) and loop.classification:
        return "plane"
    sample = loop.first_train_samples(1)[0][0]
    if is_picture(sample):
        return "image"
    return "tokens" if len(shape) == 1 and not sample.is_floating_point() else "numbers"


class MistakesPlot(Plot):
    """The worst ``k`` samples of the validation data (or of a picked confusion cell), with labels and losses."""

    def __init__(self, loop: Loop, k: int = 9, grid: int = 40) -> None:
        self.k = k
        self.kind = input_kind(loop)
        self.which = "validation" if loop.has_validation else "training"
        self.only: tuple[int, int] | None = None  # (true class, predicted class): a picked confusion cell
        self.shown: TopLosses | None = None  # what was drawn last
        self._loop = loop
        self._key: Any = None
        if self.kind == "plane":
            self._boundary = DecisionBoundaryPlot(loop, grid)
            self.figure = self._boundary.figure
            self.figure.send_layout(title=dict(text="The worst mistakes, ringed", font=dict(size=14)))
            self.figure.add_scatter(x=[], y=[], mode="markers", name="worst", showlegend=False, hoverinfo="text",
                                    marker=_RINGS)
        elif self.kind == "image":
            self.figure = new_figure("The worst mistakes", "", "", width=340, height=440)
            self.figure.add_heatmap(z=[], colorscale=_GREYS, showscale=False, hoverinfo="skip", name="inputs")
            self.figure.send_layout(xaxis=dict(visible=False), yaxis=dict(visible=False),
                                    margin=dict(l=10, r=10, t=56, b=10))
            self._scale: tuple[float, float] | None = None
        else:
            self.figure = new_figure("The worst mistakes", "", "", width=460, height=320)
            self.figure.send_layout(xaxis=dict(visible=False, range=[0, 1]), yaxis=dict(visible=False, range=[0, 1]),
                                    margin=dict(l=10, r=10, t=56, b=10))

    def connect(self, plots: dict[str, Plot]) -> None:
        """Follow a confusion plot's picked cell, when the dashboard shows one."""
        for plot in plots.values():
            if isinstance(plot, ConfusionPlot):
                plot.on_pick(self.show_only)

    def show_only(self, cell: tuple[int, int] | None) -> None:
        """Show only the samples of true class t predicted as p (``cell = (t, p)``), or all (None); drawn at once
        when the loop is free (paused), else at the dashboard's next turn."""
        self.only = cell
        self._key = None
        self.redraw_now(self._loop)

    def reset(self) -> None:
        self._key = None

    def redraw(self, loop: Loop) -> None:
        """Find the worst samples again if the weights changed (a forward pass over the data), and draw them."""
        key = (loop.revision, self.only)
        if key == self._key:
            return
        worst = self._worst(loop)
        self._key = key
        self.shown = worst
        if self.kind == "plane":
            self._boundary.redraw(loop)
        {"plane": self._draw_plane, "image": self._draw_images}.get(self.kind, self._draw_text)(worst)
        self.figure.send_layout(title=dict(text=self._title(worst), font=dict(size=14)))

    def _worst(self, loop: Loop) -> TopLosses:
        """The k worst samples, or the k worst of the picked cell."""
        if self.only is None:
            return top_losses(loop, k=self.k)
        everything = top_losses(loop, k=10**9)
        t, p = self.only
        rows = np.flatnonzero((everything.targets == t) & (everything.predictions == p))[:self.k]
        index = torch.from_numpy(rows)
        inputs = everything.inputs
        picked = (inputs[index] if isinstance(inputs, torch.Tensor) else
                  {key: value[index] for key, value in inputs.items()} if isinstance(inputs, dict) else
                  tuple(value[index] for value in inputs))
        return TopLosses(everything.indices[rows], everything.losses[rows], everything.targets[rows],
                         everything.predictions[rows], picked, everything.which)

    def _title(self, worst: TopLosses) -> str:
        if self.only is None:
            return f"The {len(worst)} worst samples ({self.which} data)"
        t, p = self.only
        what = f"true {t}, predicted {p}" + (" (right)" if t == p else "")
        return f"{what}: {len(worst)} worst of them" if len(worst) else f"{what}: no such samples"

    def _draw_images(self, worst: TopLosses) -> None:
        pictures = [picture(x) for x in worst.inputs] if len(worst) else []
        if self._scale is None and pictures:  # the data's own range: the same shade means the same value
            sample = self._loop.first_train_samples(256)[0].detach().cpu().double()
            self._scale = (float(sample.min()), float(sample.max()))
        z, notes = _gallery(pictures, [_label(worst, i) for i in range(len(worst))])
        low, high = self._scale or (0.0, 1.0)
        self.figure.send_traces([0], z=[z], zmin=[low], zmax=[high if high > low else low + 1])
        rows, columns = z.shape  # fixed ranges: the light renderer needs them (and the pictures keep their place)
        self.figure.send_layout(annotations=notes,
                                xaxis=dict(visible=False, range=[-0.5, columns - 0.5], autorange=False),
                                yaxis=dict(visible=False, range=[-0.5, rows - 0.5], autorange=False))

    def _draw_plane(self, worst: TopLosses) -> None:
        points = worst.inputs.detach().cpu().double().numpy().reshape(-1, 2)
        texts = [_label(worst, i)[0] for i in range(len(worst))]
        self.figure.send_traces([2], x=[points[:, 0]], y=[points[:, 1]], text=[texts],
                                marker=[dict(_RINGS, color=np.ones(len(points)))])

    def _draw_text(self, worst: TopLosses) -> None:
        notes = []
        for i in range(len(worst)):
            text, colour = _label(worst, i)
            line = f"{i + 1}. {_describe(_sample(worst.inputs, i), self.kind)} · {text}"
            notes.append(dict(text=line, x=0, y=1 - i / max(self.k, 1), xref="paper", yref="paper", xanchor="left",
                              yanchor="top", showarrow=False, font=dict(size=11, color=colour)))
        self.figure.send_layout(annotations=notes)


def _gallery(pictures: list[np.ndarray], labels: list[tuple[str, str]]) -> tuple[np.ndarray, list[dict]]:
    """The pictures in rows of ``_COLUMNS`` as one heatmap's z (NaN between them), and a label over each."""
    if not pictures:
        return np.full((1, 1), np.nan), [dict(text="no samples to show", x=0.5, y=0.5, xref="paper", yref="paper",
                                               showarrow=False, font=dict(size=12, color="#555"))]
    height, width = pictures[0].shape
    rows = -(-len(pictures) // _COLUMNS)
    tall = rows * (height + _LABEL_ROWS)
    z = np.full((tall, _COLUMNS * (width + 1) - 1), np.nan)
    notes = []
    for i, (image, (text, colour)) in enumerate(zip(pictures, labels)):
        r, c = divmod(i, _COLUMNS)
        top = r * (height + _LABEL_ROWS) + _LABEL_ROWS  # counted from the top
        left = c * (width + 1)
        z[top:top + height, left:left + width] = image
        # The heatmap's row 0 is at the bottom: the label sits just above the picture's top row.
        notes.append(dict(text=text, x=left + (width - 1) / 2, y=tall - top - 0.5, xref="x", yref="y",
                          xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=10, color=colour)))
    return z[::-1].copy(), notes


def _label(worst: TopLosses, i: int) -> tuple[str, str]:
    """"3 → 5 · 2.31" (true → predicted · loss) and its colour: red when wrong, green when right."""
    target, predicted = worst.targets[i], worst.predictions[i]
    right = np.array_equal(target, predicted)
    return f"{_value(target)} → {_value(predicted)} · {worst.losses[i]:.3g}", _RIGHT if right else _WRONG


def _value(value: Any) -> str:
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{array.item():.3g}" if array.dtype.kind == "f" else str(array.item())
    return "[" + ", ".join(_value(v) for v in array.reshape(-1)[:_MAX_NUMBERS]) + (", …]" if array.size > _MAX_NUMBERS
                                                                                   else "]")


def _sample(inputs: Any, i: int) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs[i]
    if isinstance(inputs, dict):
        return {key: value[i] for key, value in inputs.items()}
    return tuple(value[i] for value in inputs)


def _describe(x: Any, kind: str) -> str:
    """A sample's input as a short text: its tokens, or its first numbers (of each input)."""
    if isinstance(x, dict):
        return "; ".join(f"{key}: {_describe(value, kind)}" for key, value in x.items())
    if isinstance(x, tuple):
        return "; ".join(_describe(value, kind) for value in x)
    values = x.detach().cpu().reshape(-1)
    prefix = "tokens " if kind == "tokens" else ""
    return prefix + _value(values.numpy())
