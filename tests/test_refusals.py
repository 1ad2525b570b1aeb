"""Bad input is refused with a clear ValueError (CheckpointError for files) and changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import trainlab as tl
import trainlab.checkpoint
from trainlab.options import check_optimizer_options, check_weight_decay
from trees import assert_tree_equal, clone_tree

X, Y = tl.datasets.moons(n=60, seed=0)


def make_loop(**options) -> tl.Loop:
    """A tiny classification loop; the same arguments always build the same loop."""
    options.setdefault("lr", 0.1)
    return tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, Y), "cross_entropy", batch_size=8, **options)


def short(value) -> str:
    """A test id (10**400 has 401 digits)."""
    return repr(value)[:24]


def fingerprint(loop: tl.Loop) -> dict:
    """What a refused call must leave alone."""
    return {
        "params": [p.detach().clone() for p in loop.model.parameters()],
        "optimizer": clone_tree(loop.optimizer.state_dict()),
        "optimizer_object": id(loop.optimizer),
        "counters": (loop.state.epoch, loop.state.step),
        "next_stage": loop.next_stage,
        "history_len": len(loop.history),
        "changes": list(loop.history.changes),
        "hyper": (loop.lr, loop.batch_size),
    }


def assert_unchanged(loop: tl.Loop, before: dict) -> None:
    assert_tree_equal(fingerprint(loop), before)


# --- 1. optimizer options -------------------------------------------------------------------


@pytest.mark.parametrize("options, name", [
    ({"momentum": math.nan}, "momentum"),
    ({"momentum": math.inf}, "momentum"),
    ({"weight_decay": math.nan}, "weight_decay"),
    ({"weight_decay": math.inf}, "weight_decay"),
    ({"optimizer_options": {"dampening": math.nan}}, "dampening"),
    ({"optimizer_options": {"momentum": True}}, "momentum"),
    ({"optimizer": "adam", "optimizer_options": {"betas": (math.nan, 0.999)}}, "betas"),
    ({"optimizer": "rmsprop", "optimizer_options": {"alpha": math.inf}}, "alpha"),
], ids=repr)
def test_non_finite_or_bool_optimizer_options_are_refused_at_build(options, name):
    with pytest.raises(ValueError, match=name):
        make_loop(**options)


def test_set_optimizer_refuses_a_nan_option_and_changes_nothing():
    loop = make_loop()
    loop.step()
    before = fingerprint(loop)
    with pytest.raises(ValueError, match="momentum must be a finite number"):
        loop.set_optimizer("sgd", momentum=math.nan, dampening=0.0)
    assert_unchanged(loop, before)


def test_lr_among_optimizer_options_says_where_the_lr_goes():
    with pytest.raises(ValueError, match=r"pass lr= to the Loop.*loop\.lr"):
        make_loop(optimizer_options={"lr": 0.5})
    loop = make_loop()
    loop.step()
    before = fingerprint(loop)
    with pytest.raises(ValueError, match=r"loop\.lr = "):
        loop.set_optimizer("sgd", lr=0.5)
    assert_unchanged(loop, before)


def test_check_optimizer_options_returns_a_dict_or_refuses():
    options = {"momentum": 0.9}
    assert check_optimizer_options(None) == {}
    assert check_optimizer_options(options) == options and check_optimizer_options(options) is not options
    with pytest.raises(ValueError, match="optimizer_options must be a dict"):
        check_optimizer_options([1, 2])
    with pytest.raises(ValueError, match="option names"):
        check_optimizer_options({1: 0.9})


def test_numpy_option_values_become_floats_so_checkpoints_load(tmp_path):
    loop = make_loop(momentum=np.float32(0.5), weight_decay=np.float64(1e-4))
    group = loop.optimizer.param_groups[0]
    assert type(group["momentum"]) is float and type(group["weight_decay"]) is float
    loop.step()
    loop.save(tmp_path / "run.pt")
    make_loop(momentum=0.5, weight_decay=1e-4).load(tmp_path / "run.pt")  # weights_only=True refuses numpy scalars


# --- 2. learning rate and weight decay values --------------------------------------------------


@pytest.mark.parametrize("value", [np.array([0.1]), torch.tensor([0.1]), 10**400, -10**400, np.True_,
                                   torch.tensor(True), np.complex64(0.1)], ids=short)
def test_lr_values_that_are_not_one_real_number_are_a_value_error(value):
    loop = make_loop()
    loop.step()
    before = fingerprint(loop)
    with pytest.raises(ValueError, match="learning rate"):
        loop.lr = value
    assert_unchanged(loop, before)


@pytest.mark.parametrize("value", [np.float32(0.05), np.float64(0.05), np.array(0.05), torch.tensor(0.05), 1])
def test_lr_takes_numpy_and_0d_numbers_as_plain_floats(value):
    loop = make_loop()
    loop.lr = value
    assert type(loop.lr) is float and loop.lr == float(value)


@pytest.mark.parametrize("value", [np.float32(1e-4), np.float64(1e-4), np.array(1e-4), torch.tensor(1e-4), 0, 1e-4])
def test_check_weight_decay_takes_the_numbers_check_lr_takes(value):
    assert type(check_weight_decay(value)) is float and check_weight_decay(value) == float(value)


@pytest.mark.parametrize("value", [-1e-4, math.nan, math.inf, 10**400, True, np.True_, "1e-4", None,
                                   np.array([1e-4]), [1e-4], 1j], ids=short)
def test_check_weight_decay_refuses_with_a_value_error(value):
    with pytest.raises(ValueError, match="weight_decay must be a finite number, 0 or more"):
        check_weight_decay(value)


# --- 3. Dataset items ----------------------------------------------------------------------------


class Items(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def good_items(n=20):
    return [(X[i], Y[i]) for i in range(n)]


@pytest.mark.parametrize("index, bad, phrase", [
    (7, (torch.zeros(3), Y[0]), r"item 7 has input shape \(3,\).*item 0 has \(2,\)"),
    (19, (X[0], torch.tensor([0, 1])), r"item 19 has .*target shape \(2,\)"),
    (19, X[0], "item 19 is a Tensor"),
    (0, (X[0], Y[0], Y[0]), "item 0 is a tuple of length 3"),
    (5, ("a", Y[0]), "item 5 is not a pair of numbers"),
], ids=["input shape", "target shape", "not a pair", "triple", "not numbers"])
def test_a_bad_dataset_item_is_named(index, bad, phrase):
    items = good_items()
    items[index] = bad
    with pytest.raises(ValueError, match=phrase):
        make_loop_on(Items(items))


def make_loop_on(data) -> tl.Loop:
    return tl.Loop(tl.models.mlp(2, [8], 2, seed=0), data, "cross_entropy")


def test_a_good_dataset_still_stacks():
    loop = make_loop_on(Items(good_items()))
    assert loop.n_train == 20


# --- 4. callbacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("min_delta", [math.nan, math.inf, -0.1, "0.1", None, True], ids=repr)
def test_early_stopping_refuses_a_bad_min_delta(min_delta):
    with pytest.raises(ValueError, match="min_delta must be a finite number"):
        tl.EarlyStopping(min_delta=min_delta)


@pytest.mark.parametrize("make", [tl.EarlyStopping, tl.StopAtTarget])
@pytest.mark.parametrize("monitor", [None, 3, ""])
def test_callbacks_refuse_a_monitor_that_is_not_a_name(make, monitor):
    with pytest.raises(ValueError, match="monitors a metric by name"):
        make(monitor=monitor)


def test_callbacks_take_numpy_numbers():
    assert tl.EarlyStopping(min_delta=np.float32(0.5)).min_delta == 0.5
    assert tl.StopAtTarget(target=np.float64(0.9)).target == 0.9


# --- 5. hand-edited checkpoints ------------------------------------------------------------------


def crafted(tmp_path, edit, source=None) -> str:
    """A checkpoint of a loop one epoch and one step in, edited by ``edit(state)``."""
    if source is None:
        source = make_loop()
        source.fit(1)
        source.step()
    source.save(tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    edit(payload["state"])
    torch.save(payload, tmp_path / "bad.pt")
    return str(tmp_path / "bad.pt")


def set_order(order):
    return lambda state: state["sampler"].__setitem__("order", order)


def set_group(key, value):
    return lambda state: state["optimizer"]["param_groups"][0].__setitem__(key, value)


@pytest.mark.parametrize("edit, phrase", [
    (set_order(torch.full((60,), 10**6)), "sample order"),
    (set_order(torch.arange(60.0)), "sample order"),
    (set_order(torch.zeros(60, dtype=torch.int64)), "sample order"),
    (set_order(torch.arange(59)), "another training set"),
    (set_group("lr", "fast"), "learning rate"),
    (set_group("lr", math.nan), "learning rate"),
    (set_group("lr", -0.1), "learning rate"),
    (set_group("lr", math.inf), "learning rate"),
    (set_group("momentum", math.nan), "'momentum'"),
], ids=["order out of range", "float order", "repeated index", "short order", "lr a string", "lr nan",
        "lr negative", "lr inf", "momentum nan"])
def test_a_hand_edited_checkpoint_is_refused_and_changes_nothing(tmp_path, edit, phrase):
    path = crafted(tmp_path, edit)
    loop = make_loop()
    loop.step()
    before = fingerprint(loop)
    with pytest.raises(tl.CheckpointError, match=phrase):
        loop.load(path)
    assert_unchanged(loop, before)


def test_a_float64_checkpoint_says_the_dtype_differs(tmp_path):
    double = tl.Loop(tl.models.mlp(2, [8], 2, seed=0).double(), (X.double(), Y), "cross_entropy")
    double.save(tmp_path / "double.pt")
    loop = make_loop()
    before = fingerprint(loop)
    with pytest.raises(tl.CheckpointError, match=r"torch\.float64 but the model's is torch\.float32"):
        loop.load(tmp_path / "double.pt")
    assert_unchanged(loop, before)


def saved_state(tmp_path, loop) -> dict:
    loop.save(tmp_path / "run.pt")
    return trainlab.checkpoint.read(tmp_path / "run.pt")["state"]


def test_check_position_refuses_a_shuffled_order_for_an_unshuffled_loop(tmp_path):
    shuffled = make_loop()
    shuffled.step()
    state = saved_state(tmp_path, shuffled)
    trainlab.checkpoint.check_position(state, 60)  # without shuffle=: as before
    trainlab.checkpoint.check_position(state, 60, shuffle=True)
    with pytest.raises(tl.CheckpointError, match="shuffle=True"):
        trainlab.checkpoint.check_position(state, 60, shuffle=False)


def test_check_position_refuses_an_unshuffled_epoch_for_a_shuffling_loop(tmp_path):
    unshuffled = make_loop(shuffle=False)
    fresh = saved_state(tmp_path, unshuffled)
    trainlab.checkpoint.check_position(fresh, 60, shuffle=True)  # no epoch begun: nothing to continue
    unshuffled.step()
    state = saved_state(tmp_path, unshuffled)
    trainlab.checkpoint.check_position(state, 60)
    trainlab.checkpoint.check_position(state, 60, shuffle=False)
    with pytest.raises(tl.CheckpointError, match="shuffle=False"):
        trainlab.checkpoint.check_position(state, 60, shuffle=True)


# --- 6. saving to a missing folder ----------------------------------------------------------------


def test_save_to_a_missing_folder_names_the_folder(tmp_path):
    loop = make_loop()
    loop.step()
    before = fingerprint(loop)
    with pytest.raises(ValueError, match=r"the folder '.*no_such_dir' does not exist; create it first"):
        loop.save(tmp_path / "no_such_dir" / "run.pt")
    assert not (tmp_path / "no_such_dir").exists()
    assert_unchanged(loop, before)


def test_save_to_a_folder_asks_for_a_file_name(tmp_path):
    with pytest.raises(ValueError, match="it is a folder; give a file name"):
        make_loop().save(tmp_path)
    assert list(tmp_path.iterdir()) == []
