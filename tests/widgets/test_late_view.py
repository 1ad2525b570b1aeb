"""A view that connects late sees the figures as they are now.

Voila runs the whole notebook before its page asks the kernel for the widgets' state, and
a reloaded JupyterLab tab asks again: neither saw the addTraces/restyle/relayout messages
sent before. What they draw is each figure's state (``get_state()``), so it must hold the
present traces and layout, and survive ipywidgets' serialisation (numpy arrays as buffers).
"""

import json

import numpy as np
from ipywidgets.widgets.widget import _remove_buffers

from trainlab.widgets.live_figure import LiveFigure


def _as_sent(state: dict) -> dict:
    """The state as ipywidgets sends it to a frontend (JSON plus binary buffers), buffers put back as arrays."""
    stripped, buffer_paths, buffers = _remove_buffers(state)
    decoded = json.loads(json.dumps(stripped, allow_nan=False))
    for path, buffer in zip(buffer_paths, buffers):
        node = decoded
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = np.frombuffer(bytes(buffer), node["dtype"])
    return decoded


def _ys(state: dict) -> list:
    return [list(trace["y"]["buffer"]) if isinstance(trace.get("y"), dict) else trace.get("y")
            for trace in state["_widget_data"]]


def test_the_state_of_a_figure_carries_traces_added_and_restyled_after_it_was_made():
    figure = LiveFigure()
    figure.add_scatter(name="a", y=np.zeros(3))
    figure.add_scatter(name="b", y=np.zeros(2))
    figure.send_traces([0, 1], x=[np.arange(3.0), np.arange(2.0)], y=[np.array([1.0, 2, 3]), np.array([5.0, 6])])
    figure.send_layout(shapes=[dict(type="line", x0=1, x1=1, y0=0, y1=1)])
    state = _as_sent(figure.get_state())
    assert [trace["name"] for trace in state["_widget_data"]] == ["a", "b"]
    assert _ys(state) == [[1.0, 2.0, 3.0], [5.0, 6.0]]
    assert state["_widget_layout"]["shapes"][0]["x0"] == 1


def test_a_late_view_of_a_dashboard_gets_every_plot_with_its_current_data(loop, dashboards):
    dash = dashboards(loop)
    dash.play()
    dash.wait(steps=20, timeout=20)
    dash.pause()
    assert dash.figures
    for name, figure in dash.figures.items():
        state = _as_sent(figure.get_state())
        traces = state["_widget_data"]
        assert len(traces) == len(figure.data) > 0, name
        expected = [None if trace.y is None else np.asarray(trace.y, np.float64) for trace in figure.data]
        for sent, want in zip(traces, expected):
            if want is None:
                continue
            got = sent["y"]["buffer"] if isinstance(sent.get("y"), dict) else np.asarray(sent["y"], np.float64)
            np.testing.assert_array_equal(np.asarray(got, np.float64), want, err_msg=name)
        assert any(want is not None and len(want) for want in expected), f"{name}: no data in any trace"


def test_keeping_the_state_current_sends_nothing_more_per_update():
    """Updates still go out as restyle/relayout messages only: the whole figure is never synced as a side effect."""
    figure = LiveFigure()
    figure.add_scatter(y=np.zeros(3))
    changes = []
    figure.observe(lambda change: changes.append(change["name"]), names=["_widget_data", "_widget_layout"])
    for i in range(3):
        figure.send_traces([0], y=[np.arange(3.0) * i])
        figure.send_layout(shapes=[dict(type="line", x0=i, x1=i, y0=0, y1=1)])
        figure.get_state()
        figure.get_state(["_py2js_restyle", "_last_trace_edit_id"])
    assert changes == []
