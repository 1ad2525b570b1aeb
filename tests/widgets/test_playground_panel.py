"""The dashboard's playground controls, driven headless (``.value = ...``, ``.click()``): each changes the loop."""

import json

import pytest
import torch
from torch import nn

import trainlab as tl
from trainlab.widgets.playground_panel import CONTROL_NAMES, FAMILIES, PRESETS, shown_controls

RECIPE = {"trainlab_recipe": 1, "data": {"name": "moons", "n": 200, "noise": 0.2, "seed": 0},
          "model": {"name": "mlp", "hidden": [8, 8], "activation": "tanh", "seed": 0},
          "loop": {"lr": 0.1, "batch_size": 16, "validation_split": 0.2}}


@pytest.fixture
def pg_loop():
    return tl.Loop.from_recipe(RECIPE)


@pytest.fixture
def panel(pg_loop, dashboards, tmp_path):
    dash = dashboards(pg_loop, plots=("loss", "decision_boundary"))
    dash.playground.share_dir = tmp_path
    dash.buttons["Epoch"].click()
    return dash.playground


def rebuilt_with(panel, name, value):
    """The ghost and the change a rebuild leaves."""
    loop = panel.loop
    assert loop.state.step == 0 and loop.history.changes[0] == (0, name, value)
    assert loop.history.branches[-1].name == f"before {name} {value}"
    assert panel.dash.error is None and panel.alert.value == ""


def test_the_data_set_menu_rebuilds_the_data_and_the_plots(panel):
    old_boundary = panel.dash.plots["decision_boundary"]
    panel.controls["dataset"].value = "xor"
    rebuilt_with(panel, "dataset", "xor")
    assert torch.equal(panel.loop.train_data[0], tl.datasets.xor(n=200, noise=0.2)[0][panel.loop.train_indices])
    assert panel.dash.plots["decision_boundary"] is not old_boundary  # drawn for the new points


@pytest.mark.parametrize("control, value, name, check", [
    ("noise", 0.4, "noise", lambda lp: torch.equal(lp.train_data[0], tl.datasets.moons(n=200, noise=0.4)[0][lp.train_indices])),
    ("samples", 100, "n", lambda lp: lp.n_train == 80),
    ("validation", 0.3, "validation_split", lambda lp: len(lp.val_indices) == 60),
    ("activation", "relu", "activation", lambda lp: isinstance(lp.model.act1, nn.ReLU)),
])
def test_each_problem_and_architecture_control_rebuilds_and_keeps_a_ghost(panel, control, value, name, check):
    panel.controls[control].value = value
    rebuilt_with(panel, name, value)
    assert check(panel.loop)


def test_classes_for_the_spiral_and_blobs_and_disabled_for_two_class_sets(panel):
    assert panel.controls["classes"].disabled  # moons: always two
    panel.controls["dataset"].value = "spiral"
    assert not panel.controls["classes"].disabled
    panel.loop.step()
    panel.controls["classes"].value = 3
    rebuilt_with(panel, "classes", 3)
    assert panel.loop.model.output.out_features == 3
    panel.controls["dataset"].value = "blobs"
    panel.loop.step()
    panel.controls["noise"].value = 0.5  # blobs' noise is their spread
    rebuilt_with(panel, "std", 0.5)


def test_layers_and_neurons_plus_and_minus(panel):
    controls = panel.controls
    controls["layers"].plus.click()
    rebuilt_with(panel, "hidden", [8, 8, 8])
    assert "<b>3</b>" in controls["layers"].count.value
    panel.loop.step()
    controls["neurons"].minus.click()
    rebuilt_with(panel, "hidden", [7, 7, 7])
    controls["layers"].minus.click()
    assert [m.out_features for m in panel.loop.model if isinstance(m, nn.Linear)] == [7, 7, 2]


def test_dropout_and_momentum_are_live(panel):
    loop, model, step = panel.loop, panel.loop.model, panel.loop.state.step
    panel.controls["dropout"].value = 0.25
    panel.controls["momentum"].value = 0.8
    assert loop.model is model and loop.state.step == step  # no rebuild
    assert loop.dropout == 0.25 and loop.optimizer.param_groups[0]["momentum"] == 0.8
    assert loop.history.changes[-2:] == [(step, "dropout", 0.25), (step, "momentum", 0.8)]


def test_momentum_says_why_not_for_adam(panel):
    panel.dash.optimizer_dropdown.value = "adam"
    panel.controls["momentum"].value = 0.5
    assert "adam has no momentum setting" in panel.alert.value
    assert panel.controls["momentum"].value == 0.0  # snapped back to the loop's


def test_show_validation_points_and_discretize_change_the_decision_boundary(panel):
    plot = panel.dash.plots["decision_boundary"]
    assert plot.figure.data[2].name == "validation data" and len(plot.figure.data[2].x) == 40
    panel.controls["show_validation"].value = True
    assert plot.figure.data[2].visible is True and plot.figure.data[2].marker.symbol == "circle-open"
    panel.controls["discretize"].value = True
    assert set(plot._colour(panel.loop, panel.loop.predict(plot._grid)).tolist()) <= {0.0, 1.0}


def test_the_timeline_goes_back_exactly_and_offers_the_nearest_step(pg_loop, dashboards):
    loop = tl.Loop.from_recipe({**RECIPE, "loop": {**RECIPE["loop"], "rewind_memory_mb": 0.05}})
    dash = dashboards(loop, plots=("loss",))
    panel = dash.playground
    seen = {}
    for _ in range(120):
        loop.step()
        seen[loop.state.step] = {k: v.clone() for k, v in loop.model.state_dict().items()}
    panel.refresh(False)
    first = loop.state.step - loop.rewind_depth
    assert panel.timeline.max == 120 and panel.timeline.value == 120 and f"steps {first}–120" in panel.reach.value
    panel.timeline.value = 100
    assert loop.state.step == 100 and all(torch.equal(v, seen[100][k]) for k, v in loop.model.state_dict().items())
    panel.timeline.value = 1
    assert loop.state.step == 100 and f"the nearest is step {first}" in panel.alert.value
    assert panel.nearest.description == f"Go to step {first}" and panel.nearest in panel.timeline_row.children
    panel.nearest.click()
    assert loop.state.step == first and all(torch.equal(v, seen[first][k]) for k, v in loop.model.state_dict().items())


def test_snapshot_restore_and_branches(panel):
    loop = panel.loop
    panel.snapshot_name.value = "good"
    panel.snapshot_button.click()
    assert list(panel.snapshot_list.options) == ["good (step 10)"]
    for _ in range(5):
        loop.step()
    at_15 = {k: v.clone() for k, v in loop.model.state_dict().items()}
    panel.snapshot_list.value = "good (step 10)"
    panel.restore_button.click()
    assert loop.state.step == 10
    panel.refresh(False)
    assert panel.branch_list.options[-1][0].endswith("before restore to good")
    panel.branch_list.value = panel.branch_list.options[-1][1]
    panel.resume_button.click()  # back to the end of the branch: step 15, the same weights
    assert loop.state.step == 15 and all(torch.equal(v, at_15[k]) for k, v in loop.model.state_dict().items())
    panel.controls["noise"].value = 0.3  # a rebuild: the snapshot belongs to the old run
    panel.snapshot_list.value = "good (step 10)"
    panel.restore_button.click()
    assert "was taken before the data or the model was rebuilt" in panel.alert.value


def test_show_as_ghost_puts_a_branch_among_the_ghosts_drawn(panel):
    loop = panel.loop
    names = []
    for noise in (0.1, 0.2, 0.3):
        loop.step()
        panel.controls["noise"].value = noise
        names.append(loop.history.branches[-1].name)
    panel.refresh(False)
    panel.branch_list.value = 0
    panel.ghost_button.click()
    assert loop.history.branches[-1].name == names[0]


def test_share_writes_the_recipe_and_links_to_it(panel, tmp_path):
    panel.controls["momentum"].value = 0.5
    panel.loop.step()
    panel.share_button.click()
    recipe = json.loads((tmp_path / "run.trainlab.json").read_text())
    assert recipe == panel.loop.recipe() and recipe["steps"] == 11
    assert "voila/render/" in panel.share_output.value and "?recipe=run.trainlab.json" in panel.share_output.value
    again = tl.replay(tl.recipe.shared("?recipe=run.trainlab.json", tmp_path))
    assert all(torch.equal(p, q) for p, q in zip(again.model.parameters(), panel.loop.model.parameters()))


def test_while_playing_a_change_pauses_at_the_batch_end_and_plays_on(panel, until):
    dash = panel.dash
    dash.play()
    assert dash.wait(steps=5, timeout=5) >= 5
    panel.controls["dataset"].value = "circles"
    assert dash.playing and panel.alert.value == ""
    assert until(lambda: panel.loop.state.step >= 3, timeout=5)
    dash.pause()
    assert panel.loop.history.changes[0] == (0, "dataset", "circles")


def test_controls_that_cannot_apply_to_your_own_model_and_data_say_why(dashboards):
    X, y = tl.datasets.moons(n=100, seed=0)
    own = tl.Loop(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)), (X * 2, y), "cross_entropy",
                  optimizer="adam")
    panel = dashboards(own, plots=("loss",)).playground
    assert set(panel.controls) == {"timeline", "snapshots", "branches"}
    assert panel.unavailable["layers"].tooltip == "the model is your own (not from tl.models or a registered maker)"
    assert panel.unavailable["noise"].tooltip == "the data is your own (not from tl.datasets or a registered maker)"
    assert panel.unavailable["dropout"].tooltip == "your model has no live dropout layers (trainlab.playground.LiveDropout)"
    assert panel.unavailable["momentum"].tooltip == "adam has no momentum"
    assert panel.unavailable["show_validation"].tooltip == "for 2-D classification data: the decision boundary"
    assert panel.unavailable["share"].tooltip.startswith("this run cannot be shared: its model is your own")


def test_presets_and_families_pick_the_controls(dashboards, pg_loop):
    assert shown_controls(None) == CONTROL_NAMES and shown_controls("none") == ()
    assert shown_controls(["architecture", "share"]) == FAMILIES["architecture"] + ("share",)
    panel = dashboards(pg_loop, plots=("loss",), controls="overfitting").playground
    assert set(panel.controls) | set(panel.unavailable) == set(PRESETS["overfitting"])
    with pytest.raises(ValueError, match="unknown control 'knobs'; choose families"):
        tl.Dashboard(pg_loop, controls=["knobs"])
    with pytest.raises(ValueError, match="unknown controls preset 'lots'"):
        tl.Dashboard(pg_loop, controls="lots")
