"""A page that opens late (Voila's, a reloaded tab) draws the figures as they are now: it says hello
and gets the whole present figure, however many frames went before it."""

import numpy as np

from trainlab.widgets.live_figure import LiveFigure


def test_a_late_page_gets_traces_and_layout_changed_before_it_opened(page):
    figure = LiveFigure()
    figure.add_scatter(name="a", y=np.zeros(3))
    first = page(figure)
    figure.add_scatter(name="b", y=np.zeros(2))
    first.draw()
    figure.send_traces([0, 1], x=[np.arange(3.0), np.arange(2.0)], y=[np.array([1.0, 2, 3]), np.array([5.0, 6])])
    first.draw()
    figure.send_layout(shapes=[dict(type="line", x0=1, x1=1, y0=0, y1=1)])
    late = page(figure)
    assert [trace["name"] for trace in late.data] == ["a", "b"]
    assert [list(trace["y"]) for trace in late.data] == [[1.0, 2.0, 3.0], [5.0, 6.0]]
    assert late.layout["shapes"][0]["x0"] == 1
    assert "template" not in late.layout  # the page picks a light or a dark one


def test_a_late_page_of_a_dashboard_gets_every_plot_with_its_current_data(loop, dashboards, page):
    dash = dashboards(loop)
    dash.play()
    dash.wait(steps=20, timeout=20)
    dash.pause()
    assert dash.figures
    for name, figure in dash.figures.items():
        late = page(figure)
        assert len(late.data) == len(figure.data) > 0, name
        for sent, trace in zip(late.data, figure.data):
            for key in ("x", "y", "z"):
                want = getattr(trace, key, None)
                if want is not None and key in sent and not isinstance(sent[key], list):
                    np.testing.assert_array_equal(np.asarray(sent[key], np.float64),
                                                  np.asarray(want, np.float64), err_msg=f"{name}.{key}")
        assert any(trace.y is not None and len(trace.y) for trace in figure.data), f"{name}: no data in any trace"


def test_pages_are_answered_while_the_runner_thread_sends(loop, dashboards, page):
    """The page's messages (main thread) and the runner's frames interleave safely; the page ends up current."""
    dash = dashboards(loop, fps=50)
    shown = page(dash.figures["loss"])
    dash.play()
    for _ in range(200):
        shown.draw()
    dash.pause()
    shown.draw()
    final = page(dash.figures["loss"])
    np.testing.assert_array_equal(final.data[1]["y"], np.asarray(dash.figures["loss"].data[1].y))
