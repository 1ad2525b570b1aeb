"""A plotly FigureWidget made for live updates from the runner thread.

Two problems with updating a FigureWidget many times a second from a background thread:

- **Backlog.** Every update is a full plotly.js re-render in the browser. A browser that
  renders slower than we send falls behind without bound: measured on a 2-core machine,
  six figures at 4 fps gave a 1 s event-loop lag and a Pause that showed 9 s late.
  Plotly's browser side answers each trace update (``_js2py_traceDeltas``, carrying the
  edit id) right after re-rendering, so we know when it has caught up: ``behind`` is True
  while our last update is unanswered, and a live frame skips such a figure. (Its answer
  to layout-only edits goes to a trait name Python does not have in plotly 7.1, so only
  trace edits, which every live frame makes, are counted.)
- **Races.** Plotly applies those answers to the figure on the kernel's main thread; a
  lock keeps them from interleaving with our updates on the runner thread.
- **Late views.** Plotly syncs the figure's traces and layout (the ``_widget_data`` and
  ``_widget_layout`` traits) only when they are assigned: at construction and when the
  figure itself is displayed. Every later change (``add_scatter``, restyle, relayout) is a
  one-off message to the views that exist right then. A figure shown inside a dashboard
  (a child of a VBox) is never displayed itself, so its synced state stays the empty figure
  it was made as, and a page that connects later (Voila runs the whole notebook before
  the page asks for the widgets' state; a reloaded JupyterLab tab) draws it empty. So
  ``get_state`` fills those two traits from the figure as it is now: nothing more is sent
  per update, and any state request gets the present traces.
- **Start-up.** A FigureWidget is an anywidget whose module (``_esm``) is plotly's whole 5 MB
  widget bundle, run once per figure, and anywidget gives each figure 2 s to start: one
  that misses it ignores every later message from the kernel, for good. Voila creates all
  the dashboard's figures at once, the bundle takes ~0.8 s a run, and the last figures
  froze (the decision boundary never redrew). So the bundle runs once per page, shared.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from copy import deepcopy
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
from traitlets import observe

__all__ = ["LiveFigure", "PLOTLY_BUNDLE", "PLOTLY_PRIVATE_TRAITS", "PLOTLY_PRIVATE_ATTRIBUTES"]

_GIVE_UP_WAITING = 2.0  # seconds: a view that was closed never answers; do not wait forever
_FIGURE_TRAITS = ("_widget_data", "_widget_layout")  # the figure as a newly connecting view draws it
_BROWSER_ANSWERS = ("_js2py_traceDeltas", "_js2py_layoutDelta", "_js2py_relayout", "_js2py_restyle", "_js2py_update")

# What this module reaches into below plotly's public API. None of it is promised to last, so
# pyproject.toml pins plotly (and anywidget) to versions the tests have passed on, and
# tests/widgets/test_plotly_internals.py names whatever a new version no longer has.
#: plotly's widget JavaScript, which ``_shared_module`` loads once per page.
PLOTLY_BUNDLE = Path(go.__file__).parents[1] / "package_data" / "widgetbundle.js"
#: Synced traits: the figure, its edit counter, its module (anywidget's ``_esm``), the browser's answers.
PLOTLY_PRIVATE_TRAITS = (*_FIGURE_TRAITS, "_last_trace_edit_id", "_esm", *_BROWSER_ANSWERS)
#: Plain attributes: the handlers for those answers, and where the figure keeps its traces and layout.
PLOTLY_PRIVATE_ATTRIBUTES = (*(f"_handler{name}" for name in _BROWSER_ANSWERS), "_data", "_layout_obj._props")


def _shared_module() -> str:
    """An ``_esm`` that runs plotly's widget bundle once per page (keyed by its hash) and shares it."""
    if not PLOTLY_BUNDLE.is_file():
        raise ImportError(f"plotly {plotly.__version__} has no widget bundle at {PLOTLY_BUNDLE}, which trainlab's "
                          "live figures load; install a plotly version that trainlab's pyproject.toml allows")
    source = PLOTLY_BUNDLE.read_text()
    key = "trainlab.plotly-widget." + hashlib.sha1(source.encode()).hexdigest()[:16]
    return (f"const key = {json.dumps(key)};\nconst source = {json.dumps(source)};\n"
            "export default async () => {\n"
            "  globalThis[key] ??= import(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));\n"
            "  return (await globalThis[key]).default();\n"
            "};\n")


class LiveFigure(go.FigureWidget):
    """A FigureWidget that knows whether a browser has rendered its last update, and is safe to update from a thread."""

    _esm = _shared_module()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Private names only: plotly refuses unknown public attributes on a figure.
        self._lock = threading.RLock()  # first: the handlers below may run during __init__
        super().__init__(*args, **kwargs)
        self._answered_edit = 0  # the newest edit id a browser has answered
        self._seen_browser = False  # no browser has answered yet (tests, a notebook not displaying it)
        self._sent_at = 0.0

    @property
    def behind(self) -> bool:
        """Whether a browser shows this figure and has not yet rendered our last update."""
        if not self._seen_browser:
            return False
        pending = self._last_trace_edit_id > self._answered_edit
        return pending and time.monotonic() - self._sent_at < _GIVE_UP_WAITING

    def send_traces(self, indexes: list[int], **values: list[Any]) -> None:
        """Set properties of several traces in one message: ``send_traces([0, 1], x=[x0, x1], y=[y0, y1])``.

        ``plotly_restyle`` skips the per-property validation of ``trace.x = ...`` (4x faster
        here); our values are fresh float64 numpy arrays already, which is what validation
        would produce. Unchanged values are not sent again.
        """
        if not indexes:
            return
        with self._lock:
            self.plotly_restyle(values, indexes)
            self._sent_at = time.monotonic()

    def send_layout(self, **values: Any) -> None:
        """Replace layout properties (validated: they change rarely), e.g. ``send_layout(shapes=[...])``."""
        with self._lock:
            with self.batch_update():
                for name, value in values.items():
                    self.layout[name] = value
            self._sent_at = time.monotonic()

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict:
        """The widget's state for a view, with traces and layout as they are now (not as constructed).

        ipywidgets calls this when a frontend asks for the state (Voila's page, a reloaded
        tab) and, with ``key``, for each property it sends; only the first kind includes
        the figure traits, so per-update messages cost the same as before.
        """
        if key is None:
            wanted = _FIGURE_TRAITS
        else:
            names = [key] if isinstance(key, str) else list(key)
            wanted = tuple(name for name in _FIGURE_TRAITS if name in names)
            key = names
        if not wanted or "_layout_obj" not in self.__dict__:  # (during __init__ plotly's traits are still to come)
            return super().get_state(key, drop_defaults=drop_defaults)
        with self._lock:  # not while the runner thread is halfway through an update
            # Copies: the answer's buffers may be sent after we return, and the figure moves on.
            current = {"_widget_data": deepcopy(self._data), "_widget_layout": deepcopy(self._layout_obj._props)}
            for name in wanted:
                # Stored without a change event, which would send the whole figure to every view:
                # the state we return carries it to the view that asked.
                self._trait_values[name] = current[name]
            return super().get_state(key, drop_defaults=drop_defaults)

    # Plotly's handlers for the browser's answers, run on the kernel's main thread: under our lock.

    @observe("_js2py_traceDeltas")
    def _handler_js2py_traceDeltas(self, change: dict) -> None:
        message = change["new"]
        if message:  # a browser rendered our edit number trace_edit_id
            self._seen_browser = True
            self._answered_edit = max(self._answered_edit, int(message.get("trace_edit_id") or 0))
        with self._lock:
            super()._handler_js2py_traceDeltas(change)

    @observe("_js2py_layoutDelta")
    def _handler_js2py_layoutDelta(self, change: dict) -> None:
        with self._lock:
            super()._handler_js2py_layoutDelta(change)

    @observe("_js2py_relayout")
    def _handler_js2py_relayout(self, change: dict) -> None:
        with self._lock:  # the learner zoomed or panned
            super()._handler_js2py_relayout(change)

    @observe("_js2py_restyle")
    def _handler_js2py_restyle(self, change: dict) -> None:
        with self._lock:  # the learner clicked a legend entry
            super()._handler_js2py_restyle(change)

    @observe("_js2py_update")
    def _handler_js2py_update(self, change: dict) -> None:
        with self._lock:
            super()._handler_js2py_update(change)
