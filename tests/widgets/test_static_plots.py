"""The static plots (plot_history, compare_runs): the right curves and lengths, and ghosts of abandoned runs."""

import numpy as np
import pytest

pytest.importorskip("plotly")

import plotly.graph_objects as go  # noqa: E402

import trainlab as tl  # noqa: E402
from trainlab.widgets import static_plots  # noqa: E402
from trainlab.widgets.live_figure import LiveFigure  # noqa: E402
from trainlab.widgets.static_plots import compare_runs, plot_history  # noqa: E402


def make_loop(validation_split: float = 0.2, **options) -> tl.Loop:
    X, y = tl.datasets.moons(n=100, noise=0.2, seed=0)  # 80 training samples with the split
    options = {"lr": 0.1, "batch_size": 16, **options}
    return tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy",
                   validation_split=validation_split, seed=0, **options)


def traces(fig: LiveFigure) -> dict[str, go.Scatter]:
    return {trace.name: trace for trace in fig.data}


def test_train_and_validation_curves_per_metric():
    loop = make_loop()
    loop.fit(3)
    fig = plot_history(loop.history, metrics=("loss", "accuracy"))
    assert isinstance(fig, LiveFigure)  # drawn by the page's one plotly.js, not a second 5 MB copy
    found = traces(fig)
    assert set(found) == {"loss", "val_loss", "accuracy", "val_accuracy"}
    for key, trace in found.items():
        assert isinstance(trace.y, np.ndarray)
        np.testing.assert_allclose(trace.y, loop.history.history[key])
        np.testing.assert_array_equal(trace.x, [1, 2, 3])
    # one subplot per metric: accuracy lives on the second x axis
    assert found["loss"].xaxis == "x" and found["accuracy"].xaxis == "x2"


def test_no_validation_draws_only_training_curves():
    loop = make_loop(validation_split=0.0)
    loop.fit(2)
    assert set(traces(plot_history(loop.history, metrics="loss"))) == {"loss"}


def test_per_step_curve_sits_at_the_share_of_the_epoch_done():
    loop = make_loop()
    loop.fit(2)  # 80 samples in batches of 16: 5 steps per epoch
    trace = traces(plot_history(loop, steps=True))["loss per step"]
    np.testing.assert_allclose(trace.x, np.arange(1, 11) / 5)
    np.testing.assert_allclose(trace.y, loop.history.steps["loss"])
    # without the loop, the history alone gives the same positions (learned from a complete epoch)
    np.testing.assert_allclose(traces(plot_history(loop.history, steps=True))["loss per step"].x, trace.x)


def test_per_step_positions_follow_a_batch_size_change_mid_epoch():
    loop = make_loop()
    loop.step()  # 16 samples
    loop.batch_size = 32
    loop.run_epoch()  # then 32 and the 32 left: 80 in all
    x = traces(plot_history(loop, steps=True))["loss per step"].x
    np.testing.assert_allclose(x, [16 / 80, 48 / 80, 1.0])


def test_step_only_columns_can_be_plotted():
    loop = make_loop()
    loop.fit(1)
    trace = traces(plot_history(loop.history, metrics=("grad_norm",)))["grad_norm"]
    np.testing.assert_allclose(trace.y, loop.history.steps["grad_norm"])


def test_unknown_metric_is_a_clear_error():
    loop = make_loop()
    with pytest.raises(ValueError, match="no 'f1'"):
        plot_history(loop.history, metrics=("f1",))
    with pytest.raises(ValueError, match="without 'val_'"):
        plot_history(loop.history, metrics=("val_loss",))
    with pytest.raises(ValueError, match="loop or its history"):
        plot_history({"loss": [1.0]})


def test_empty_history_gives_empty_traces():
    fig = plot_history(make_loop().history, metrics=("loss", "accuracy"), steps=True)
    assert {name: len(trace.x) for name, trace in traces(fig).items()} == {
        "loss per step": 0, "loss": 0, "val_loss": 0,
        "accuracy per step": 0, "accuracy": 0, "val_accuracy": 0}


def test_hyperparameter_changes_are_marked_in_every_subplot():
    loop = make_loop()
    loop.fit(1)
    loop.lr = 0.05
    loop.fit(1)
    fig = plot_history(loop, metrics=("loss", "accuracy"))
    lines = [shape for shape in fig.layout.shapes if shape.line.dash == "dot"]
    assert [(shape.x0, shape.xref) for shape in lines] == [(1.0, "x"), (1.0, "x2")]
    assert "lr=0.05" in [note.text for note in fig.layout.annotations]
    assert not plot_history(loop, changes=False).layout.shapes


def test_abandoned_branch_is_drawn_as_a_faint_dashed_ghost():
    loop = make_loop()
    loop.fit(2)
    start = loop.snapshot("epoch 2")
    loop.lr = 1.0
    loop.fit(3)  # this run is abandoned...
    abandoned = {key: list(values) for key, values in loop.history.history.items()}
    loop.restore(start)
    loop.fit(1)  # ...for this one
    (branch,) = loop.history.branches
    fig = plot_history(loop.history, steps=True)
    found = traces(fig)
    ghost = found[f"val_loss ({branch.name})"]
    assert ghost.line.dash == "dash" and ghost.opacity < 1
    # joined to the shared epoch 2, then the abandoned epochs 3..5
    np.testing.assert_array_equal(ghost.x, [2, 3, 4, 5])
    np.testing.assert_allclose(ghost.y, abandoned["val_loss"][1:])
    step_ghost = found[f"loss per step ({branch.name})"]
    assert len(step_ghost.x) == len(branch.steps["loss"]) == 15
    np.testing.assert_allclose(step_ghost.x[[0, -1]], [2.2, 5.0])
    # the current run is drawn solid, and ghosts can be turned off
    assert len(found["val_loss"].x) == 3 and found["val_loss"].line.dash is None
    assert set(traces(plot_history(loop.history, branches=False))) == {"loss", "val_loss"}


def test_long_per_step_curves_are_thinned_as_the_live_ones_are(monkeypatch):
    monkeypatch.setattr(static_plots, "MAX_POINTS", 50)
    loop = make_loop(batch_size=1)
    loop.fit(2)  # 160 steps
    trace = traces(plot_history(loop, steps=True))["loss per step"]
    assert 25 <= len(trace.x) <= 50
    assert trace.x[-1] == loop.state.epoch  # the last point is always kept
    losses = loop.history.steps["loss"]
    assert max(trace.y) == losses.max() and min(trace.y) == losses.min()  # and so are the extremes


def test_compare_runs_draws_one_named_curve_per_run():
    loop = make_loop()
    start = loop.snapshot()
    loop.fit(3)
    loop.restore(start)
    loop.lr = 0.5
    loop.fit(2)
    fig = compare_runs({"lr 0.1": loop.history.branches[-1], "lr 0.5": loop}, metric="val_loss")
    found = traces(fig)
    assert list(found) == ["lr 0.1", "lr 0.5"]
    np.testing.assert_array_equal(found["lr 0.1"].x, [1, 2, 3])
    np.testing.assert_allclose(found["lr 0.5"].y, loop.history.history["val_loss"])
    with pytest.raises(ValueError, match="no 'val_f1'"):
        compare_runs({"a": loop.history}, metric="val_f1")


def test_how_many_ghosts_and_a_log_scale():
    loop = make_loop()
    start = loop.snapshot()
    for lr in (0.1, 0.2, 0.3):
        loop.restore(start)
        loop.lr = lr
        loop.fit(1)
    assert len(loop.history.branches) == 2

    def ghosts(**options):
        return [name for name in traces(plot_history(loop.history, **options)) if "(" in name]

    name = loop.history.branches[-1].name  # both were left at a restore to the same snapshot
    assert ghosts() == [f"loss ({name} #1)", f"val_loss ({name} #1)", f"loss ({name} #2)", f"val_loss ({name} #2)"]
    assert ghosts(branches=1) == [f"loss ({name})", f"val_loss ({name})"]
    assert ghosts(branches=False) == ghosts(branches=0) == []
    fig = plot_history(loop.history, metrics=("loss", "accuracy"), log_y=True)
    assert fig.layout.yaxis.type == fig.layout.yaxis2.type == "log"


@pytest.mark.parametrize("call, message", [
    (lambda loop: compare_runs([loop, loop]), "dict that names each run"),
    (lambda loop: compare_runs({"a": loop.history.history}), "loop.history.branches"),
    (lambda loop: compare_runs({}), "dict that names each run"),
    (lambda loop: plot_history(loop, metrics=None), "list of names"),
    (lambda loop: plot_history(loop, metrics=[1]), "list of names"),
    (lambda loop: plot_history(loop, branches=None), "branches is True"),
])
def test_wrong_arguments_to_the_plots_say_what_to_pass(call, message):
    loop = make_loop()
    loop.fit(epochs=1)
    with pytest.raises(ValueError, match=message):
        call(loop)
