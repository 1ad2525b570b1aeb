"""Live plots: a fixed point budget however long the run, change marks, ghost runs, the data views."""

import time

import numpy as np
import pytest

import trainlab as tl


def _trace(figure, name):
    return next(trace for trace in figure.data if trace.name == name)


def _fill_history(loop, steps: int) -> None:
    """20,000 recorded steps in a fraction of a second, with a spike to keep."""
    layers = [0.1] * len(loop.param_names)
    for i in range(steps):
        loss = 50.0 if i == 12_345 else 1.0 / (1 + i / 1000)
        loop.history.record_step({"epoch": i // 10, "loss": loss, "accuracy": 0.5, "lr": loop.lr, "batch_size": 32, "grad_norm": 0.3}, layers)


def test_a_redraw_after_20000_steps_sends_at_most_the_point_budget_per_trace(loop, dashboards):
    dash = dashboards(loop, max_points=500)
    _fill_history(loop, 20_000)
    start = time.perf_counter()
    dash.redraw()
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    for name, figure in dash.figures.items():
        for trace in figure.data:
            for axis in ("x", "y"):
                values = getattr(trace, axis, None)
                if values is not None and trace.type == "scatter":
                    assert len(values) <= 500, (name, trace.name, axis, len(values))
    raw = _trace(dash.figures["loss"], "loss per batch")
    assert 200 <= len(raw.y) <= 500
    assert max(raw.y) == 50.0  # the spike survives downsampling
    assert isinstance(raw.y, np.ndarray) and raw.y.dtype == np.float64  # binary buffers, not lists
    assert len(_trace(dash.figures["grad_norm"], "hidden1.weight").y) <= 500


def test_redraw_time_stays_flat_as_the_history_grows(loop, dashboards):
    dash = dashboards(loop)
    _fill_history(loop, 20_000)
    dash.redraw()
    _fill_history(loop, 200)  # a few more steps, as between two frames while playing
    start = time.perf_counter()
    dash.redraw(data=False)
    assert time.perf_counter() - start < 0.1


def test_the_loss_plot_has_per_step_and_per_epoch_curves(dash, loop):
    dash.buttons["Epoch"].click()
    dash.buttons["Epoch"].click()
    figure = dash.figures["loss"]
    assert len(_trace(figure, "loss").y) == loop.state.step == 20
    train = _trace(figure, "train loss (epoch)")
    val = _trace(figure, "val loss (epoch)")
    assert list(train.x) == [10.0, 20.0]  # each epoch at the step it ended
    assert np.allclose(train.y, loop.history.history["loss"])
    assert np.allclose(val.y, loop.history.history["val_loss"])
    accuracy = dash.figures["accuracy"]
    assert np.allclose(_trace(accuracy, "val accuracy").y, loop.history.history["val_accuracy"])


def test_hyperparameter_changes_are_marked_on_the_time_axis(dash, loop):
    dash.buttons["Step"].click()
    dash.lr_slider.value = 0.3
    dash.buttons["Step"].click()
    dash.batch_size_slider.value = 64
    texts = [a.text for a in dash.figures["loss"].layout.annotations]
    assert "lr=0.3" in texts and "batch_size=64" in texts
    lines = dash.figures["loss"].layout.shapes
    assert [shape.x0 for shape in lines] == [1, 2]
    assert any("lr=0.3" in a.text for a in dash.figures["grad_norm"].layout.annotations)


def test_a_rewound_run_stays_as_a_faint_ghost_curve(dash, loop):
    for _ in range(6):
        dash.buttons["Step"].click()
    dash.buttons["Rewind"].click()
    dash.buttons["Reset"].click()
    ghosts = [t for t in dash.figures["loss"].data if t.name and t.name.startswith("earlier run")]
    assert len(ghosts) == 2 and all(t.showlegend for t in ghosts)
    longest = max(ghosts, key=lambda t: len(t.y))
    assert list(longest.x) == [1.0, 2.0, 3.0, 4.0, 5.0]  # steps 1..5 of the run left by Reset
    assert len(_trace(dash.figures["loss"], "loss").y) == 0  # the new run starts empty


def test_gradient_histograms_and_update_ratios_follow_the_latest_step(dash, loop):
    dash.buttons["Step"].click()
    histograms = dash.figures["gradients"].data
    assert [t.name for t in histograms] == loop.param_names
    assert all(len(t.x) == 31 for t in histograms)  # 30 bins: 31 edges
    bars = dash.figures["update_ratio"].data[0]
    ratios = loop.update_ratios()
    assert np.allclose(bars.y, [ratios[name] for name in loop.param_names])


def test_the_decision_boundary_covers_the_input_plane_with_probabilities(make_loop, dashboards):
    loop = make_loop(lr=0.5)
    dash = dashboards(loop, grid=40)
    heatmap = dash.figures["decision_boundary"].data[0]
    before = np.array(heatmap.z)
    assert before.shape == (40, 40) and np.all((before >= 0) & (before <= 1))
    loop.fit(epochs=30)
    dash.redraw()
    heatmap = dash.figures["decision_boundary"].data[0]  # read again: data shows the figure as it is now
    after = np.array(heatmap.z)
    assert not np.allclose(before, after)
    # where the training points of class 1 lie, the model now says "class 1"
    X, y = loop.train_data
    xs, ys = np.array(heatmap.x), np.array(heatmap.y)
    cols = np.abs(xs[None, :] - X[:, :1].numpy()).argmin(1)
    rows = np.abs(ys[None, :] - X[:, 1:].numpy()).argmin(1)
    agree = ((after[rows, cols] > 0.5) == (y.numpy() == 1)).mean()
    assert agree > 0.85
    points = dash.figures["decision_boundary"].data[1]
    assert len(points.x) == len(X)


def test_three_classes_colour_the_plane_by_predicted_class(dashboards):
    X, y = tl.datasets.blobs(n=300, centers=3, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16], 3, seed=0), (X, y), "cross_entropy", lr=0.1)
    dash = dashboards(loop)
    z = np.array(dash.figures["decision_boundary"].data[0].z)
    assert set(np.unique(z)) <= {0.0, 1.0, 2.0}


def test_one_dimensional_regression_shows_the_prediction_curve(dashboards):
    X, y = tl.datasets.sine(n=200, seed=0)
    loop = tl.Loop(tl.models.mlp(1, [32], 1, activation="tanh", seed=0), (X, y), "mse", lr=0.05)
    dash = dashboards(loop)
    assert "decision_boundary" not in dash.figures and "accuracy" not in dash.figures
    curve = _trace(dash.figures["prediction"], "model")
    first = np.array(curve.y)
    assert len(first) == 200 and np.all(np.isfinite(first))
    dash.buttons["Epoch"].click()
    assert not np.allclose(first, _trace(dash.figures["prediction"], "model").y)


def test_images_get_no_data_view_but_everything_else_works(dashboards):
    X, y = tl.datasets.digits(n=200, seed=0)
    loop = tl.Loop(tl.models.cnn(seed=0), (X, y), "cross_entropy", lr=0.05)
    dash = dashboards(loop)
    assert set(dash.figures) == {"loss", "accuracy", "grad_norm", "gradients", "update_ratio"}
    dash.buttons["Forward"].click()
    assert dash.stage_view.value.count("<img src='data:image/png") == 5  # the digits as pictures (issue 29)
    dash.buttons["Step"].click()
    assert dash.error is None


@pytest.mark.parametrize("fps", [2.0])
def test_redraws_follow_code_that_drives_the_loop_from_a_cell(loop, dashboards, fps):
    """In a notebook, a cell that calls loop stages gets the dashboard redrawn when it ends."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        dash = dashboards(loop, fps=fps)
        shell.user_ns["loop"] = loop
        shell.run_cell("loop.forward(); loop.loss()")
        assert "loss ✓ just ran" in dash.stage_view.value
        assert dash.buttons["Backward"].button_style == "primary"
    finally:
        shell.reset()  # its namespace holds the loop, and the shell outlives clear_instance (its history thread)
        InteractiveShell.clear_instance()


def test_a_lighter_dashboard_shows_only_the_plots_asked_for(loop, dashboards):
    dash = dashboards(loop, plots=("decision_boundary",))
    assert set(dash.figures) == {"loss", "decision_boundary"}  # the loss plot is always there
    dash.play()
    dash.wait(steps=50, timeout=10)
    dash.pause()
    assert dash.error is None and len(dash.figures["loss"].data[1].y) > 0
    with pytest.raises(ValueError, match="unknown plots"):
        tl.Dashboard(loop, plots=("loss", "weights"))


def test_per_epoch_curves_drop_their_markers_past_a_few_dozen_epochs(loop, dashboards):
    dash = dashboards(loop)
    loop.fit(epochs=3)
    dash.redraw()
    modes = [trace.mode for name in ("loss", "accuracy") for trace in dash.figures[name].data
             if "epoch" in (trace.name or "") or "accuracy" in (trace.name or "")]
    assert modes and set(modes) == {"lines+markers"}
    loop.fit(epochs=40)
    dash.redraw()
    modes = [trace.mode for name in ("loss", "accuracy") for trace in dash.figures[name].data
             if "epoch" in (trace.name or "") or "accuracy" in (trace.name or "")]
    assert set(modes) == {"lines"}  # 43 epochs: a marker each would be a thick band
