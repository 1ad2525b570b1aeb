"""Issue 29's plots: the confusion matrix (a cell picks the mistakes shown), the mistakes drawn as the data
is shaped, weights and gradients over time, activations over time, the model summary; all within the UI share."""

import re
import time

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl
from trainlab.confusion import row_shares
from trainlab.distributions import PERCENTILES
from trainlab.widgets.activations_plot import colorful_dimension
from trainlab.widgets.live_figure import LiveFigure

ISSUE_29 = ("confusion", "mistakes", "weight_distributions", "grad_distributions", "activations", "summary")


def digits_loop(**options):
    X, y = tl.datasets.digits(n=400, seed=0)
    settings = dict(lr=0.1, batch_size=32, validation_split=0.25, seed=0)
    settings.update(options)
    return tl.Loop(tl.models.cnn(seed=0), (X, y), "cross_entropy", **settings)


@pytest.fixture
def digits(dashboards):
    loop = digits_loop()
    dash = dashboards(loop, plots=("loss",) + ISSUE_29)
    dash.buttons["Epoch"].click()
    assert dash.error is None
    return dash


def test_they_are_registered_off_by_default_and_all_fit_the_digits_cnn(digits):
    assert set(ISSUE_29) <= set(tl.Dashboard.PLOT_NAMES)
    assert not set(ISSUE_29) & set(tl.Dashboard.DEFAULT_PLOTS)  # asked for by name: the default dashboard is full
    assert list(digits.plots) == ["loss", *ISSUE_29]


def test_the_confusion_plot_shows_the_counts_and_row_shares(digits):
    counts = tl.confusion(digits.loop)
    heatmap = digits.figures["confusion"].data[0]
    np.testing.assert_allclose(np.asarray(heatmap.z, np.float64), row_shares(counts))
    assert [list(row) for row in heatmap.text] == [[str(n) for n in row] for row in counts]
    assert list(heatmap.x) == list(range(10)) and "validation" in digits.figures["confusion"].layout.title.text


def click(figure: LiveFigure, x: float, y: float) -> None:
    """A click in the page, as the page reports it (the plot's own values where it landed)."""
    figure._on_view_message(figure, {"kind": "click", "x": x, "y": y, "trace": 0}, [])


def test_clicking_a_confusion_cell_shows_only_its_samples_in_the_mistakes(digits):
    loop, confusion, mistakes = digits.loop, digits.plots["confusion"], digits.plots["mistakes"]
    assert confusion.figure.clickable
    counts = confusion.counts
    wrong = np.argwhere((counts > 0) & ~np.eye(10, dtype=bool))
    t, p = (int(v) for v in wrong[np.argmax(counts[tuple(wrong.T)])])  # the most common mistake
    click(confusion.figure, p + 0.2, t - 0.3)  # anywhere in the cell
    assert confusion.picked == (t, p) and mistakes.only == (t, p)
    shown = mistakes.shown
    assert len(shown) == min(9, counts[t, p])
    assert set(shown.targets.tolist()) == {t} and set(shown.predictions.tolist()) == {p}
    everything = tl.top_losses(loop, k=1000)
    cell = everything.indices[(everything.targets == t) & (everything.predictions == p)]
    assert shown.indices.tolist() == cell[:9].tolist()  # the cell's worst, worst first
    assert f"true {t}, predicted {p}" in mistakes.figure.layout.title.text
    outline = confusion.figure.data[1]
    assert min(outline.x) == p - 0.5 and max(outline.y) == t + 0.5
    click(confusion.figure, p, t)  # the same cell again: let go
    assert confusion.picked is None and mistakes.only is None
    assert mistakes.shown.indices.tolist() == tl.top_losses(loop, k=9).indices.tolist()


def test_a_click_while_playing_waits_for_the_players_turn(digits):
    confusion, mistakes = digits.plots["confusion"], digits.plots["mistakes"]
    digits.play()
    try:
        click(confusion.figure, 1, 1)  # the kernel's thread: the loop is the player's
        assert mistakes.only == (1, 1)
        deadline = time.monotonic() + 10
        while (mistakes.shown is None or set(mistakes.shown.targets.tolist()) - {1}) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        digits.pause()
    assert set(mistakes.shown.targets.tolist()) <= {1}


def test_the_digits_are_drawn_as_8x8_pictures_with_their_labels(digits):
    mistakes = digits.plots["mistakes"]
    assert mistakes.kind == "image"
    worst = mistakes.shown
    z = np.asarray(digits.figures["mistakes"].data[0].z, np.float64)[::-1]  # row 0 drawn at the bottom
    first = worst.inputs[0, 0].numpy()
    np.testing.assert_allclose(z[3:11, 0:8], first, rtol=1e-6)  # the worst, top left, under its label
    np.testing.assert_allclose(z[3:11, 9:17], worst.inputs[1, 0].numpy(), rtol=1e-6)
    assert np.isnan(z[3:11, 8]).all()  # a gap between pictures
    notes = digits.figures["mistakes"].layout.annotations
    assert notes[0].text == f"{worst.targets[0]} → {worst.predictions[0]} · {worst.losses[0]:.3g}"
    assert len(notes) == 9


def test_the_stage_view_draws_image_inputs_as_pictures(digits):
    digits.buttons["Forward"].click()
    html = digits.stage_view.value
    assert "1×8×8 values" not in html
    assert html.count("<img src='data:image/png;base64,") == 5  # the batch's first samples, as pictures
    assert "image-rendering:pixelated" in html


def test_on_a_plane_the_worst_points_are_ringed_on_the_decision_boundary(dashboards):
    X, y = tl.datasets.spiral(n=300, classes=3, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16], 3, seed=0), (X, y), "cross_entropy", lr=0.3, validation_split=0.3)
    dash = dashboards(loop, plots=("loss", "confusion", "mistakes"))
    dash.buttons["Epoch"].click()
    mistakes = dash.plots["mistakes"]
    assert mistakes.kind == "plane"
    rings = dash.figures["mistakes"].data[2]
    worst = tl.top_losses(loop, k=9)
    np.testing.assert_allclose(rings.x, worst.inputs[:, 0].numpy())
    assert rings.marker.symbol == "circle-open"
    assert dash.figures["mistakes"].data[0].type == "heatmap" and dash.figures["confusion"].data[0].z is not None


def test_tokens_and_numbers_are_written_out(dashboards):
    tokens = torch.randint(0, 20, (64, 6), generator=torch.Generator().manual_seed(0))

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.fc = nn.EmbeddingBag(20, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.embedding(x))

    loop = tl.Loop(Bag(), (tokens, tokens.sum(1) % 2), "cross_entropy", seed=0)
    dash = dashboards(loop, plots=("loss", "mistakes"))
    dash.buttons["Step"].click()
    mistakes = dash.plots["mistakes"]
    assert mistakes.kind == "tokens"
    first = dash.figures["mistakes"].layout.annotations[0].text
    row = mistakes.shown.inputs[0].tolist()
    assert first.startswith("1. tokens [" + ", ".join(str(t) for t in row))


def test_the_distribution_bands_are_the_recorded_percentiles_of_the_chosen_layer(digits):
    weights, grads = digits.plots["weight_distributions"], digits.plots["grad_distributions"]
    assert grads.recorder is weights.recorder and grads.budget is None  # one recorder for both
    recorder = weights.recorder
    assert len(recorder) >= 2 and recorder.steps[0] == 0
    assert weights.menu.value == "conv1.weight"
    table = recorder.weights["conv1.weight"]
    figure = digits.figures["weight_distributions"]
    order = [0, 6, 1, 5, 2, 4, 3]  # min, max, 5%, 95%, 25%, 75%, median
    for trace, column in zip(figure.data, order):
        np.testing.assert_array_equal(trace.y, table[:, column])
        np.testing.assert_array_equal(trace.x, recorder.steps)
    assert len(PERCENTILES) == 7
    grads.menu.value = "output.weight"  # the menu redraws at once
    gradient = recorder.grads["output.weight"]
    finite = np.isfinite(gradient).all(1)
    np.testing.assert_array_equal(digits.figures["grad_distributions"].data[6].y, gradient[finite, 3])
    assert recorder.steps[finite][0] > 0  # no gradient at the start


def test_the_activations_plot_shows_dead_units_and_a_colorful_dimension(digits):
    plot = digits.plots["activations"]
    recorder = plot.recorder
    assert len(recorder) >= 2 and recorder.samples == 64
    assert plot.menu.value == "dead" and recorder.layers[:3] == ["conv1", "relu1", "pool1"]
    figure = digits.figures["activations"]
    relu = recorder.layers.index("relu1")
    np.testing.assert_array_equal(figure.data[relu].y, recorder.dead["relu1"])
    assert figure.data[relu].visible and not figure.data[0].visible  # conv1 has no dead units to count
    plot.menu.value = "relu2"
    heatmap = figure.data[len(recorder.layers)]
    assert heatmap.visible and np.asarray(heatmap.z).shape == (40, len(recorder))
    np.testing.assert_array_equal(figure.data[len(recorder.layers) + 1].y, recorder.mean["relu2"])


def test_the_colorful_dimension_keeps_every_count_on_one_value_axis():
    steps = np.array([1, 2, 5, 6])
    histograms = np.array([[1, 2, 3, 4], [0, 0, 5, 5], [10, 0, 0, 0], [1, 1, 1, 1]], np.float64)
    ranges = np.array([[0, 1], [0, 2], [-1, 0], [0.5, 1.5]], np.float64)
    x, y, z = colorful_dimension(steps, histograms, ranges, columns=4, bins=10)
    np.testing.assert_allclose(x, np.linspace(1, 6, 4))  # evenly spaced steps: 1, 2.67, 4.33, 6
    # each column shows the record at or before its step: steps 1, 2, 2, 6
    assert y[0] > -1 and y[-1] < 2 and len(y) == 10
    np.testing.assert_allclose(np.expm1(z).sum(0), histograms[[0, 1, 1, 3]].sum(1))
    # the first record's four bins over [0, 1] land in bins 3..6 of [-1, 2] (0.3 wide), with their counts
    np.testing.assert_allclose(np.expm1(z)[:, 0], [0, 0, 0, 1, 2, 3, 4, 0, 0, 0], atol=1e-9)


def test_the_summary_plot_is_the_summarys_table(digits):
    table = tl.summary(digits.loop)
    trace = digits.figures["summary"].data[0]
    assert trace.type == "table"
    assert [list(column) for column in trace.cells.values] == [list(c) for c in zip(*table.table())]
    assert "1,898 parameters" in digits.figures["summary"].layout.title.text


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_with_every_plot_shown_slow_redraws_and_records_stay_under_max_ui_fraction(dashboards, monkeypatch):
    """As test_render_budget's: each redraw and each record takes 20 ms of CPU; together they keep to the share."""
    loop = digits_loop()
    dash = dashboards(loop, fps=50, boundary_fps=50, max_ui_fraction=0.1, plots=tl.Dashboard.PLOT_NAMES)
    for plot in dash.plots.values():
        redraw = plot.redraw
        monkeypatch.setattr(plot, "redraw", lambda loop, redraw=redraw: _busy(0.02) or redraw(loop))
        recorder = getattr(plot, "recorder", None)
        if recorder is not None:
            record = recorder.record
            monkeypatch.setattr(recorder, "record", lambda record=record: _busy(0.02) or record())
    dash.play()
    time.sleep(4)
    share = sum(budget.ui_fraction() for budget in dash._budgets())
    dash.pause()
    assert dash.error is None
    assert 0.05 < share <= 0.1 + 0.005, share


def test_the_status_lines_ui_share_stays_under_max_ui_fraction_with_every_plot_shown(dashboards):
    loop = digits_loop()
    dash = dashboards(loop, plots=tl.Dashboard.PLOT_NAMES)
    dash.play()
    time.sleep(4)
    dash.pause()
    assert dash.error is None and loop.state.step > 50
    share = int(re.search(r"UI: (\d+)% of a core", dash.status.value).group(1))
    assert share <= 100 * dash.max_ui_fraction
    assert len(dash.plots["weight_distributions"].recorder) > 3 and len(dash.plots["activations"].recorder) > 1


def test_a_figure_that_listens_is_told_where_a_click_lands(page):
    figure = LiveFigure()
    figure.add_heatmap(z=np.zeros((2, 2)))
    assert not figure.clickable  # views say nothing about clicks nobody listens to
    heard = []
    figure.on_click(heard.append)
    assert figure.clickable
    shown = page(figure)
    shown.say({"kind": "click", "x": 1, "y": 0.4, "trace": 0})
    shown.say({"kind": "click", "x": "left", "y": 0})  # not a place: ignored
    assert heard == [{"x": 1, "y": 0.4, "trace": 0}]


def test_plot_errors_and_plot_distributions_draw_once_for_a_notebook():
    loop = digits_loop()
    dist = tl.Distributions(loop, every=1)
    loop.fit(epochs=1)
    errors = tl.plot_errors(loop)
    confusion, mistakes = errors.children
    np.testing.assert_allclose(np.asarray(confusion.data[0].z, np.float64), row_shares(tl.confusion(loop)))
    click(confusion, 3, 5)  # the kernel is free: the gallery is drawn again at once
    assert mistakes.layout.title.text.startswith("true 5, predicted 3")
    bands = tl.plot_distributions(dist, "output.bias", kind="grads")
    figure, menu = bands.children
    assert menu.value == "output.bias"
    np.testing.assert_array_equal(figure.data[6].y, dist.grads["output.bias"][:, 3])
    with pytest.raises(ValueError, match="no parameter named 'fc9.weight' was recorded"):
        tl.plot_distributions(dist, "fc9.weight")
