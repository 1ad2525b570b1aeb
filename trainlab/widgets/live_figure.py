"""A live plot made for streaming: a small anywidget fed binary frames, drawn by plotly.js, or by uPlot while playing.

The interface (what every live plot, here or elsewhere, is written against)::

    figure = new_figure("Loss", "step", "loss")          # in live_plots: an empty LiveFigure, styled
    figure.add_scatter(name="loss", mode="lines")        # traces added once (add_heatmap, add_bar, add_trace,
    figure.layout.yaxis.range = [0, 1]                   #   add_hline, add_annotation alike)
    figure.send_traces([0], x=[steps], y=[losses])       # each redraw: new values for some traces
    figure.send_layout(shapes=[...], annotations=[...])  # and, rarely, layout properties
    with figure.batch(): ...                             # several sends as one frame
    figure.data[0].y, figure.layout.shapes               # the figure as it is now (read data again after sends)

``send_traces(indexes, **values)`` gives each named property one value per trace index, like
plotly's restyle (``x=[x0, x1]`` for traces ``[0, 1]``); values are numpy arrays (any shape: a
heatmap's ``z`` is one 2-D array, or a ``Quantized`` one: a byte a cell) or plain JSON values (names,
booleans).

How a frame reaches the page:

- **plotly.js once per page.** Every figure refers to one ``PlotlyLibrary`` widget per kernel,
  which carries plotly.js (``plotly.offline.get_plotlyjs()``: the copy inside the installed
  plotly package) and the light and dark plotly templates. The figures' script (``live_figure.js``,
  a few KB) runs plotly.js once per page, keyed by its version, and every figure shares it.
- **Only what changed, as binary.** A frame holds the trace properties sent since the last one;
  numpy arrays travel as binary buffers (``Widget.send(content, buffers)``), never as JSON. A
  1-D array that starts like the one sent before it (a growing curve) goes as its new tail only:
  ``{"$buffer": i, "keep": k}`` means "the first k values you have, then these".
- **Paced by the browser.** The page applies frames as they come and draws every figure due in
  one shared animation frame, at most 15 times a second, so frames that arrive meanwhile are
  merged, not queued; it then tells the kernel which frame it drew: for all the figures of a kernel in one
  message, at most every 500 ms (each message from the page costs the kernel, the server and the
  page a busy/idle status pair). Up to ``max_undrawn`` frames may be on their way undrawn; beyond
  that the figure is ``behind``: the dashboard skips it, and what is sent meanwhile waits here,
  merged, and goes out when the page answers. A page that stops answering (closed, or the kernel
  busy with a cell) is not waited for beyond ``_GIVE_UP_WAITING``.
- **Two renderers.** While ``watched`` is set (a dashboard plays), the page draws with a light
  canvas renderer (uPlot, vendored in ``vendor/uplot``, ~50 KB, sent once per page beside
  plotly.js; see ``light_plot.js``), which costs it well under a millisecond a frame where
  plotly.js costs 40-60 ms; paused, plotly.js draws again, with hover, zoom and the toolbar.
- **One message for many figures.** Inside ``frames_together()`` (a dashboard's frame), the
  figures' frames go as one message, through the first figure; the page hands each its part.
- **Late views.** A view says hello when it starts (Voila's page, a reloaded tab, a second
  display) and gets the whole figure as it is now.
- **Out of sight.** A view scrolled out of sight says so (an IntersectionObserver in the page)
  and draws nothing; while every view is out of sight the figure is ``behind``: nothing is sent,
  and the dashboard does not even redraw it. In sight again, it gets what changed meanwhile.
- **Threads.** The runner thread sends frames; the kernel's main thread takes the page's
  answers. One lock keeps them apart.
- **Clicks.** ``on_click(handler)`` makes the figure ``clickable``: its views send where a click lands
  (plotly.js's ``plotly_click``, or the light renderer's canvas), in the axes' values.
- **Watching.** ``last_heard`` is when a view last spoke (a drawn frame, or the page's one
  heartbeat every 2 s for all its figures): the dashboard pauses when nobody has been watching
  for a while (``watchdog``).

Public APIs only: anywidget's ``_esm`` and ``model.widget_manager.get_model``, ipywidgets'
custom messages with buffers, plotly.py's ``go.Figure``, ``plotly_restyle``, ``get_plotlyjs``
and ``plotly.io.templates``, plotly.js's ``Plotly.react``. tests/widgets/test_plotly_api.py
checks them against the pinned versions.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import anywidget
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import traitlets
from ipywidgets import widget_serialization
from plotly.offline import get_plotlyjs, get_plotlyjs_version

__all__ = ["LiveFigure", "PlotlyLibrary", "Quantized", "frames_together", "plotly_library", "LIGHT_TEMPLATE",
           "DARK_TEMPLATE"]

LIGHT_TEMPLATE = "plotly_white"
DARK_TEMPLATE = "plotly_dark"
_GIVE_UP_WAITING = 1.0  # seconds: a closed page, or a kernel busy with a cell, never answers
_HERE = Path(__file__).parent
_SCRIPT = (_HERE / "live_figure.js").read_text()
_UPLOT = _HERE / "vendor" / "uplot"
UPLOT_VERSION = "1.6.32"
# The light renderer, as one ES module sent once per page: uPlot (whose build declares `var uPlot`),
# then light_plot.js, which draws a plotly figure's JSON with it.
_LIGHT_MODULE = ((_UPLOT / "uPlot.iife.min.js").read_text() + "\n" + (_HERE / "light_plot.js").read_text()
                 + "\nexport { uPlot, lightPlot, lightPlottable };\n")
# The light renderer's title where plotly.js puts it: top left, plain, 14 px.
_LIGHT_CSS = ".trainlab-light-plot .u-title{text-align:left;font-weight:normal;font-size:14px;padding-left:8px}\n"
# Every live figure by its id: the page acknowledges many figures' frames in one message.
_FIGURES: "weakref.WeakValueDictionary[str, LiveFigure]" = weakref.WeakValueDictionary()


class Quantized:
    """An array the page gets as one byte per value: 0..254 spread over [low, high], 255 for NaN.

    For pictures (a heatmap's z), where 255 shades are all the eye can tell apart: a quarter of
    float32's bytes. ``figure.send_traces([0], z=[Quantized(z, -1, 1)])``.
    """

    def __init__(self, values: np.ndarray, low: float, high: float) -> None:
        values = np.asarray(values, np.float64)
        scaled = np.clip(np.round((values - low) / (high - low) * 254), 0, 254)
        self.codes = np.where(np.isfinite(values), scaled, 255).astype(np.uint8)
        self.low, self.high = float(low), float(high)

    def values(self) -> np.ndarray:
        """The array as the page sees it (each value rounded to its byte)."""
        values = self.low + self.codes * ((self.high - self.low) / 254)
        return np.where(self.codes == 255, np.nan, values)


class PlotlyLibrary(anywidget.AnyWidget):
    """plotly.js, the plotly templates and the light renderer (uPlot), sent to a page once however many
    figures it shows (never displayed)."""

    _esm = "export default {};\n"  # a model only: the figures read its traits
    version = traitlets.Unicode(help="plotly.js's version: the page runs each version once").tag(sync=True)
    source = traitlets.Bytes(help="plotly.js itself, as shipped in the plotly package").tag(sync=True)
    templates = traitlets.Dict(help="plotly templates for light and dark pages").tag(sync=True)
    light_version = traitlets.Unicode(help="the light renderer's version: the page runs each version once").tag(
        sync=True)
    light_source = traitlets.Bytes(help="the light renderer: uPlot (vendor/uplot) and light_plot.js, as an ES "
                                        "module").tag(sync=True)
    light_css = traitlets.Unicode(help="uPlot's style sheet").tag(sync=True)


_LIBRARY: PlotlyLibrary | None = None
_LIBRARY_LOCK = threading.Lock()


def plotly_library() -> PlotlyLibrary:
    """The kernel's one PlotlyLibrary (made again if it was closed)."""
    global _LIBRARY
    with _LIBRARY_LOCK:
        if _LIBRARY is None or _LIBRARY.comm is None:
            _LIBRARY = PlotlyLibrary(
                version=get_plotlyjs_version(),
                source=get_plotlyjs().encode(),
                templates={"light": pio.templates[LIGHT_TEMPLATE].to_plotly_json(),
                           "dark": pio.templates[DARK_TEMPLATE].to_plotly_json()},
                # Keyed by its content too: a kernel with a newer light_plot.js must not reuse an old page copy.
                light_version=f"{UPLOT_VERSION}-{zlib.crc32(_LIGHT_MODULE.encode()):08x}",
                light_source=_LIGHT_MODULE.encode(),
                light_css=(_UPLOT / "uPlot.min.css").read_text() + _LIGHT_CSS)
        return _LIBRARY


class LiveFigure(anywidget.AnyWidget):
    """A plotly figure drawn in the page by plotly.js and updated by frames; safe to update from a thread."""

    _esm = _SCRIPT
    library = traitlets.Instance(PlotlyLibrary, help="where the page finds plotly.js").tag(
        sync=True, **widget_serialization)
    watched = traitlets.Bool(False, help="a dashboard plays it: views draw with the light renderer and say "
                                         "'alive' every 2 s, even from a hidden tab (its watchdog listens); "
                                         "otherwise they draw with plotly.js and keep quiet, so an idle kernel "
                                         "looks idle to the server's culler").tag(sync=True)
    figure_id = traitlets.Unicode(help="names the figure in the page's messages about many figures").tag(sync=True)
    clickable = traitlets.Bool(False, help="the kernel listens to clicks on the plot (on_click): views tell it "
                                           "where each lands").tag(sync=True)
    #: Frames that may be on their way to a page, undrawn, before the figure waits for it.
    max_undrawn = 10

    def __init__(self, layout: Any = None, *, figure: go.Figure | None = None) -> None:
        """An empty figure with ``layout``, or one drawn once from a whole plotly ``figure`` (subplots too)."""
        super().__init__(library=plotly_library())
        self.figure_id = self.model_id
        _FIGURES[self.figure_id] = self
        self._figure = go.Figure(layout=layout) if figure is None else figure
        self._lock = threading.RLock()
        self._frame = 0  # frames sent
        self._drawn = 0  # the newest frame a view has drawn
        self._sent_at = 0.0
        self._holding = 0  # inside batch(): send at its end
        self._changed_traces: dict[int, dict[str, Any]] = {}  # sent to no page yet
        self._unapplied: dict[int, dict[str, Any]] = {}  # not yet in self._figure (see data)
        self._changed_layout = False
        self._whole = True  # the next frame sends everything (a view said hello, or traces were added)
        self._sent: dict[tuple[int, str], np.ndarray] = {}  # the last array the page got, per trace property
        self._views: dict[str, bool] = {}  # each view that said hello -> whether it is in sight
        self._sight_handlers: list[Callable[[], None]] = []
        self._click_handlers: list[Callable[[dict[str, Any]], None]] = []
        self.last_heard: float | None = None  # time.monotonic() when a view last spoke; None: never
        self.on_msg(self._on_view_message)

    # --- the figure as it is now (plotly's own objects) ---------------------------------------

    @property
    def data(self) -> tuple[Any, ...]:
        """The traces, as plotly trace objects (``figure.data[1].y``)."""
        with self._lock:
            self._apply()
            return self._figure.data

    def _apply(self) -> None:
        """Put the values sent since the last look into the plotly figure.

        Only when someone looks (``data``, a page's hello): plotly's restyle costs about a
        millisecond a call, too much for every frame of the runner thread.
        """
        for index, values in self._unapplied.items():
            self._figure.plotly_restyle({name: [value.values() if isinstance(value, Quantized) else value]
                                         for name, value in values.items()}, [index])
        self._unapplied = {}

    @property
    def layout(self) -> go.Layout:
        """The layout; change it before the first view, or with ``send_layout`` after."""
        return self._figure.layout

    def add_trace(self, trace: Any) -> None:
        """Add any plotly trace object (``go.Scatter(...)``, ``go.Contour(...)``, ...)."""
        self._add(self._figure.add_trace, {"trace": trace})

    def add_scatter(self, **properties: Any) -> None:
        """Add a scatter trace (plotly's ``go.Scatter`` properties)."""
        self._add(self._figure.add_scatter, properties)

    def add_heatmap(self, **properties: Any) -> None:
        """Add a heatmap trace (``go.Heatmap`` properties)."""
        self._add(self._figure.add_heatmap, properties)

    def add_bar(self, **properties: Any) -> None:
        """Add a bar trace (``go.Bar`` properties)."""
        self._add(self._figure.add_bar, properties)

    def add_hline(self, y: float, **properties: Any) -> None:
        """Add a horizontal line across the plot at ``y``."""
        self._add(self._figure.add_hline, dict(properties, y=y))

    def add_vline(self, x: float, **properties: Any) -> None:
        """Add a vertical line across the plot at ``x``."""
        self._add(self._figure.add_vline, dict(properties, x=x))

    def add_annotation(self, **properties: Any) -> None:
        """Add a text annotation."""
        self._add(self._figure.add_annotation, properties)

    def _add(self, add: Any, properties: dict[str, Any]) -> None:
        with self._lock:
            add(**properties)
            self._whole = True
            self._flush()

    # --- sending -------------------------------------------------------------------------------

    @property
    def behind(self) -> bool:
        """Whether no view can take a frame now: all are out of sight, or ``max_undrawn`` frames sent are not
        drawn yet (the last sent less than a second ago)."""
        if self.out_of_sight:
            return True
        return self._frame - self._drawn >= self.max_undrawn and time.monotonic() - self._sent_at < _GIVE_UP_WAITING

    @property
    def out_of_sight(self) -> bool:
        """Whether every view that said hello has said it is out of sight (scrolled away, or gone)."""
        return bool(self._views) and not any(self._views.values())

    def on_sight(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` (on the kernel's main thread) when a view comes into sight, e.g. to draw what it skipped."""
        self._sight_handlers.append(handler)

    def on_click(self, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call ``handler({"x": ..., "y": ..., "trace": i})`` (on the kernel's main thread) when the learner clicks
        the plot: where the click landed in the axes' values (a heatmap cell's x and y), and the trace clicked
        (-1 when drawn by the light renderer, which does not tell)."""
        self._click_handlers.append(handler)
        self.clickable = True

    def send_traces(self, indexes: list[int], **values: list[Any]) -> None:
        """Set properties of several traces: ``send_traces([0, 1], x=[x0, x1], y=[y0, y1])``.

        Values are not validated by plotly: pass numpy arrays for data, as the page gets them.
        """
        if not indexes:
            return
        with self._lock:
            for name, per_trace in values.items():
                for index, value in zip(indexes, per_trace):
                    self._changed_traces.setdefault(index, {})[name] = value
                    self._unapplied.setdefault(index, {})[name] = value
            self._flush()

    def send_layout(self, **values: Any) -> None:
        """Replace layout properties (validated: they change rarely), e.g. ``send_layout(shapes=[...])``."""
        with self._lock:
            with self._figure.batch_update():
                for name, value in values.items():
                    self._figure.layout[name] = value
            self._changed_layout = True
            self._flush()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Send everything sent inside as one frame, at the end."""
        with self._lock:
            self._holding += 1
        try:
            yield
        finally:
            with self._lock:
                self._holding -= 1
                self._flush()

    def _flush(self) -> None:
        """Send what changed as one frame, unless a batch is open, no view has spoken, or the last frame is undrawn."""
        if self._holding or self.last_heard is None or self.behind:
            return
        if not (self._whole or self._changed_traces or self._changed_layout):
            return
        buffers: list[memoryview] = []
        if self._whole:
            self._sent = {}
            changes = {i: trace.to_plotly_json() for i, trace in enumerate(self.data)}
        else:
            changes = self._changed_traces
        traces = [{"index": i, "set": {name: self._encode_property(i, name, value, buffers)
                                       for name, value in changed.items()}}
                  for i, changed in changes.items()]
        layout = _layout_json(self._figure) if self._whole or self._changed_layout else None
        self._frame += 1
        message = {"kind": "frame", "frame": self._frame, "whole": self._whole, "traces": traces, "layout": layout}
        self._whole, self._changed_traces, self._changed_layout = False, {}, False
        self._sent_at = time.monotonic()
        gathered = getattr(_TOGETHER, "frames", None)
        if gathered is None:
            self.send(message, buffers)
        else:  # frames_together(): sent with the others when it ends
            gathered.append((self, message, buffers))

    def _encode_property(self, index: int, name: str, value: Any, buffers: list[memoryview]) -> Any:
        """A trace property for the page: a 1-D array as only what follows the part the page already has."""
        if not (isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f"):
            return _encode(value, buffers)
        last, self._sent[index, name] = self._sent.get((index, name)), value.copy()
        keep = _common_start(last, value) if last is not None and last.dtype == value.dtype else 0
        encoded = _encode(value[keep:], buffers)
        return dict(encoded, keep=keep) if keep else encoded

    # --- what views say (on the kernel's main thread) -----------------------------------------

    def _on_view_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind in ("hello", "seen"):
            with self._lock:
                self.last_heard = time.monotonic()
                hidden = self.out_of_sight
                self._views[str(content.get("view"))] = kind == "hello" or bool(content.get("visible"))
                if kind == "hello":  # a new view: it needs everything
                    self._whole = True
                    self._drawn = self._frame  # and what was sent before it is of no use to it
                self._flush()
            if hidden and not self.out_of_sight:
                for handler in self._sight_handlers:
                    handler()
        elif kind == "drawn":  # {"frames": {figure id: frame}} for the page's figures; {"frame": n} for this one
            frames = content.get("frames") or {self.figure_id: content.get("frame")}
            for figure_id, frame in frames.items():
                _heard_from(figure_id, frame)
        elif kind == "click":  # {"x", "y", "trace"}: the learner clicked there
            point = {name: content.get(name) for name in ("x", "y", "trace")}
            if all(isinstance(point[name], (int, float)) for name in ("x", "y")):
                for handler in self._click_handlers:
                    handler(point)
        elif kind == "alive":  # {"ids": [...]}: the page shows these figures
            for figure_id in content.get("ids") or [self.figure_id]:
                _heard_from(figure_id)

    def _heard(self, drawn: Any = None) -> None:
        """A view spoke for this figure, maybe saying it drew frame ``drawn``; send what waited for it."""
        with self._lock:
            self.last_heard = time.monotonic()
            if isinstance(drawn, int):
                self._drawn = max(self._drawn, drawn)
            self._flush()


def _heard_from(figure_id: Any, drawn: Any = None) -> None:
    figure = _FIGURES.get(figure_id) if isinstance(figure_id, str) else None
    if figure is not None:
        figure._heard(drawn)


_TOGETHER = threading.local()  # .frames: the frames gathered on this thread by frames_together()


@contextlib.contextmanager
def frames_together() -> Iterator[None]:
    """Frames the figures send inside go to the page as one message, at the end.

    For figures shown together (a dashboard's): a message costs the kernel, the server and the
    page the same whatever it holds, and the page draws what one message brings in one frame.
    It travels through the first figure's connection; the page hands each figure its part.
    """
    _TOGETHER.frames = gathered = []
    try:
        yield
    finally:
        _TOGETHER.frames = None
        _send_together(gathered)


def _send_together(gathered: list[tuple[LiveFigure, dict[str, Any], list[memoryview]]]) -> None:
    if len(gathered) == 1:
        figure, message, buffers = gathered[0]
        figure.send(message, buffers)
    elif gathered:
        parts, buffers = [], []
        for figure, message, own in gathered:  # each part's buffers follow the ones before it
            parts.append(dict(message, figure=figure.figure_id, offset=len(buffers)))
            buffers += own
        gathered[0][0].send({"kind": "frames", "frames": parts}, buffers)


def _layout_json(figure: go.Figure) -> dict[str, Any]:
    """The layout as JSON, without the template: the page picks a light or a dark one."""
    layout = figure.layout.to_plotly_json()
    layout.pop("template", None)
    return layout


def _common_start(old: np.ndarray, new: np.ndarray) -> int:
    """How many leading values two float arrays share (NaN equal to NaN)."""
    n = min(len(old), len(new))
    same = (old[:n] == new[:n]) | (np.isnan(old[:n]) & np.isnan(new[:n]))
    return n if same.all() else int(np.argmin(same))


def _encode(value: Any, buffers: list[memoryview]) -> Any:
    """``value`` as JSON, with every numpy array replaced by a reference to a binary buffer appended to ``buffers``."""
    if isinstance(value, Quantized):  # bytes, and how to read them back
        return dict(_encode(value.codes, buffers), scale=[value.low, value.high])
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":  # strings, objects: plain JSON
            return value.tolist()
        array = value if value.dtype in (np.float32, np.float64, np.uint8) else value.astype(np.float64)
        buffers.append(memoryview(np.ascontiguousarray(array)).cast("B"))
        return {"$buffer": len(buffers) - 1, "dtype": str(array.dtype), "shape": list(array.shape)}
    if isinstance(value, dict):
        return {key: _encode(item, buffers) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, buffers) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN or inf; plotly reads null as a gap
    if isinstance(value, np.generic):
        return value.item()
    return value
