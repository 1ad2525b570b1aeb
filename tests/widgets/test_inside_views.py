"""The neuron view, the step's landscape and the Find lr button, headless (real loops, real widgets)."""

import numpy as np
import pytest
import torch

import trainlab as tl
from trainlab.widgets import landscape_plot
from trainlab.widgets.network_view import _scaled


def _spiral_loop(hidden=(32, 32), **options):
    X, y = tl.datasets.spiral(n=200, noise=0.1, seed=0)
    settings = {"lr": 0.3, "batch_size": 16, "seed": 0, **options}
    return tl.Loop(tl.models.mlp(2, list(hidden), 2, activation="tanh", seed=0), (X, y), "cross_entropy", **settings)


def _segments(figure):
    """How many weight lines the figure draws (each is two points and a NaN gap)."""
    return sum(int(np.isfinite(np.asarray(trace.x, float)).sum()) // 2 for trace in figure.data[1:9])


def test_each_square_is_its_neurons_activation_over_the_plane(dashboards):
    loop = _spiral_loop()
    loop.fit(epochs=1)
    view = tl.NetworkView(loop, live=False)
    z = np.array(view.figure.data[0].z, dtype=float)
    drawing = view._drawing
    activations = tl.neuron_activations(loop, view.layers, drawing.points)
    for c, j in [(0, 1), (1, 0), (1, 7), (2, 3), (3, 1)]:
        expected = _scaled(activations[c][:, j].double().numpy()).reshape(view.grid, view.grid)
        # The page gets each value as one of 255 shades over -1..1: equal to within a shade.
        assert np.allclose(z[drawing._rows(c, j)], expected, rtol=0, atol=1 / 254), (c, j)
    assert np.isnan(z).any()  # gaps between squares stay empty
    view.close()


def test_big_layers_show_their_first_neurons_and_say_so():
    view = tl.NetworkView(_spiral_loop(), live=False, max_neurons=8)
    assert view.shown == [2, 8, 8, 2]
    labels = [a.text for a in view.figure.layout.annotations]
    assert "hidden1<br>(first 8 of 32)" in labels and "output" in labels
    assert _segments(view.figure) == 2 * 8 + 8 * 8 + 8 * 2  # every weight between shown neurons
    view.close()


def test_choosing_a_neuron_shows_its_weights_bias_and_gradients():
    loop = _spiral_loop(hidden=(4,))
    view = tl.NetworkView(loop)
    view.neuron_menu.value = (1, 2)  # hidden1, neuron 3
    assert "–" in view.details.value  # no backward yet: no gradients
    loop.step()  # live: the view follows the loop on its own
    weight, grad = loop.model.hidden1.weight[2, 1].item(), loop.model.hidden1.weight.grad[2, 1].item()
    assert f"{weight:+.4g}" in view.details.value and f"{grad:+.4g}" in view.details.value
    assert f"{loop.model.hidden1.bias.grad[2].item():+.4g}" in view.details.value
    frame = view.figure.data[9]
    assert len(frame.x) == 5  # the chosen neuron is framed
    view.close()
    loop.step()  # a closed view no longer listens


def test_a_cnn_gets_layer_statistics_not_an_empty_figure(dashboards):
    X, y = tl.datasets.digits(n=100, seed=0)
    loop = tl.Loop(tl.models.cnn(seed=0), (X, y), "cross_entropy", lr=0.1)
    dash = dashboards(loop, plots=("loss", "network"))
    figure = dash.figures["network"]
    assert [trace.name for trace in figure.data] == ["mean", "std", "dead share"]
    assert "conv1" in figure.data[0].x and np.abs(np.asarray(figure.data[1].y)).sum() > 0
    dash.buttons["Step"].click()
    assert dash.error is None


def test_the_neuron_view_redraws_while_playing(dashboards, within):
    loop = _spiral_loop()
    dash = dashboards(loop, plots=("loss", "network"), fps=50)
    before = np.array(dash.figures["network"].data[0].z, dtype=float)
    dash.play()
    dash.wait(steps=200, timeout=20)
    within(5, dash.pause)
    after = np.array(dash.figures["network"].data[0].z, dtype=float)
    assert loop.state.step >= 200 and not np.allclose(before, after, equal_nan=True)


def test_the_landscape_appears_after_backward_and_marks_the_step(dashboards):
    loop = _spiral_loop()
    dash = dashboards(loop, plots=("loss", "step_landscape"))
    figure = dash.figures["step_landscape"]
    assert "Press Backward" in figure.layout.annotations[0].text  # not an empty figure
    for label in ("Forward", "Loss", "Backward"):
        dash.buttons[label].click()
    t, loss = np.asarray(figure.data[0].x), np.asarray(figure.data[0].y)
    assert len(t) == 25 and t[0] == 0 and 1.0 in t
    assert figure.data[1].y[0] == loss[0] == loop.last_loss.item()
    assert figure.data[2].x[0] == 1.0 and figure.data[2].y[0] == loss[list(t).index(1.0)]
    assert "update 1, lr 0.3" in figure.layout.annotations[0].text


def test_the_landscape_is_measured_while_playing_and_never_when_not_shown(dashboards, monkeypatch):
    calls = []
    real = landscape_plot.step_landscape
    monkeypatch.setattr(landscape_plot, "step_landscape", lambda loop: calls.append(1) or real(loop))
    loop = _spiral_loop()
    dash = dashboards(loop)  # the default plots: no landscape
    assert "step_landscape" not in dash.figures and "network" not in dash.figures
    dash.play()
    dash.wait(steps=100, timeout=20)
    dash.pause()
    assert calls == []
    dash.close()
    shown = dashboards(loop, plots=("loss", "step_landscape"), fps=20)
    shown.play()
    shown.wait(timeout=2)  # long enough for the first measurement (due at once) to be a small share
    shown.pause()
    assert calls and shown.figures["step_landscape"].data[0].y is not None
    assert shown.plots["step_landscape"].latest.step > 100
    assert shown.plots["step_landscape"].budget.max_ui_fraction == 0.05 / 5  # a part of the dashboard's max_ui_fraction
    assert sum(budget.ui_fraction() for budget in shown._budgets()) <= 0.05 + 0.02  # the first frames are due at once


def test_find_lr_runs_shows_the_plot_and_applies_the_suggestion(dashboards):
    loop = _spiral_loop()
    dash = dashboards(loop)
    dash.buttons["Step"].click()
    weights = loop.model.hidden1.weight.detach().clone()
    dash.lr_finder.find_button.click()
    result = dash.lr_finder.result
    assert dash.error is None and result is not None and result.suggestion is not None
    assert torch.equal(loop.model.hidden1.weight, weights) and loop.state.step == 1 and loop.lr == 0.3
    figure = dash.lr_finder.plot_box.children[0]
    assert figure.layout.xaxis.type == "log"
    assert any("suggestion" in (trace.name or "") for trace in figure.data)
    assert f"{result.suggestion:.3g}" in dash.lr_finder.note.value
    dash.lr_finder.apply_button.click()
    assert loop.lr == result.suggestion
    assert loop.history.changes[-1] == (1, "lr", result.suggestion)
    assert dash.lr_slider.value == pytest.approx(result.suggestion)


def test_find_lr_is_refused_while_playing_and_mid_batch(dashboards, within):
    loop = _spiral_loop()
    dash = dashboards(loop)
    dash.play()
    dash.lr_finder.find_button.click()
    assert "press Pause first" in dash.alert.value and dash.lr_finder.result is None
    within(5, dash.pause)
    dash.buttons["Forward"].click()
    dash.lr_finder.find_button.click()
    assert dash.lr_finder.result is None and "StageError" in dash.error and "loop.step()" in dash.error
    assert dash.lr_finder.apply_button.disabled


def test_the_static_lr_finder_plot():
    result = _spiral_loop().find_lr(steps=40)
    figure = tl.plot_lr_finder(result)
    assert figure.layout.xaxis.type == "log"
    assert [trace.name for trace in figure.data][:2] == ["loss per batch", "smoothed loss"]
    assert tl.plot_lr_finder(result).data[1].y.tolist() == result.losses.tolist()


def _landscape_note(figure):
    return figure.layout.annotations[0].text


def test_a_live_change_before_the_update_measures_the_landscape_again(dashboards):
    loop = _spiral_loop()
    dash = dashboards(loop, plots=("loss", "step_landscape"))
    figure = dash.figures["step_landscape"]
    for label in ("Forward", "Loss", "Backward"):
        dash.buttons[label].click()
    assert "lr 0.3" in _landscape_note(figure)
    dash.lr_slider.value = 5.0  # between Backward and Update: this update now lands elsewhere
    fresh = tl.step_landscape(loop)
    assert fresh.lr == 5.0
    assert "lr 5:" in _landscape_note(figure) and f"{fresh.landing:.4g}" in _landscape_note(figure)
    assert figure.data[2].y[0] == fresh.landing
    loop.clip_grad_norm = 0.01  # from a cell: the dashboard redraws when the cell ends
    dash.redraw()
    assert figure.data[2].y[0] == tl.step_landscape(loop).landing != fresh.landing
    with torch.no_grad():  # weights edited in a cell: no event, but the update starts elsewhere
        loop.model.hidden1.weight.mul_(-1)
    dash.redraw()
    assert figure.data[2].y[0] == tl.step_landscape(loop).landing


def test_moving_the_loop_in_time_clears_the_landscape(dashboards):
    loop = _spiral_loop()
    dash = dashboards(loop, plots=("loss", "step_landscape"))
    figure = dash.figures["step_landscape"]
    dash.buttons["Step"].click()
    for label in ("Forward", "Loss", "Backward"):
        dash.buttons[label].click()
    assert "update 2" in _landscape_note(figure)
    dash.buttons["Reset"].click()
    assert loop.state.step == 0 and loop.next_stage == "forward"
    assert "Press Backward" in _landscape_note(figure)
    assert len(figure.data[0].x) == 0 and len(figure.data[2].y) == 0
    for label in ("Forward", "Loss", "Backward"):
        dash.buttons[label].click()
    assert "update 1" in _landscape_note(figure)


class _PickyMLP(torch.nn.Module):
    """Refuses a training-mode forward without gradients: exactly how the landscape runs it."""

    def __init__(self):
        super().__init__()
        self.net = tl.models.mlp(2, [8], 2, seed=0)

    def forward(self, x):
        if self.training and not torch.is_grad_enabled():
            raise RuntimeError("picky: a training forward needs gradients")
        return self.net(x)


def test_a_landscape_that_cannot_be_measured_is_shown_and_never_stops_training(dashboards):
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    loop = tl.Loop(_PickyMLP(), (X, y), "cross_entropy", lr=0.1, batch_size=16, seed=0)
    dash = dashboards(loop, plots=("loss", "step_landscape"), fps=1000)
    figure = dash.figures["step_landscape"]
    for label in ("Forward", "Loss", "Backward"):
        dash.buttons[label].click()
    assert dash.error is None
    assert _landscape_note(figure).startswith("could not measure: RuntimeError: picky")
    dash.buttons["Update"].click()
    assert dash.error is None and loop.state.step == 1
    for _ in range(3):  # code driving the loop: the after_backward handler measures, and fails quietly
        loop.step()
    assert loop.state.step == 4 and loop.next_stage == "forward"
    dash.play()
    dash.wait(steps=30, timeout=20)
    dash.pause()
    assert dash.error is None and loop.state.step >= 30


def _bn_dropout_loop():
    """A BatchNorm + Dropout MLP on 10 features: the view shows per-layer statistics."""
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(300, 10, generator=generator)
    y = (X[:, 0] + X[:, 1] > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))
    return tl.Loop(model, (X, y), "cross_entropy", lr=0.1, batch_size=16, seed=0)


def test_a_dashboard_rebuilt_while_one_plays_pauses_it_and_works(dashboards, within):
    loop = _bn_dropout_loop()
    plots = ("loss", "network", "step_landscape")
    first = dashboards(loop, plots=plots)
    first.play()
    first.wait(steps=20, timeout=20)
    second = dashboards(loop, plots=plots)  # the re-run cell: builds while the first trains
    assert not first.playing and second.error is None
    second.buttons["Step"].click()
    assert second.error is None
    bars = second.figures["network"].data[0]
    assert list(bars.x) == ["0", "1", "2", "3", "4"] and np.isfinite(np.asarray(bars.y, float)).all()
    second.play()
    second.wait(steps=20, timeout=20)
    within(5, second.pause)
    assert second.error is None


def test_a_network_view_made_while_a_dashboard_plays_draws_once_free(dashboards, within):
    loop = _bn_dropout_loop()
    dash = dashboards(loop)
    dash.play()
    dash.wait(steps=20, timeout=20)
    view = tl.NetworkView(loop)  # the loop is busy: nothing measured yet, no error
    within(5, dash.pause)
    view.redraw()
    assert len(view.figure.data[0].x) == 5
    view.close()


def test_the_network_view_redraws_weights_edited_in_a_cell():
    loop = _spiral_loop(hidden=(4,))
    loop.step()
    view = tl.NetworkView(loop, live=False)
    before = np.array(view.figure.data[0].z, dtype=float)
    with torch.no_grad():
        loop.model.hidden1.weight.mul_(-1)
    view.redraw()
    after = np.array(view.figure.data[0].z, dtype=float)
    fresh = tl.NetworkView(loop, live=False)
    assert not np.array_equal(before, after, equal_nan=True)
    assert np.array_equal(after, np.array(fresh.figure.data[0].z, dtype=float), equal_nan=True)
    view.close(), fresh.close()


class _HandWritten(torch.nn.Module):
    """Logistic regression with bare parameters: no layers to look inside."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(2, 2, generator=torch.Generator().manual_seed(0)) * 0.1)
        self.b = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return x @ self.w + self.b


def test_a_model_without_layers_says_so_instead_of_an_empty_figure():
    X, y = tl.datasets.moons(n=100, noise=0.2, seed=0)
    loop = tl.Loop(_HandWritten(), (X, y), "cross_entropy", lr=0.1, batch_size=16, seed=0)
    view = tl.NetworkView(loop, live=False)
    assert "no layers to look inside" in view.figure.layout.annotations[0].text
    view.close()


@pytest.mark.parametrize("options, name", [(dict(max_neurons=0), "max_neurons"), (dict(max_neurons=-1), "max_neurons"),
                                           (dict(max_neurons=True), "max_neurons"),
                                           (dict(max_neurons=2.5), "max_neurons"), (dict(grid=0), "grid"),
                                           (dict(grid=True), "grid"), (dict(grid=1), "grid")])
def test_the_network_view_refuses_bad_sizes_before_building_anything(options, name):
    loop = _spiral_loop(hidden=(4,))
    handlers = {event: len(fns) for event, fns in loop.events._handlers.items()}
    with pytest.raises(ValueError, match=rf"^{name} must be a whole number of at least \d, like {name}="):
        tl.NetworkView(loop, **options)
    assert {event: len(fns) for event, fns in loop.events._handlers.items()} == handlers


def test_a_neuron_view_out_of_sight_measures_nothing_and_catches_up_when_seen(page):
    loop = _spiral_loop()
    view = tl.NetworkView(loop)
    shown = page(view.figure)
    shown.draw()
    shown.say({"kind": "seen", "view": "page", "visible": False})
    frames = len(shown.frames)
    loop.fit(epochs=2)
    assert len(shown.frames) == frames  # nobody could see it: nothing measured, nothing sent
    before = np.array(shown.data[0]["z"], dtype=float)
    shown.say({"kind": "seen", "view": "page", "visible": True})  # scrolled back: it draws what it skipped
    after = np.array(shown.data[0]["z"], dtype=float)
    assert len(shown.frames) > frames and not np.array_equal(before, after, equal_nan=True)
    view.close()
