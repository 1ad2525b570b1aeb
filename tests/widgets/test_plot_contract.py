"""The plot contract: one registry of plot names, a base class every plot shares, a plot of one's own."""

from __future__ import annotations

import numpy as np
import pytest

import trainlab as tl
from trainlab.widgets import plots as registry
from trainlab.widgets.live_figure import LiveFigure, plotly_library
from trainlab.widgets.plot import Plot
from trainlab.widgets.plot_style import new_figure
from trainlab.widgets.plots import PLOTS, register_plot


class StepCountPlot(Plot):
    """A plot of one's own: the number of completed steps, as one bar."""

    def __init__(self) -> None:
        self.figure = new_figure("Steps", "", "steps")
        self.figure.add_bar(x=["steps"], y=[0])
        self.resets = 0

    def redraw(self, loop: tl.Loop) -> None:
        self.figure.send_traces([0], y=[np.array([loop.state.step], np.float64)])

    def reset(self) -> None:
        self.resets += 1


@pytest.fixture
def own_plot():
    """``step_count`` registered for one test, then taken out of the registry again."""
    register_plot("step_count", lambda loop, options: StepCountPlot(), about="completed steps")
    yield
    del PLOTS["step_count"]


def test_the_registry_names_every_plot_once_and_says_which_are_shown_by_default():
    assert list(PLOTS)[0] == "loss" and tl.Dashboard.PLOT_NAMES == tuple(PLOTS)
    assert tl.Dashboard.DEFAULT_PLOTS == tuple(name for name, kind in PLOTS.items() if kind.default)
    assert {"network", "step_landscape"} <= set(PLOTS) - set(tl.Dashboard.DEFAULT_PLOTS)  # they run the model
    assert all(kind.about and kind.name == name for name, kind in PLOTS.items())


def test_every_built_in_plot_is_a_plot_and_the_dashboard_keys_them_by_their_registered_name(dashboards, make_loop):
    dash = dashboards(make_loop(), plots=tl.Dashboard.PLOT_NAMES)
    assert list(dash.plots) == [name for name in PLOTS if name != "prediction"]  # a plane: no prediction curve
    assert all(isinstance(plot, Plot) for plot in dash.plots.values())
    assert dash.figures == {name: plot.figure for name, plot in dash.plots.items()}


def test_a_plot_of_ones_own_is_shown_redrawn_and_reset_by_name(dashboards, make_loop, own_plot):
    loop = make_loop()
    dash = dashboards(loop, plots=("loss", "step_count"))
    plot = dash.plots["step_count"]
    dash.buttons["Step"].click()
    dash.buttons["Step"].click()
    assert list(dash.figures["step_count"].data[0].y) == [2]
    dash.buttons["Rewind"].click()
    assert plot.resets == 1 and list(dash.figures["step_count"].data[0].y) == [1]


def test_a_plot_that_does_not_fit_the_loop_is_left_out(dashboards):
    X, y = tl.datasets.linear(n=64, seed=0)  # ten features: neither a plane nor a line
    loop = tl.Loop(tl.models.mlp(10, [8], 1, seed=0), (X, y), "mse", seed=0)
    dash = dashboards(loop, plots=("loss", "accuracy", "decision_boundary", "prediction"))
    assert list(dash.plots) == ["loss"]


@pytest.mark.parametrize("plots, message", [
    (("loss", "confusions"), r"unknown plots \['confusions'\]; choose from"),
    ("loss", "plots is a list of plot names"),
    (("loss", 3), "plots is a list of plot names"),
])
def test_a_dashboard_refuses_plots_it_does_not_know(make_loop, plots, message):
    with pytest.raises(ValueError, match=message):
        tl.Dashboard(make_loop(), plots=plots)


@pytest.mark.parametrize("name, options, message", [
    ("loss", {}, "registered already"),
    ("my plot", {}, "a word like"),
    ("mine", {"budget": "fast"}, "budget is 'turns'"),
    ("mine", {"make": 3}, "make is a function"),
])
def test_register_plot_refuses_what_it_cannot_use_and_registers_nothing(name, options, message):
    before = dict(PLOTS)
    arguments = {"make": lambda loop, o: None, "about": "mine", **options}
    with pytest.raises(ValueError, match=message):
        register_plot(name, **arguments)
    assert PLOTS == before


def test_a_plot_without_redraw_says_what_it_lacks():
    class Unfinished(Plot):
        """A plot whose author forgot redraw()."""

    with pytest.raises(TypeError, match="Unfinished is a Plot and must define redraw"):
        Unfinished().redraw(None)


def test_find_lr_draws_with_the_pages_one_plotly_js_not_a_second_copy(dashboards):
    X, y = tl.datasets.spiral(n=300, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16], 3, seed=0), (X, y), "cross_entropy", lr=0.3, seed=0)
    dash = dashboards(loop)
    dash.lr_finder.find_button.click()
    figure = dash.lr_finder.plot_box.children[0]
    assert isinstance(figure, LiveFigure) and figure.library is plotly_library()
    assert figure.layout.xaxis.type == "log" and len(figure.data[0].x) == len(dash.lr_finder.result.lrs)


def test_the_static_plots_are_live_figures_sharing_the_one_plotly_js(make_loop):
    loop = make_loop()
    loop.fit(2)
    for figure in (tl.plot_history(loop, metrics=("loss", "accuracy")), tl.compare_runs({"a": loop}, "loss")):
        assert isinstance(figure, LiveFigure) and figure.library is plotly_library()
    assert registry.PlotOptions().max_points == 500
