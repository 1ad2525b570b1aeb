"""Recipes: a run as a JSON-able dict that builds the loop again and replays it bit for bit (issue 28)."""

import copy
import json

import pytest
import torch
from torch import nn

import trainlab as tl
from trainlab.playground import change

RECIPE = {"trainlab_recipe": 1, "data": {"name": "moons", "n": 200, "noise": 0.2, "seed": 0},
          "model": {"name": "mlp", "hidden": [16, 16], "activation": "tanh", "dropout": 0.0, "seed": 0},
          "loop": {"loss_fn": "cross_entropy", "optimizer": "sgd", "lr": 0.1, "batch_size": 32,
                   "validation_split": 0.2, "seed": 0}}


def same_weights(a: tl.Loop, b: tl.Loop) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def same_optimizer(a: tl.Loop, b: tl.Loop) -> bool:
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    return sa["param_groups"] == sb["param_groups"] and all(
        torch.equal(sa["state"][k][name], sb["state"][k][name]) for k in sa["state"] for name in sa["state"][k])


def steps(loop: tl.Loop, n: int) -> None:
    for _ in range(n):
        loop.step()


def played(recipe=RECIPE) -> tl.Loop:
    """A run with lr, batch size (one mid-batch), momentum, dropout, architecture and data changes."""
    loop = tl.Loop.from_recipe(recipe)
    steps(loop, 12)
    loop.lr = 0.05
    loop.momentum = 0.9
    steps(loop, 7)
    loop.forward()  # mid-batch: the batch size applies from the next batch, dropout from the next forward
    loop.batch_size = 16
    loop.dropout = 0.2
    steps(loop, 9)
    change(loop, "hidden", [8, 8, 8])
    steps(loop, 10)
    loop.dropout = 0.1
    loop.batch_size = 24
    change(loop, "noise", 0.3)
    steps(loop, 11)
    loop.momentum = 0.5
    steps(loop, 6)
    return loop


def test_from_recipe_builds_the_loop_a_learner_would_build_by_hand():
    loop = tl.Loop.from_recipe(RECIPE)
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    hand = tl.Loop(tl.models.mlp(2, [16, 16], 2, activation="tanh", seed=0), (X, y), "cross_entropy", lr=0.1,
                   batch_size=32, validation_split=0.2, seed=0)
    assert loop.state.step == 0 and loop.lr == 0.1 and loop.batch_size == 32 and loop.loss_name == "cross_entropy"
    steps(loop, 20)
    steps(hand, 20)
    assert same_weights_by_parameters(loop, hand)  # the live dropout layers at 0 change nothing


def same_weights_by_parameters(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_replay_is_bit_identical_with_lr_batch_size_dropout_momentum_and_architecture_changes():
    loop = played()
    recipe = loop.recipe()
    assert json.loads(json.dumps(recipe)) == recipe  # JSON-able as it is
    names = [name for _, name, _ in recipe["changes"]]
    assert names == ["lr", "momentum", "batch_size", "dropout", "hidden", "dropout", "batch_size", "noise", "momentum"]
    assert recipe["changes"][2][0] == 20  # set in the middle of batch 20: counts from step 20 on
    assert recipe["steps"] == loop.state.step == 17
    again = tl.replay(json.loads(json.dumps(recipe)))
    assert same_weights(loop, again) and same_optimizer(loop, again)
    assert (again.lr, again.batch_size, again.momentum, again.dropout) == (loop.lr, loop.batch_size, 0.5, 0.1)
    assert (loop.history.steps["loss"] == again.history.steps["loss"]).all()
    assert [b.name for b in again.history.branches] == [b.name for b in loop.history.branches]
    # and the replayed loop writes the same recipe
    assert again.recipe() == recipe


def test_a_recipe_of_a_loop_built_by_hand_from_the_makers():
    X, y = tl.datasets.circles(n=120, noise=0.1, seed=3)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, activation="relu", seed=1), (X, y), "cross_entropy", lr=0.2,
                   batch_size=10, validation_split=0.25, seed=2, momentum=0.5)
    recipe = loop.recipe()
    assert recipe["data"] == {"name": "circles", "n": 120, "noise": 0.1, "factor": 0.5, "seed": 3}
    assert recipe["model"] == {"name": "mlp", "hidden": [8], "activation": "relu", "seed": 1, "dropout": 0.0}
    assert recipe["loop"]["validation_split"] == 0.25 and recipe["loop"]["momentum"] == 0.5
    steps(loop, 15)
    loop.lr = 0.1
    steps(loop, 5)
    again = tl.replay(loop.recipe())
    assert same_weights_by_parameters(loop, again) and again.state.step == 20


def test_a_loop_of_your_own_model_has_no_recipe_and_says_why():
    X, y = tl.datasets.moons(n=50, seed=0)
    loop = tl.Loop(nn.Sequential(nn.Linear(2, 2)), (X, y), "cross_entropy")
    with pytest.raises(ValueError, match=r"^this loop has no recipe: its model is your own \(a recipe names a "
                                         r"model maker: tl.models.mlp, or one registered with tl.register_model\)$"):
        loop.recipe()
    seedless = tl.Loop(tl.models.mlp(2, [4], 2), (X, y), "cross_entropy")
    with pytest.raises(ValueError, match="made without a seed"):
        seedless.recipe()


def test_a_registered_data_maker_is_a_recipe_s_data():
    @tl.register_data("stripes")
    def stripes(n: int = 100, width: float = 1.0, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        X = torch.rand(n, 2, generator=g) * 4
        return X, (X[:, 0] // width % 2).long()

    recipe = {**RECIPE, "data": {"name": "stripes", "n": 80, "width": 0.5}}
    loop = tl.replay({**recipe, "steps": 5})
    assert loop.state.step == 5 and loop.recipe()["data"] == {"name": "stripes", "n": 80, "width": 0.5}
    change(loop, "width", 2.0)
    assert loop.recipe()["changes"][-1] == [5, "width", 2.0]


@pytest.fixture
def loops_built(monkeypatch):
    """The loops whose constructor finished during the test (the real constructor runs)."""
    built = []
    init = tl.Loop.__init__

    def counted(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(type(self).__name__)

    monkeypatch.setattr(tl.Loop, "__init__", counted)
    return built


BAD = [
    ({**RECIPE, "trainlab_recipe": 2},
     "this recipe is of version 2; this trainlab reads version 1 (write it again with this trainlab's loop.recipe())"),
    ({k: v for k, v in RECIPE.items() if k != "trainlab_recipe"},
     'not a trainlab recipe: a recipe is a dict with "trainlab_recipe": 1, "data", "model" and "loop" '
     "(loop.recipe() writes one)"),
    ({**RECIPE, "data": {"name": "swirls"}},
     "the recipe's data names an unknown data maker 'swirls'; choose one of ['blobs', 'circles', 'digits', "
     "'linear', 'moons', 'sine', 'spiral'"),
    ({**RECIPE, "model": {"name": "resnet"}},
     "the recipe's model names an unknown model maker 'resnet'; choose one of ['cnn', 'mlp']"),
    ({**RECIPE, "data": {"name": "moons", "noise": -1}},
     "the recipe's data (moons): noise is the standard deviation of the added noise; pass a number 0 or above, "
     "like noise=0.1; got -1"),
    ({**RECIPE, "data": {"name": "moons", "noize": 0.1}},
     "the data maker 'moons': got an unexpected keyword argument 'noize' (it takes: n, noise, seed)"),
    ({**RECIPE, "model": {"name": "mlp", "hidden": 16}},
     "the recipe's model (mlp): hidden is a list of layer widths; for one hidden layer of 16 units pass "
     "hidden=[16] (or [] for no hidden layer)"),
    ({**RECIPE, "model": {"name": "mlp", "hidden": [4], "in_features": 3}},
     "the recipe's model gives ['in_features'], which the data decides; leave them out"),
    ({**RECIPE, "loop": {"learning_rate": 0.1}}, "the recipe's loop has unknown arguments ['learning_rate']"),
    ({**RECIPE, "loop": {"lr": -1}},
     "the recipe's loop: the learning rate must be a finite number above 0, like 0.01; got -1"),
    ({**RECIPE, "changes": [[3, "lr", 0.1], [1, "lr", 0.2]]},
     "the recipe's change #1 ('lr') is at step 1, before the change above it (step 3); changes are listed in the "
     "order they happened"),
    ({**RECIPE, "changes": [[3, "colour", "red"]]}, "the recipe's change #0 names 'colour', which nothing can change"),
    ({**RECIPE, "changes": [[3, "momentum", 1.5]]},
     "the recipe's change #0 (momentum): momentum is a number from 0 (none) to below 1, like 0.9; got 1.5"),
    ({**RECIPE, "steps": -3},
     "the recipe's steps is the step the run reached, a whole number 0 or more; got -3"),
]


@pytest.mark.parametrize("recipe, message", BAD, ids=[m[:30] for _, m in BAD])
def test_a_bad_recipe_is_refused_with_what_is_wrong_and_nothing_built(recipe, message, loops_built):
    for build in (tl.Loop.from_recipe, tl.replay):
        with pytest.raises(ValueError) as refused:
            build(copy.deepcopy(recipe))
        assert str(refused.value).startswith(message)
    assert loops_built == []


def test_shared_reads_only_a_file_next_to_the_notebook_and_checks_it(tmp_path):
    loop = tl.Loop.from_recipe(RECIPE)
    steps(loop, 3)
    tl.recipe.write(loop.recipe(), tmp_path / "run.trainlab.json")
    assert tl.recipe.shared("?recipe=run.trainlab.json", tmp_path) == loop.recipe()
    assert tl.recipe.shared("", tmp_path) is None and tl.recipe.shared("?other=1", tmp_path) is None
    with pytest.raises(ValueError, match=r"\?recipe= names a file next to the notebook"):
        tl.recipe.shared("?recipe=../secret.json", tmp_path)
    with pytest.raises(ValueError, match="cannot read the shared run 'gone.json'"):
        tl.recipe.shared("?recipe=gone.json", tmp_path)
    with pytest.raises(ValueError, match="this recipe is of version 9"):
        tl.recipe.write({**RECIPE, "trainlab_recipe": 9}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
