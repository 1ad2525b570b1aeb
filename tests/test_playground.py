"""The playground's core: live momentum and dropout, rebuilds that keep the old run as a ghost, travel in time."""

import pytest
import torch
from torch import nn

import trainlab as tl
from trainlab.playground import LiveDropout, can_change, change, reachable, travel

RECIPE = {"trainlab_recipe": 1, "data": {"name": "moons", "n": 120, "noise": 0.2, "seed": 0},
          "model": {"name": "mlp", "hidden": [8, 8], "activation": "tanh", "seed": 0},
          "loop": {"lr": 0.1, "batch_size": 16, "validation_split": 0.2}}


def weights(loop):
    return {k: v.clone() for k, v in loop.model.state_dict().items()}


def equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def steps(loop, n):
    for _ in range(n):
        loop.step()


@pytest.fixture
def loop():
    return tl.Loop.from_recipe(RECIPE)


def test_momentum_is_live_recorded_and_exact_in_time_travel(loop):
    assert loop.momentum == 0.0
    steps(loop, 5)
    loop.momentum = 0.9
    assert [g["momentum"] for g in loop.optimizer.param_groups] == [0.9]
    assert loop.history.changes[-1] == (5, "momentum", 0.9)
    steps(loop, 3)
    at_8 = weights(loop)
    steps(loop, 4)
    travel(loop, 8)  # a replay from before the change would go wrong without its keyframe
    assert equal(weights(loop), at_8) and loop.momentum == 0.9
    travel(loop, 3)
    assert loop.momentum == 0.0  # the optimizer as it was then


def test_momentum_is_refused_for_an_optimizer_without_one(loop):
    loop.set_optimizer("adam")
    with pytest.raises(ValueError, match=r"^adam has no momentum setting .*loop.set_optimizer\('sgd'\) first$"):
        loop.momentum = 0.9
    with pytest.raises(ValueError, match="momentum is a number from 0"):
        tl.Loop.from_recipe(RECIPE).momentum = 1.0
    assert can_change(loop, "momentum") == "adam has no momentum"


def test_dropout_is_live_on_the_model_s_layers_and_exact_in_time_travel(loop):
    layers = [m for m in loop.model.modules() if isinstance(m, LiveDropout)]
    assert len(layers) == 2 and loop.dropout == 0.0
    steps(loop, 4)
    model = loop.model
    loop.dropout = 0.3
    assert loop.model is model and all(layer.p == 0.0 for layer in layers)  # read at the next forward
    loop.step()
    assert all(layer.p == 0.3 for layer in layers) and loop.history.changes[-1] == (4, "dropout", 0.3)
    steps(loop, 4)
    at_9 = weights(loop)
    steps(loop, 3)
    travel(loop, 9)
    assert equal(weights(loop), at_9) and loop.dropout == 0.3
    travel(loop, 2)
    assert loop.dropout == 0.0


def test_dropout_of_a_model_of_your_own_without_live_layers_is_refused():
    X, y = tl.datasets.moons(n=40, seed=0)
    own = tl.Loop(nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.1), nn.Linear(4, 2)), (X, y), "cross_entropy")
    with pytest.raises(ValueError, match="this model has no live dropout layers"):
        own.dropout = 0.2
    assert own.model[1].p == 0.1 and own.history.changes == []


def test_a_data_set_change_starts_a_new_run_on_the_same_weights_and_keeps_the_old_one_as_a_ghost(loop):
    start = weights(loop)
    handler_calls = []
    loop.on("after_update", lambda lp: handler_calls.append(lp.state.step))
    loop.lr = 0.2
    steps(loop, 10)
    same = loop
    change(loop, "dataset", "circles")
    assert loop is same and loop.state.step == 0 and equal(weights(loop), start)
    X, y = tl.datasets.circles(n=120, noise=0.2, seed=0)
    assert torch.equal(loop.train_data[0], X[loop.train_indices])
    assert loop.lr == 0.2 and loop.batch_size == 16  # the live settings go on
    assert loop.history.changes == [(0, "dataset", "circles")]
    ghost = loop.history.branches[-1]
    assert ghost.name == "before dataset circles" and len(ghost.steps["loss"]) == 10
    loop.step()
    assert handler_calls[-1] == 1  # handlers stay attached


@pytest.mark.parametrize("name, value, check", [
    ("noise", 0.4, lambda lp: torch.equal(lp.train_data[0], tl.datasets.moons(n=120, noise=0.4)[0][lp.train_indices])),
    ("n", 60, lambda lp: lp.n_train == 48),
    ("validation_split", 0.5, lambda lp: len(lp.val_indices) == 60),
    ("classes", 3, lambda lp: lp.model.output.out_features == 3),
    ("hidden", [4, 4, 4], lambda lp: [lp.model.hidden1.out_features, lp.model.hidden3.out_features] == [4, 4]),
    ("activation", "relu", lambda lp: isinstance(lp.model.act1, nn.ReLU)),
    ("dataset", "sine", lambda lp: lp.loss_name == "mse" and lp.model.hidden1.in_features == 1),
])
def test_every_rebuild_changes_the_loop_keeps_a_ghost_and_is_recorded(loop, name, value, check):
    if name == "classes":
        change(loop, "dataset", "spiral")
    steps(loop, 3)
    branches = len(loop.history.branches)
    change(loop, name, value)
    assert check(loop)
    assert loop.history.changes[0] == (0, name, value) and loop.state.step == 0
    assert len(loop.history.branches) == branches + 1
    loop.step()  # and it trains


def test_a_snapshot_from_before_a_rebuild_is_refused_and_the_loop_left_as_it_was(loop):
    steps(loop, 4)
    old = loop.snapshot("old")
    change(loop, "hidden", [4])  # the same loop object, a new run (another architecture)
    steps(loop, 2)
    new, before, step = loop.snapshot("new"), weights(loop), loop.state.step
    with pytest.raises(ValueError, match="before the data or the model was rebuilt"):
        loop.restore(old)
    same = lambda a, b: a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(weights(loop), before) and loop.state.step == step == 2
    steps(loop, 1)
    loop.restore(new)  # one of this run: fine
    assert same(weights(loop), before)


def test_an_architecture_change_rebuilds_with_the_loop_s_seed():
    X, y = tl.datasets.moons(n=80, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2), (X, y), "cross_entropy", seed=7)  # made without a seed
    steps(loop, 2)
    change(loop, "hidden", [5])
    assert all(torch.equal(p, q) for p, q in zip(loop.model.parameters(),
                                                 tl.models.mlp(2, [5], 2, seed=7).parameters()))


def test_a_refused_change_leaves_the_loop_as_it_was(loop):
    steps(loop, 6)
    before, model, changes = weights(loop), loop.model, list(loop.history.changes)
    for name, value, message in [("hidden", [0], "hidden is a list of layer widths"),
                                 ("dataset", "swirls", "unknown data set 'swirls'"),
                                 ("validation_split", 1.5, "validation_split must be a number in"),
                                 ("activation", "wiggly", "unknown activation 'wiggly'"),
                                 ("colour", "red", "it is no setting of this loop's data or model")]:
        with pytest.raises(ValueError, match=message):
            change(loop, name, value)
        assert loop.model is model and equal(weights(loop), before) and loop.state.step == 6
        assert loop.history.changes == changes and len(loop.history.branches) == 0


def test_your_own_model_keeps_its_data_controls_and_says_why_not_the_architecture_ones():
    X, y = tl.datasets.moons(n=80, noise=0.1, seed=0)
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 2))
    loop = tl.Loop(model, (X, y), "cross_entropy", lr=0.1)
    start = weights(loop)
    assert can_change(loop, "hidden") == "the model is your own (not from tl.models or a registered maker)"
    assert can_change(loop, "noise") == ""
    steps(loop, 5)
    change(loop, "noise", 0.3)
    assert loop.model is model and equal(weights(loop), start) and loop.state.step == 0
    assert loop.history.branches[-1].name == "before noise 0.3"
    mine = tl.Loop(tl.models.mlp(2, [4], 2, seed=0), (X * 2, y), "cross_entropy")
    assert can_change(mine, "noise") == "the data is your own (not from tl.datasets or a registered maker)"
    with pytest.raises(ValueError, match="cannot change noise: the data is your own"):
        change(mine, "noise", 0.2)


def test_travel_reaches_every_step_back_to_the_first_keyframe_bit_identically(loop):
    seen = {0: weights(loop)}
    for step in range(1, 41):
        if step == 13:
            loop.lr = 0.05
        if step == 21:
            loop.batch_size = 7
        loop.step()
        seen[step] = weights(loop)
    assert reachable(loop) == (0, 40)
    travel(loop, 17)
    assert equal(weights(loop), seen[17])
    for step in range(16, -1, -1):
        travel(loop, step)
        assert equal(weights(loop), seen[step]) and loop.state.step == step


def test_travel_says_which_step_is_the_nearest_it_can_reach():
    loop = tl.Loop.from_recipe({**RECIPE, "loop": {**RECIPE["loop"], "rewind_memory_mb": 0.05}})
    steps(loop, 300)
    first, current = reachable(loop)
    assert 0 < first < current == 300
    with pytest.raises(tl.TravelError, match=f"^step 2 is no longer reachable: the keyframes reach back to step "
                                             f"{first} .*the nearest is step {first}$") as refused:
        travel(loop, 2)
    assert refused.value.nearest == first and loop.state.step == 300
    with pytest.raises(tl.TravelError, match="step 301 is ahead of the run"):
        travel(loop, 301)
    assert travel(loop, first) == first
