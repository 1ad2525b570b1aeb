"""The live plots' axes read well at a glance: full numbers on log axes, whole epochs, a toolbar clear of the title."""

from trainlab.widgets.plot_style import new_figure


def test_axes_are_readable_log_axes_in_full_numbers_epochs_whole_the_toolbar_small():
    figure = new_figure("Gradient norm per parameter (smoothed)", "epoch", "‖gradient‖", log_y=True)
    layout = figure.layout
    assert layout.yaxis.type == "log" and layout.yaxis.tickformat == "~g"  # "0.02", not a small "2"
    assert layout.xaxis.tickformat == "d" and 5 in layout.xaxis.autorangeoptions.include
    assert {"lasso2d", "select2d", "zoomIn2d", "zoomOut2d"} <= set(layout.modebar.remove)
    assert new_figure("Loss", "step", "loss").layout.xaxis.tickformat is None  # steps: plotly's own ticks
