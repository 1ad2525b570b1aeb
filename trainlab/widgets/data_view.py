"""The data view: what the model has learned, drawn over its own inputs.

- 2-D classification: the decision boundary (TF Playground's signature view): the
  model's prediction over a grid of the input plane, under the training points.
- 1-D regression: the prediction curve over the training points.

This is the most expensive redraw (a forward pass over the grid), so the dashboard gives
it a slower budget than the other plots, and the grid stays small (60 x 60 by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from trainlab.widgets.live_figure import Quantized
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["DecisionBoundaryPlot", "PredictionCurvePlot", "data_view_name", "axis_over"]

_MAX_DATA_POINTS = 1000  # training points drawn (an even subset beyond this)
_CURVE_POINTS = 200
# Class 0 orange, class 1 blue, as in TF Playground; more classes take plotly's palette.
_PALETTE = ["#f59322", "#0877bd", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


def data_view_name(loop: Loop) -> str | None:
    """The data view that fits the loop's data: "decision_boundary", "prediction", or None (images, many features)."""
    shape = loop.input_shape  # read first: a DataLoader's whole data is collected only for a plane or a line
    if shape not in ((2,), (1,)) or not isinstance(loop.train_data[1], torch.Tensor):  # several targets: no view
        return None
    if shape == (2,) and loop.classification:
        return "decision_boundary"
    if shape == (1,) and not loop.classification and loop.train_data[1][0].numel() == 1:
        return "prediction"
    return None


class DecisionBoundaryPlot(Plot):
    """The model's prediction over the input plane (probability of class 1, or the class) with the data."""

    def __init__(self, loop: Loop, grid: int = 60) -> None:
        inputs, targets = loop.train_data
        points = inputs.detach().cpu().double().numpy()
        labels = targets.detach().cpu().reshape(len(targets), -1)
        # Class indices, or 0/1 targets for bce; several columns (one-hot/soft targets): their argmax.
        labels = (labels.argmax(1) if labels.shape[1] > 1 else labels[:, 0]).double().numpy()
        self.classes = max(2, int(labels.max()) + 1)
        xs, ys = (axis_over(points[:, i], grid) for i in (0, 1))
        gx, gy = np.meshgrid(xs, ys)  # (grid, grid): row = y, column = x, as a heatmap's z
        self._grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1)).to(inputs.dtype)
        self._shape = gx.shape
        self.figure = new_figure("Decision boundary", "x₁", "x₂", width=420, height=380)
        colorscale = _binary_scale() if self.classes == 2 else _class_scale(self.classes)
        zmax = 1.0 if self.classes == 2 else self.classes - 1.0
        # z comes with each redraw, as one buffer of a byte a cell.
        self.figure.add_heatmap(x=xs, y=ys, zmin=0, zmax=zmax, colorscale=colorscale,
                                showscale=False, opacity=0.75, hoverinfo="skip",
                                name="P(class 1)" if self.classes == 2 else "predicted class")
        shown = _subset(len(points))
        self.figure.add_scatter(x=points[shown, 0], y=points[shown, 1], mode="markers", name="training data",
                                marker=dict(color=labels[shown], colorscale=colorscale, cmin=0, cmax=zmax, size=6,
                                            line=dict(color="white", width=1)), showlegend=False)
        self.figure.layout.xaxis.range = [xs[0], xs[-1]]
        self.figure.layout.yaxis.range = [ys[0], ys[-1]]
        self._validation_points(loop, colorscale, zmax)
        self.discretize = False  # Playground's "discretize output": each cell the class it falls in, no shades

    def _validation_points(self, loop: Loop, colorscale: list, zmax: float) -> None:
        """The held-out points, drawn hollow (hidden until ``show_validation(True)``): what the model never trains on."""
        if loop.val_data is None or loop.val_data[0].dim() != 2:
            self.figure.add_scatter(x=[], y=[], mode="markers", name="validation data", visible=False)
            return
        points = loop.val_data[0].detach().cpu().double().numpy()
        labels = loop.val_data[1].detach().cpu().reshape(len(points), -1)
        labels = (labels.argmax(1) if labels.shape[1] > 1 else labels[:, 0]).double().numpy()
        self.figure.add_scatter(x=points[:, 0], y=points[:, 1], mode="markers", name="validation data", visible=False,
                                marker=dict(color=labels, colorscale=colorscale, cmin=0, cmax=zmax, size=7,
                                            symbol="circle-open", line=dict(width=2)), showlegend=False)

    def show_validation(self, shown: bool) -> None:
        """Show (or hide) the validation points, hollow."""
        self.figure.send_traces([2], visible=[bool(shown)])

    def reset(self) -> None:
        """Nothing is cached: every redraw asks the model again."""

    def redraw(self, loop: Loop) -> None:
        """Colour the plane by the model's current predictions (one forward pass over the grid)."""
        outputs = loop.predict(self._grid).detach().cpu().float()
        z = self._colour(loop, outputs).reshape(self._shape)
        # A byte a cell: class indices as they are, probabilities in 255 shades (all a colour scale shows).
        self.figure.send_traces([0], z=[z.astype(np.uint8) if self.classes > 2 else Quantized(z, 0.0, 1.0)])

    def _colour(self, loop: Loop, outputs: torch.Tensor) -> np.ndarray:
        """P(class 1) for two classes (shades show the model's confidence); the class index for more."""
        if outputs.dim() == 1 or outputs.shape[1] == 1:  # one score per sample: bce
            scores = outputs.reshape(-1)
            probabilities = scores if loop.accuracy_kind.endswith("_probs") else torch.sigmoid(scores)
            return ((probabilities > 0.5) if self.discretize else probabilities).numpy().astype(np.float32)
        if outputs.shape[1] == 2 and self.classes == 2:
            probabilities = torch.softmax(outputs, dim=1)[:, 1].numpy().astype(np.float32)
            return (probabilities > 0.5).astype(np.float32) if self.discretize else probabilities
        return outputs.argmax(1).numpy().astype(np.float32)


class PredictionCurvePlot(Plot):
    """The model's prediction for every x across the data's range, drawn over the training points."""

    def __init__(self, loop: Loop) -> None:
        inputs, targets = loop.train_data
        x = inputs.detach().cpu().double().numpy()[:, 0]
        y = targets.detach().cpu().double().numpy().reshape(-1)
        xs = axis_over(x, _CURVE_POINTS)
        self._grid = torch.from_numpy(xs.reshape(-1, 1)).to(inputs.dtype)
        self.figure = new_figure("Predictions", "x", "y", width=420, height=380)
        shown = _subset(len(x))
        self.figure.add_scatter(x=x[shown], y=y[shown], mode="markers", name="training data",
                                marker=dict(color="rgba(8,119,189,0.5)", size=5))
        self.figure.add_scatter(x=xs, y=np.full(len(xs), np.nan), mode="lines", name="model",
                                line=dict(color="#f59322", width=3))

    def reset(self) -> None:
        """Nothing is cached: every redraw asks the model again."""

    def redraw(self, loop: Loop) -> None:
        """Draw the model's current curve (one forward pass over the x grid)."""
        outputs = loop.predict(self._grid).detach().cpu().double().reshape(-1).numpy()
        if len(outputs) == len(self._grid):
            self.figure.send_traces([1], y=[outputs])


def axis_over(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced values over the data's range, with a 10% margin on each side."""
    low, high = float(values.min()), float(values.max())
    margin = 0.1 * (high - low) or 1.0
    return np.linspace(low - margin, high + margin, n)


def _subset(n: int) -> np.ndarray:
    return np.arange(n) if n <= _MAX_DATA_POINTS else np.linspace(0, n - 1, _MAX_DATA_POINTS).astype(np.int64)


def _binary_scale() -> list:
    return [[0.0, _PALETTE[0]], [0.5, "#f7f7f7"], [1.0, _PALETTE[1]]]


def _class_scale(classes: int) -> list:
    """A stepped colour scale: class k gets the k-th palette colour."""
    colors = [_PALETTE[k % len(_PALETTE)] for k in range(classes)]
    scale = []
    for k, color in enumerate(colors):
        scale += [[k / classes, color], [(k + 1) / classes, color]]
    return scale
