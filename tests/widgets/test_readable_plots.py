"""Plots a learner must read (issue 24): legends clear of the data, the raw loss visible on a dark page,
a log scale for the loss after a blow-up, the lr finder's range on a trained model, no "null" tooltips."""

from __future__ import annotations

import ipywidgets
import numpy as np
import plotly.io as pio

import trainlab as tl
from trainlab.lr_finder import LRFinderResult
from trainlab.widgets.live_figure import DARK_TEMPLATE, LIGHT_TEMPLATE

ALL_PLOTS = ("loss", "accuracy", "grad_norm", "gradients", "update_ratio", "step_landscape")


def contrast(color: str, opacity: float, background: str) -> float:
    """The WCAG contrast ratio of a line of ``color`` at ``opacity`` drawn on ``background``."""
    def rgb(text: str) -> np.ndarray:
        text = {"white": "#ffffff", "black": "#000000"}.get(text, text)
        if text.startswith("#"):
            return np.array([int(text[i:i + 2], 16) for i in (1, 3, 5)], float)
        return np.array([float(v) for v in text[text.index("(") + 1:text.index(")")].split(",")[:3]])

    def luminance(c: np.ndarray) -> float:
        c = c / 255
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])

    back = rgb(background)
    seen = luminance(opacity * rgb(color) + (1 - opacity) * back)
    lighter, darker = max(seen, luminance(back)), min(seen, luminance(back))
    return (lighter + 0.05) / (darker + 0.05)


def plot_background(template: str) -> str:
    return pio.templates[template].layout.plot_bgcolor


def test_every_live_plot_keeps_its_legend_outside_the_plotting_area(loop, dashboards):
    dash = dashboards(loop, plots=ALL_PLOTS)
    for name, figure in dash.figures.items():
        legend = figure.layout.legend
        assert legend.x > 1 and legend.xanchor == "left", f"the {name} plot's legend stands over its data"


def test_loss_per_batch_reads_on_a_dark_page_and_stays_fainter_than_the_smoothed_loss(loop, dashboards):
    figure = dashboards(loop, plots=("loss",)).figures["loss"]
    raw, smooth = figure.data[0], figure.data[1]
    assert raw.name == "loss per batch"
    dark, light = plot_background(DARK_TEMPLATE), plot_background(LIGHT_TEMPLATE)
    assert contrast(raw.line.color, raw.opacity, dark) >= 3, "loss per batch is nearly invisible on a dark page"
    assert contrast(raw.line.color, raw.opacity, light) < contrast(smooth.line.color, 1, light)


def test_the_loss_plot_has_a_log_scale_box_that_switches_its_axis(loop, dashboards):
    dash = dashboards(loop, plots=("loss",))
    plot = dash.plots["loss"]
    figure = dash.figures["loss"]
    assert plot.log_scale.description == "log scale" and plot.log_scale in plot.widget.children
    assert any(widget is plot.widget for widget in _tree(dash))  # shown: the plot with its box
    plot.log_scale.value = True
    assert figure.layout.yaxis.type == "log" and figure.layout.yaxis.title.text == "loss"
    plot.log_scale.value = False
    assert figure.layout.yaxis.type == "linear" and figure.layout.yaxis.nticks is None


def test_the_lr_finder_plot_shows_a_trained_models_curve_not_a_sliver():
    # A trained model: its first batch happens to be the lowest; the curve sits near 0.1, then rises.
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, -0.5, 80)
    losses = np.concatenate([[0.05], 0.1 + 0.01 * rng.standard_normal(69), np.linspace(0.12, 0.4, 10)])
    result = LRFinderResult(lrs, losses, losses + 0.05 * rng.standard_normal(80), 1e-3, "valley", "blew up")
    low, high = tl.plot_lr_finder(result).layout.yaxis.range
    assert low < 0.05 and high > np.quantile(losses, 0.9), (low, high)
    assert high < 0.4  # the blow-up itself still runs off the top


def test_no_setting_shows_a_null_tooltip(loop, dashboards):
    dash = dashboards(loop, plots=ALL_PLOTS)
    described = [w for w in _tree(dash) if getattr(w, "description", "") and "tooltip" in w.keys]
    assert {"learning rate", "batch size", "weight decay"} <= {w.description for w in described}
    assert [w.description for w in described if w.tooltip is None] == []


def _tree(widget: ipywidgets.Widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _tree(child)
