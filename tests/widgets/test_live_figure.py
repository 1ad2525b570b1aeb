"""Figures never flood the browser: a figure the browser has not rendered yet is skipped by live frames;
and everything sent is compact (numeric arrays as binary buffers, never NaN in JSON)."""

import json

import numpy as np
from ipywidgets import Widget

from trainlab.widgets.live_figure import LiveFigure


def _browser_renders(figure: LiveFigure) -> None:
    """What plotly's browser side sends after re-rendering a figure: the deltas for our last edit id."""
    figure._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": figure._last_trace_edit_id}


def test_without_a_browser_a_figure_is_never_behind():
    figure = LiveFigure()
    figure.add_scatter(y=np.zeros(3))
    figure.send_traces([0], y=[np.arange(3.0)])
    assert not figure.behind


def test_a_figure_is_behind_until_the_browser_has_rendered_the_last_update():
    figure = LiveFigure()
    figure.add_scatter(y=np.zeros(3))
    figure.send_traces([0], y=[np.arange(3.0)])
    _browser_renders(figure)
    assert not figure.behind
    figure.send_traces([0], y=[np.arange(3.0) * 2])
    assert figure.behind
    _browser_renders(figure)
    assert not figure.behind
    assert list(figure.data[0].y) == [0.0, 2.0, 4.0]


def test_live_frames_skip_a_figure_the_browser_is_still_rendering(loop, dashboards, until):
    dash = dashboards(loop, plots=("grad_norm",), fps=20)  # every frame: the loss and the grad norms
    loss = dash.figures["loss"]
    grad_norm = dash.figures["grad_norm"]
    dash.buttons["Step"].click()
    _browser_renders(loss)  # a browser shows the dashboard...
    dash.buttons["Step"].click()  # ...and has not rendered this update yet
    shown = len(loss.data[1].y)
    grad_points = len(grad_norm.data[0].y)
    dash.play()
    try:
        assert until(lambda: len(grad_norm.data[0].y) > grad_points + 5, timeout=1.0)  # other figures move on
        assert len(loss.data[1].y) == shown  # the loss figure waits for the browser
        _browser_renders(loss)  # the browser catches up
        assert until(lambda: len(loss.data[1].y) > shown, timeout=1.5)
    finally:
        dash.pause()


def test_a_browser_that_stops_answering_is_not_waited_for_forever():
    figure = LiveFigure()
    figure.add_scatter(y=np.zeros(3))
    figure.send_traces([0], y=[np.arange(3.0)])
    _browser_renders(figure)
    figure.send_traces([0], y=[np.arange(3.0) + 1])
    figure._sent_at -= 3  # as if sent 3 s ago, to a view that was closed since
    assert not figure.behind


def test_every_message_is_compact_json_with_arrays_as_binary_buffers(loop, dashboards, monkeypatch):
    sent = []
    original = Widget._send

    def record(widget, msg, buffers=None):
        sent.append((type(widget).__name__, msg, buffers or []))
        return original(widget, msg, buffers)

    monkeypatch.setattr(Widget, "_send", record)
    dash = dashboards(loop)
    for label in ("Step", "Epoch", "Rewind", "Reset", "Epoch"):
        dash.buttons[label].click()
    dash.play()
    dash.wait(steps=100, timeout=10)
    dash.pause()
    assert sent
    binary = 0
    for name, msg, buffers in sent:
        if "_esm" in msg.get("state", {}):
            continue  # plotly's own JavaScript bundle (5 MB), sent once per figure by anywidget
        text = json.dumps(msg, allow_nan=False)  # NaN/inf in JSON would be invalid (and slow)
        assert len(text) < 20_000, (name, text[:300])  # big arrays go as buffers, not JSON lists
        binary += len(buffers)
    assert binary > 0
