"""A live figure streams to the page: nothing before a page opens, then the whole figure, then only
what changed, as binary buffers, and never more than the page has drawn (it waits, merging)."""

import json

import numpy as np
import torch
from ipywidgets import Widget

from trainlab.widgets.live_figure import LiveFigure


def _figure(max_undrawn: int = 1) -> LiveFigure:
    """Two traces; by default the figure waits for the page after every frame (one undrawn at most)."""
    figure = LiveFigure()
    figure.max_undrawn = max_undrawn
    figure.add_scatter(name="a", y=np.zeros(3))
    figure.add_scatter(name="b", y=np.zeros(2))
    return figure


def test_nothing_is_sent_until_a_page_opens_and_then_it_gets_the_whole_figure(page):
    figure = _figure()
    sent = []
    figure.send = lambda content, buffers=None: sent.append(content)
    figure.send_traces([0], y=[np.arange(3.0)])
    assert sent == [] and not figure.behind  # no page: nobody to send to, nobody to wait for
    shown = page(figure)
    assert shown.frames[0][0]["whole"]
    assert [trace["name"] for trace in shown.data] == ["a", "b"]
    np.testing.assert_array_equal(shown.data[0]["y"], [0.0, 1.0, 2.0])


def test_a_frame_holds_only_what_changed_with_arrays_as_binary_buffers(page):
    figure = _figure()
    shown = page(figure)
    shown.draw()
    figure.send_traces([1], y=[np.array([5.0, 6.0])])
    message, buffers = shown.frames[-1]
    assert not message["whole"] and message["layout"] is None
    assert [change["index"] for change in message["traces"]] == [1]
    assert list(message["traces"][0]["set"]) == ["y"]
    assert len(buffers) == 1 and bytes(buffers[0]) == np.array([5.0, 6.0]).tobytes()
    json.dumps(message, allow_nan=False)  # the rest is plain JSON


def test_the_figure_waits_for_the_page_and_then_sends_the_newest_values_merged(page):
    figure = _figure()
    shown = page(figure)
    assert figure.behind  # the whole figure is not drawn yet
    figure.send_traces([0], y=[np.arange(3.0)])
    figure.send_traces([0], y=[np.arange(3.0) * 2])
    figure.send_layout(shapes=[dict(type="line", x0=1, x1=1, y0=0, y1=1)])
    assert len(shown.frames) == 1  # held back, not queued
    shown.draw()
    assert len(shown.frames) == 2  # one frame with the newest of everything
    np.testing.assert_array_equal(shown.data[0]["y"], [0.0, 2.0, 4.0])
    assert shown.layout["shapes"][0]["x0"] == 1
    assert figure.behind
    shown.draw()
    assert not figure.behind


def test_a_batch_is_one_frame(page):
    figure = _figure()
    shown = page(figure)
    shown.draw()
    with figure.batch():
        figure.send_traces([0], y=[np.ones(3)])
        figure.send_traces([1], y=[np.ones(2)])
    assert len(shown.frames) == 2
    assert [change["index"] for change in shown.frames[-1][0]["traces"]] == [0, 1]


def test_a_page_that_stops_answering_is_not_waited_for_forever(page):
    figure = _figure()
    shown = page(figure)
    assert figure.behind
    figure._sent_at -= 3  # as if sent 3 s ago, to a page that was closed since
    assert not figure.behind
    figure.send_traces([0], y=[np.ones(3)])
    assert len(shown.frames) == 2


def test_a_heatmap_grid_goes_as_one_buffer_of_a_byte_a_cell(loop, dashboards, page):
    dash = dashboards(loop, plots=("decision_boundary",))
    shown = page(dash.figures["decision_boundary"])
    shown.draw()
    dash.buttons["Step"].click()
    message, buffers = shown.frames[-1]
    (change,) = [c for c in message["traces"] if c["index"] == 0]
    assert change["set"]["z"]["dtype"] == "uint8" and change["set"]["z"]["shape"] == [60, 60]
    assert sum(len(bytes(b)) for b in buffers) == 60 * 60
    # What the page reads back is the model's probability to within one of 255 shades.
    probabilities = torch.softmax(loop.predict(dash.plots["decision_boundary"]._grid), 1)[:, 1].reshape(60, 60).numpy()
    assert np.allclose(shown.data[0]["z"], probabilities, rtol=0, atol=0.5 / 254 + 1e-6)


def test_a_quantized_array_keeps_nan_and_the_ends_of_its_range():
    from trainlab.widgets.live_figure import Quantized

    sent = Quantized(np.array([[-1.0, 0.0], [np.nan, 1.0]]), -1, 1)
    assert sent.codes.dtype == np.uint8 and sent.codes.tolist() == [[0, 127], [255, 254]]
    np.testing.assert_array_equal(sent.values(), [[-1.0, 0.0], [np.nan, 1.0]])


def test_live_frames_skip_a_figure_the_page_is_still_drawing(loop, dashboards, until, page):
    dash = dashboards(loop, plots=("grad_norm",), fps=20)  # every frame: the loss and the grad norms
    loss, grad_norm = page(dash.figures["loss"]), page(dash.figures["grad_norm"])
    dash.buttons["Step"].click()
    loss.draw()  # the page shows the loss plot, and then draws nothing more
    drawn = loss.frames[-1][0]["frame"]
    shown = len(loss.data[1]["y"])
    dash.play()
    try:
        undrawn = lambda: loss.frames[-1][0]["frame"] - drawn  # noqa: E731
        # The loss figure sends max_undrawn frames the page has not drawn, then waits...
        assert until(lambda: undrawn() == dash.figures["loss"].max_undrawn, timeout=3.0)
        waiting = len(loss.frames)

        def grad_norm_moves() -> bool:
            grad_norm.draw()
            return len(grad_norm.data[0]["y"]) > shown + 50
        assert until(grad_norm_moves, timeout=3.0)  # ...while the other figures move on
        assert len(loss.frames) == waiting
        loss.draw()  # the page catches up
        assert until(lambda: len(loss.frames) > waiting, timeout=1.5)
    finally:
        dash.pause()


def test_every_message_is_compact_json_with_arrays_as_binary_buffers(loop, dashboards, monkeypatch, page):
    sent = []
    original = Widget._send

    def record(widget, msg, buffers=None):
        sent.append((type(widget).__name__, msg, buffers or []))
        return original(widget, msg, buffers)

    monkeypatch.setattr(Widget, "_send", record)
    dash = dashboards(loop)
    pages = [page(figure) for figure in dash.figures.values()]
    for label in ("Step", "Epoch", "Rewind", "Reset", "Epoch"):
        dash.buttons[label].click()
        for shown in pages:
            shown.draw()
    dash.play()
    dash.wait(steps=100, timeout=10)
    dash.pause()
    assert sent
    binary = 0
    for name, msg, buffers in sent:
        text = json.dumps(msg, allow_nan=False)  # NaN/inf in JSON would be invalid (and slow)
        assert len(text) < 20_000, (name, text[:300])  # big arrays (and plotly.js itself) go as buffers
        binary += len(buffers)
    assert binary > 0
    assert sum(name == "PlotlyLibrary" for name, _, _ in sent) <= 1  # plotly.js went once, if at all


def test_a_growing_curve_sends_only_its_new_tail(page):
    figure = _figure()
    shown = page(figure)
    shown.draw()
    figure.send_traces([0], y=[np.arange(100.0)])
    shown.draw()
    figure.send_traces([0], y=[np.append(np.arange(100.0), [7.0, np.nan])])
    message, buffers = shown.frames[-1]
    assert message["traces"][0]["set"]["y"]["keep"] == 100
    assert len(bytes(buffers[0])) == 2 * 8
    np.testing.assert_array_equal(shown.data[0]["y"], np.append(np.arange(100.0), [7.0, np.nan]))
    shown.draw()
    figure.send_traces([0], y=[np.array([1.0, 2.0])])  # a different curve (after a reset): sent whole
    assert "keep" not in shown.frames[-1][0]["traces"][0]["set"]["y"]
    np.testing.assert_array_equal(shown.data[0]["y"], [1.0, 2.0])


def test_a_trace_added_after_the_page_opened_reaches_it(page):
    import plotly.graph_objects as go

    figure = _figure()
    shown = page(figure)
    shown.draw()
    figure.add_trace(go.Contour(name="c", z=np.eye(3)))
    assert [trace.get("name") for trace in shown.data] == ["a", "b", "c"]
    assert shown.data[2]["type"] == "contour"


def test_a_few_frames_may_be_on_their_way_before_the_figure_waits(page):
    figure = _figure(max_undrawn=3)
    shown = page(figure)  # frame 1: the whole figure
    figure.send_traces([0], y=[np.ones(3)])
    assert not figure.behind  # two undrawn
    figure.send_traces([0], y=[np.ones(3) * 2])
    assert figure.behind and len(shown.frames) == 3  # three undrawn: it waits
    figure.send_traces([0], y=[np.ones(3) * 3])
    assert len(shown.frames) == 3  # held back
    shown.say({"kind": "drawn", "frame": 2})  # the page is one frame behind
    assert len(shown.frames) == 4
    np.testing.assert_array_equal(shown.data[0]["y"], [3.0, 3.0, 3.0])


def test_one_message_from_the_page_acknowledges_all_its_figures(page):
    first, second = _figure(), _figure()
    shown_first, shown_second = page(first), page(second)
    assert first.behind and second.behind
    # The page sends one "drawn" for every figure of the kernel, through any one of them.
    shown_first.say({"kind": "drawn", "frames": {first.figure_id: 1, second.figure_id: 1, "gone": 3}})
    assert not first.behind and not second.behind
    second.last_heard = None
    shown_first.say({"kind": "alive", "ids": [second.figure_id]})
    assert second.last_heard is not None  # heard through the first figure's messages


def test_a_figure_out_of_sight_is_sent_nothing_until_it_is_seen_again(page):
    figure = _figure()
    shown = page(figure)
    shown.draw()
    shown.say({"kind": "seen", "view": "page", "visible": False})  # the page's only view scrolled away
    assert figure.out_of_sight and figure.behind
    figure.send_traces([0], y=[np.ones(3)])
    figure.send_traces([0], y=[np.ones(3) * 2])
    assert len(shown.frames) == 1  # nothing sent while nobody can see it
    shown.say({"kind": "seen", "view": "page", "visible": True})
    assert len(shown.frames) == 2 and not figure.out_of_sight  # what changed meanwhile, merged
    np.testing.assert_array_equal(shown.data[0]["y"], [2.0, 2.0, 2.0])


def test_a_figure_in_sight_in_any_view_is_sent_frames(page):
    figure = _figure()
    first = page(figure)
    first.draw()
    first.say({"kind": "hello", "view": "second"})  # another view opens (say, the app in a second tab)
    first.say({"kind": "seen", "view": "page", "visible": False})
    assert not figure.out_of_sight  # the second still shows it
    first.say({"kind": "seen", "view": "second", "visible": False})
    assert figure.out_of_sight


def test_a_dashboard_frame_goes_to_the_page_as_one_message_for_all_its_figures(loop, dashboards, page):
    dash = dashboards(loop)
    pages = {name: page(figure) for name, figure in dash.figures.items()}
    for shown in pages.values():
        shown.draw()
    carried = []
    for figure in dash.figures.values():
        send = figure.send
        figure.send = lambda content, buffers=None, send=send: carried.append(content) or send(content, buffers)
    dash.buttons["Step"].click()
    (message,) = carried  # every figure that changed, in one message
    assert message["kind"] == "frames" and len(message["frames"]) >= 4
    assert {part["figure"] for part in message["frames"]} <= {f.figure_id for f in dash.figures.values()}
    # Each page got its own figure's part: the loss plot shows the step.
    assert len(pages["loss"].data[1]["y"]) == 1 and pages["loss"].frames[-1][0]["kind"] == "frame"
