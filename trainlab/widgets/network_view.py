"""The neuron view: every neuron's picture of the input plane, and the weights between them (TF Playground's view).

For an MLP on 2-D inputs, one small heatmap per neuron, column by column from the inputs
(left) to the output (right): the neuron's value at every point of the plane (blue
positive, orange negative, each square scaled to its own largest value, so its shape
shows whatever its size). The weights are lines between the squares: blue positive,
orange negative, thicker for larger. A layer wider than ``max_neurons`` shows its first
neurons, and says so. Choosing a neuron in the menu shows its incoming weights and bias,
and their gradients at the last backward, as numbers.

All the squares are one heatmap (a mosaic, with gaps of NaN) and the lines are eight
traces (two signs x four widths, segments separated by NaN): a redraw sends ten arrays,
whatever the size of the network, through ``send_traces`` only.

Other models get per-layer activation statistics instead (mean, spread, dead units).
"""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import torch

from trainlab.errors import LoopBusyError
from trainlab.inside import activation_stats, neuron_activations, neuron_details, neuron_layers
from trainlab.arguments import whole_number
from trainlab.widgets.budget import RenderBudget
from trainlab.widgets.data_view import axis_over
from trainlab.widgets.live_figure import Quantized
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure, note_above

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["NetworkView"]

_POSITIVE, _NEGATIVE = "#0877bd", "#f59322"  # TF Playground's blue and orange, as on the decision boundary
_SCALE = [[0.0, _NEGATIVE], [0.5, "#f7f7f7"], [1.0, _POSITIVE]]
_WIDTHS = (0.6, 1.5, 3.0, 5.0)  # line widths for |weight| below 0.25, 0.75, 1.5, and above
_WIDTH_EDGES = (0.25, 0.75, 1.5)
_EMPTY = np.empty(0, np.float64)


# How soon the last update of a burst is drawn once the loop is free (a Pause's plots settle at once).
_RETRY = 0.1

class NetworkView(widgets.VBox, Plot):
    """The inside of the network, live: a picture per neuron (MLP on 2-D inputs) or per-layer statistics.

    Example::

        tl.NetworkView(loop)                          # on its own: redraws as the loop trains
        tl.Dashboard(loop, plots=("loss", "network"))  # or inside the dashboard
    """

    def __init__(self, loop: Loop, *, max_neurons: int = 8, grid: int = 20, live: bool = True,
                 fps: float = 2.0, max_ui_fraction: float = 0.05) -> None:
        self._handles: list = []  # first: Widget.__del__ closes even a view that failed while being built
        whole_number(max_neurons, "max_neurons", 1, "8 (each layer's first 8 neurons)")
        whole_number(grid, "grid", 2, "20 (each neuron's square drawn with 20 x 20 points)")
        self.loop = loop
        self.layers = neuron_layers(loop.model) if loop.input_shape == (2,) else None
        self.shown = [min(layer.width, max_neurons) for layer in self.layers] if self.layers else []
        self.grid = grid
        self.neuron_menu = widgets.Dropdown(description="neuron", options=self._neuron_options(),
                                            style={"description_width": "initial"},
                                            layout=widgets.Layout(width="260px"))
        self.details = widgets.HTML()
        if self.layers:
            self._drawing: Any = _NeuronMosaic(loop, self.layers, self.shown, grid)
            self.neuron_menu.observe(lambda change: self._show_details(), names="value")
        else:
            self._drawing = _LayerStats(loop)
        self.figure = self._drawing.figure
        children = [self.figure, widgets.HBox([self.neuron_menu, self.details])] if self.layers else [self.figure]
        # Never squeezed by a row it shares with another figure: the squares would be cut off.
        super().__init__(children=children, layout=widgets.Layout(flex="0 0 auto",
                                                                  min_width=f"{self.figure.layout.width}px"))
        self._key: tuple | None = None
        if live:  # on its own: redraw after updates, on a budget (a dashboard drives it otherwise)
            self._budget = RenderBudget(fps, max_ui_fraction)
            self._kernel_loop = _kernel_event_loop()
            self._catching_up = False
            self._handles = [loop.on("after_update", self._on_update), loop.on("after_restore", self._on_update)]
            self.figure.on_sight(self._came_into_sight)
        try:
            self.redraw(loop)
        except LoopBusyError:  # made while a dashboard plays: the next update draws it
            pass

    @property
    def widget(self) -> widgets.Widget:
        """What a dashboard lays out: the figure with its neuron menu and details."""
        return self

    def reset(self) -> None:
        """Forget what was drawn (the loop moved in time)."""
        self._key = None

    def redraw(self, loop: Loop | None = None) -> None:
        """Draw the network as it is now (skipped if its weights did not change since the last redraw)."""
        loop = loop or self.loop
        # ``loop.revision`` moves with every update and jump in time, and with a weight edited in a
        # cell (``weight.mul_(-1)``), which changes no step and no history.
        key = (loop.revision, loop.next_stage)
        if key == self._key:
            return
        if self._key is None or key[0] != self._key[0]:
            self._drawing.redraw(loop)  # LoopBusyError (another thread trains): the key stays, to draw next time
        self._key = key
        if self.layers:
            self._show_details()  # the gradients change at backward

    def close(self) -> None:
        """Stop listening to the loop, and close the widgets."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for name in ("figure", "neuron_menu", "details"):  # those built (all, unless it failed while being built)
            if hasattr(self, name):
                getattr(self, name).close()
        super().close()

    def _on_update(self, loop: Loop) -> None:
        if self.figure.out_of_sight:  # nobody sees it: measure nothing (it catches up when seen again)
            return
        if self._budget.due():
            with self._budget.spending():
                self.redraw(loop)
        elif self._kernel_loop is not None and not self._catching_up:
            # Skipped: the last update of a burst (Epoch, a fit, Pause) must still be drawn. The
            # kernel's own thread draws it a frame later, once the loop is free; it never runs
            # beside a learner's click, which the kernel handles on that same thread.
            self._catching_up = True
            self._kernel_loop.call_soon_threadsafe(self._kernel_loop.call_later, _RETRY, self._catch_up)

    def _came_into_sight(self) -> None:
        """Scrolled back into sight: draw the updates it skipped, once the loop is free (this is the kernel's thread)."""
        if self._handles and not self._catching_up:
            self._catching_up = True
            if self._kernel_loop is not None:
                self._kernel_loop.call_soon(self._catch_up)
            else:  # plain Python, no kernel: now
                self._catch_up()

    def _catch_up(self) -> None:
        if not self._handles:  # closed meanwhile
            return
        try:
            with self.loop.hold():
                self._catching_up = False
                with self._budget.spending():
                    self.redraw(self.loop)
        except LoopBusyError:  # still training (the dashboard's player): try again shortly
            if self._kernel_loop is not None:
                self._kernel_loop.call_later(_RETRY, self._catch_up)
            else:
                self._catching_up = False  # no kernel to try again later: the next update draws

    def _neuron_options(self) -> list[tuple[str, tuple[int, int]]]:
        if not self.layers:
            return []
        return [(f"{layer.name} · neuron {j + 1}", (c, j)) for c, layer in enumerate(self.layers) if c
                for j in range(layer.width)]

    def _show_details(self) -> None:
        """The chosen neuron's incoming weights, bias and their last gradients, as a small table."""
        c, j = self.neuron_menu.value
        self._drawing.highlight(c, j)
        details = neuron_details(self.layers[c], j)
        sources = _source_names(self.layers[c - 1])
        grads = details["weight_grads"] or [None] * len(details["weights"])
        rows = [(name, w, g) for name, w, g in zip(sources, details["weights"], grads)]
        rows.append(("bias", details["bias"], details["bias_grad"]))
        cells = "".join(f"<tr><td>{html.escape(name)}</td><td>{_number(w)}</td><td>{_number(g)}</td></tr>"
                        for name, w, g in rows[:40] + rows[-1:] * (len(rows) > 40))
        more = f"<div>(first 40 of {len(rows) - 1} incoming weights)</div>" if len(rows) > 41 else ""
        self.details.value = ("<table style='font-family:monospace;font-size:11px'><tr><th>from</th><th>weight</th>"
                              f"<th>gradient (last backward)</th></tr>{cells}</table>{more}")


class _NeuronMosaic:
    """The figure of squares and lines, and how to redraw it."""

    def __init__(self, loop: Loop, layers: list, shown: list[int], grid: int) -> None:
        inputs = loop.train_data[0].detach().cpu().double().numpy()
        xs, ys = axis_over(inputs[:, 0], grid), axis_over(inputs[:, 1], grid)
        gx, gy = np.meshgrid(xs, ys)  # row = x2, column = x1: as a heatmap's z
        self.points = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1)).to(loop.train_data[0].dtype)
        self.layers, self.shown, self.grid = layers, shown, grid
        self.gap_x, self.gap_y = 2 * grid, max(2, grid // 3)
        self.height = max(shown) * (grid + self.gap_y) - self.gap_y
        self.width = len(layers) * (grid + self.gap_x) - self.gap_x
        size = 640 if len(layers) > 4 else 540
        figure = new_figure("Neurons: each square is one neuron's output over the input plane", "", "",
                            width=size, height=max(300, min(620, 30 * max(shown) + 80)))
        figure.add_heatmap(x=np.arange(self.width, dtype=np.float64), y=np.arange(self.height, dtype=np.float64),
                           zmin=-1, zmax=1, colorscale=_SCALE, showscale=False, hoverinfo="skip", name="neurons")
        for sign in ("+", "−"):
            for width in _WIDTHS:
                figure.add_scatter(mode="lines", hoverinfo="skip", showlegend=False, name=f"weights {sign}",
                                   line=dict(color=_POSITIVE if sign == "+" else _NEGATIVE, width=width),
                                   opacity=0.55)
        figure.add_scatter(mode="lines", name="chosen neuron", showlegend=False, hoverinfo="skip",
                           line=dict(color="black", width=2))
        figure.send_layout(xaxis=dict(visible=False, range=[-grid, self.width + grid]),
                             yaxis=dict(visible=False, range=[-grid, self.height + 1.2 * grid], scaleanchor="x"),
                             annotations=self._labels(), margin=dict(l=10, r=10, t=36, b=10))
        self.figure = figure

    def _labels(self) -> list[dict]:
        labels = []
        for c, (layer, n) in enumerate(zip(self.layers, self.shown)):
            text = layer.name if n == layer.width else f"{layer.name}<br>(first {n} of {layer.width})"
            labels.append(dict(x=self._left(c) + self.grid / 2, y=self.height + 0.2 * self.grid, text=text,
                               showarrow=False, yanchor="bottom", font=dict(size=10)))
        return labels

    def _left(self, c: int) -> float:
        return c * (self.grid + self.gap_x)

    def _bottom(self, c: int, j: int) -> float:
        """The y of neuron j's square in column c: neuron 1 on top, each column centred."""
        n = self.shown[c]
        margin = (self.height - (n * (self.grid + self.gap_y) - self.gap_y)) / 2
        return self.height - margin - (j + 1) * self.grid - j * self.gap_y

    def redraw(self, loop: Loop) -> None:
        activations = neuron_activations(loop, self.layers, self.points)
        z = np.full((self.height, self.width), np.nan)
        for c, values in enumerate(activations):
            for j in range(self.shown[c]):
                z[self._rows(c, j)] = _scaled(values[:, j].double().cpu().numpy()).reshape(self.grid, self.grid)
        xs, ys = self._weight_lines()
        with self.figure.batch():  # one frame: the squares (a byte a cell: -1..1 in 255 shades) and the lines
            self.figure.send_traces([0], z=[Quantized(z, -1.0, 1.0)])
            self.figure.send_traces(list(range(1, 9)), x=xs, y=ys)

    def _rows(self, c: int, j: int) -> tuple[slice, slice]:
        bottom, left = int(self._bottom(c, j)), int(self._left(c))
        return slice(bottom, bottom + self.grid), slice(left, left + self.grid)

    def _weight_lines(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Eight traces' points: every weight between shown neurons, by sign and width class."""
        starts, ends, slots = [], [], []
        for c in range(1, len(self.layers)):
            weights = self.layers[c].linear.weight.detach()[: self.shown[c], : self.shown[c - 1]].double().cpu().numpy()
            to, source = np.meshgrid(self._centres(c), self._centres(c - 1), indexing="ij")  # (neurons, inputs)
            starts.append(np.stack([np.full(to.size, self._left(c - 1) + self.grid), source.ravel()], 1))
            ends.append(np.stack([np.full(to.size, self._left(c)), to.ravel()], 1))
            w = weights.ravel()
            slot = np.where(w >= 0, 0, len(_WIDTHS)) + np.searchsorted(_WIDTH_EDGES, np.abs(w))
            slots.append(np.where(np.isfinite(w), slot, -1))  # a non-finite weight has no line
        start, end, slot = np.concatenate(starts), np.concatenate(ends), np.concatenate(slots)
        xs, ys = [], []
        for k in range(2 * len(_WIDTHS)):
            a, b = start[slot == k], end[slot == k]
            gap = np.full(len(a), np.nan)  # NaN between segments: one trace draws them all, unjoined
            xs.append(np.stack([a[:, 0], b[:, 0], gap], 1).ravel())
            ys.append(np.stack([a[:, 1], b[:, 1], gap], 1).ravel())
        return xs, ys

    def _centres(self, c: int) -> np.ndarray:
        return np.array([self._bottom(c, j) + self.grid / 2 for j in range(self.shown[c])], np.float64)

    def highlight(self, c: int, j: int) -> None:
        """A frame around the chosen neuron (if it is shown)."""
        if j >= self.shown[c]:
            x = y = _EMPTY
        else:
            left, bottom, g = self._left(c) - 1, self._bottom(c, j) - 1, self.grid + 1
            x = np.array([left, left + g, left + g, left, left], np.float64)
            y = np.array([bottom, bottom, bottom + g, bottom + g, bottom], np.float64)
        self.figure.send_traces([9], x=[x], y=[y])


class _LayerStats:
    """For models whose neurons are not pictures of a plane: each layer's activation mean, spread and dead units."""

    def __init__(self, loop: Loop) -> None:
        # Nothing measured here: the loop may be training on another thread (a dashboard playing);
        # the first redraw measures, and the view guards it.
        self.figure = new_figure("Activations per layer (256 training samples)", "layer", "value")
        self.figure.add_bar(name="mean", x=[], y=_EMPTY, marker_color=_POSITIVE)
        self.figure.add_bar(name="std", x=[], y=_EMPTY, marker_color="#888888")
        self.figure.add_bar(name="dead share", x=[], y=_EMPTY, marker_color=_NEGATIVE)
        self.figure.send_layout(barmode="group")
        self._note: str | None = None
        self._say(_STATS_NOTE)  # until the first redraw finds out whether there is anything to measure

    def redraw(self, loop: Loop) -> None:
        stats = activation_stats(loop)
        self._say(_STATS_NOTE if stats else _NOTHING_INSIDE)
        names = [s.name for s in stats]
        columns = [[s.mean for s in stats], [s.std for s in stats],
                   [np.nan if s.dead_fraction is None else s.dead_fraction for s in stats]]
        self.figure.send_traces([0, 1, 2], x=[names] * 3, y=[np.asarray(column, np.float64) for column in columns])

    def _say(self, text: str) -> None:
        """The line above the bars (sent only when it changes: a layout update costs the page a relayout)."""
        if text != self._note:
            self._note = text
            self.figure.send_layout(annotations=[note_above(text)])


_STATS_NOTE = "this model's neurons are not pictures of a 2-D plane: per-layer numbers instead"
_NOTHING_INSIDE = ("no layers to look inside: this model has no submodules (nn.Linear, nn.Conv2d...) whose "
                   "outputs could be measured;<br>build it from layers to see their activations here")


def _kernel_event_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the kernel's main thread (None outside a kernel: plain Python, tests).

    Only a kernel's: another library's loop running on this thread (Playwright's, in a test
    session) would never run what is scheduled on it while the caller waits.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    if not hasattr(get_ipython(), "kernel"):
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _scaled(values: np.ndarray) -> np.ndarray:
    """A neuron's values scaled into -1..1 by its largest size: the colour shows its shape, whatever its scale."""
    values = np.where(np.isfinite(values), values, np.nan)
    largest = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
    return values / largest if largest > 0 else values


def _source_names(layer: Any) -> list[str]:
    if layer.name == "inputs":
        return ["x₁", "x₂"]
    return [f"{layer.name} #{i + 1}" for i in range(layer.width)]


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:+.4g}"
