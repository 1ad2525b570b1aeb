"""Checkpoints: save/load continue a run exactly; bad files raise CheckpointError and change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl
from loops import regression_loop
from trees import assert_tree_equal, clone_tree
import trainlab.checkpoint

ROOT = Path(__file__).resolve().parents[1]


make_loop = regression_loop  # a tiny regression loop on shuffled data, with dropout (tests/loops.py)






def fingerprint(loop: tl.Loop) -> dict:
    """Everything a failed load must leave alone."""
    return {
        "params": [p.detach().clone() for p in loop.model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in loop.model.parameters()],
        "optimizer": clone_tree(loop.optimizer.state_dict()),
        "optimizer_object": id(loop.optimizer),
        "state": (loop.state.epoch, loop.state.step, loop.state.skipped),
        "next_stage": loop.next_stage,
        "batch": None if loop.batch is None else clone_tree(loop.batch),
        "history_len": len(loop.history),
        "history_loss": loop.history.steps["loss"].copy(),
        "epochs": clone_tree(loop.history.history),
        "branches": len(loop.history.branches),
        "hyper": (loop.lr, loop.batch_size),
        "progress": loop.epoch_progress,
    }


def assert_unchanged(loop: tl.Loop, before: dict) -> None:
    after = fingerprint(loop)
    assert after["state"] == before["state"]
    assert after["next_stage"] == before["next_stage"]
    assert after["history_len"] == before["history_len"]
    np.testing.assert_array_equal(after["history_loss"], before["history_loss"])
    assert after["epochs"] == before["epochs"]
    assert after["branches"] == before["branches"]
    assert after["hyper"] == before["hyper"]
    assert after["progress"] == before["progress"]
    assert after["optimizer_object"] == before["optimizer_object"]
    assert_tree_equal(after["params"], before["params"])
    assert_tree_equal(after["optimizer"], before["optimizer"])
    assert_tree_equal(after["batch"], before["batch"])
    assert len(after["grads"]) == len(before["grads"])
    for g1, g0 in zip(after["grads"], before["grads"]):
        assert (g1 is None) == (g0 is None)
        if g0 is not None:
            assert torch.equal(g1, g0)


def run(loop: tl.Loop, k: int) -> tuple[list[float], list[torch.Tensor]]:
    losses = [loop.step()["loss"] for _ in range(k)]
    return losses, [p.detach().clone() for p in loop.model.parameters()]


# --- round trips ---------------------------------------------------------------------------


def test_save_then_load_continues_the_same_trajectory(tmp_path):
    path = tmp_path / "run.pt"
    loop = make_loop("adam")
    for _ in range(3):
        loop.step()
    loop.batch_size = 5
    loop.step()  # step 4 takes the last 2 samples: epoch 0 ends
    loop.step()  # step 5: the first 5 samples of epoch 1; saved mid-epoch
    saved_losses = loop.history.steps["loss"].copy()
    loop.save(path)
    assert path.is_file()
    first = run(loop, 8)  # crosses the next epoch boundary
    loop.load(path)
    assert (loop.state.step, loop.state.epoch, len(loop.history)) == (5, 1, 5)
    assert loop.batch_size == 5 and loop.next_stage == "forward"
    np.testing.assert_array_equal(loop.history.steps["loss"], saved_losses)
    torch.rand(100)  # the global random stream must not matter
    second = run(loop, 8)
    assert first[0] == second[0]
    assert_tree_equal(first[1], second[1])


def test_a_fresh_identical_loop_continues_from_a_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    loop = make_loop("adam", lr=0.02)
    for _ in range(6):
        loop.step()
    loop.save(path)
    expected = run(loop, 7)
    fresh = make_loop("adam")  # note: built with another lr; the checkpoint brings its own
    fresh.load(path)
    assert (fresh.state.step, fresh.state.epoch) == (6, 1)
    assert fresh.lr == pytest.approx(0.02)
    np.testing.assert_array_equal(fresh.history.steps["loss"], loop.history.steps["loss"][:6])
    assert fresh.history.history["loss"] == loop.history.history["loss"][:1]
    got = run(fresh, 7)
    assert got[0] == expected[0]
    assert_tree_equal(got[1], expected[1])
    assert_tree_equal(fresh.optimizer.state_dict(), loop.optimizer.state_dict())


def test_a_mid_batch_save_is_the_start_of_that_batch(tmp_path):
    path = tmp_path / "mid.pt"
    loop = make_loop("sgd", momentum=0.9)
    loop.step()
    loop.forward()
    batch = clone_tree(loop.batch)
    loop.loss()
    loop.save(path)
    expected = run(loop, 5)
    loop.load(path)
    assert loop.next_stage == "forward" and loop.state.step == 1
    seen = []
    loop.on("after_forward", lambda lp: seen.append(clone_tree(lp.batch)))
    got = run(loop, 5)
    assert_tree_equal(seen[0], batch)
    assert got[0] == expected[0]
    assert_tree_equal(got[1], expected[1])


def test_a_checkpoint_is_a_weights_only_file(tmp_path):
    path = tmp_path / "run.pt"
    loop = make_loop("adam")
    loop.step()
    loop.save(path)
    payload = torch.load(path, weights_only=True)
    assert isinstance(payload, dict) and payload["format"] == trainlab.checkpoint.FORMAT
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temp file left behind


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    path = tmp_path / "run.pt"
    loop = make_loop("adam")
    loop.save(path)
    loop.step()
    loop.step()
    loop.save(path)
    other = make_loop("adam")
    other.load(path)
    assert other.state.step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


# --- bad files: CheckpointError, and the loop stays exactly as it was -------------------------


def _good_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    source = make_loop("adam")
    for _ in range(2):
        source.step()
    source.save(path)
    return path


def _truncated(tmp_path: Path) -> Path:
    data = _good_checkpoint(tmp_path).read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _extra_key(tmp_path: Path) -> Path:
    payload = torch.load(_good_checkpoint(tmp_path), weights_only=True)
    payload["extra"] = torch.zeros(3)
    path = tmp_path / "extra.pt"
    torch.save(payload, path)
    return path


def _extra_state_key(tmp_path: Path) -> Path:
    payload = torch.load(_good_checkpoint(tmp_path), weights_only=True)
    payload["state"]["surprise"] = 1
    path = tmp_path / "extra_state.pt"
    torch.save(payload, path)
    return path


def _foreign_torch_file(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.pt"
    torch.save({"model": nn.Linear(4, 8).state_dict(), "epoch": 3}, path)
    return path


def _plain_state_dict(tmp_path: Path) -> Path:
    path = tmp_path / "state_dict.pt"
    torch.save(make_loop().model.state_dict(), path)
    return path


def _pickled_object(tmp_path: Path) -> Path:
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(4, 8), path)  # a whole pickled module: weights_only refuses it
    return path


def _other_architecture(tmp_path: Path) -> Path:
    path = tmp_path / "other.pt"
    other = make_loop("adam", out=2)  # same layer names, another output size
    other.step()
    other.save(path)
    return path


def _other_layers(tmp_path: Path) -> Path:
    path = tmp_path / "layers.pt"
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    other = tl.Loop(nn.Linear(4, 1), (torch.randn(20, 4, generator=g), torch.randn(20, 1, generator=g)),
                    "mse", "adam", batch_size=6)
    other.step()
    other.save(path)
    return path


def _another_training_set(tmp_path: Path) -> Path:
    path = tmp_path / "data.pt"
    other = make_loop("adam", n=30)  # shuffled: its epoch order covers 30 samples, not 20
    other.step()
    other.save(path)
    return path


def _history_that_does_not_fit(tmp_path: Path) -> Path:
    payload = torch.load(_good_checkpoint(tmp_path), weights_only=True)
    payload["history"]["scalars"]["loss"] = payload["history"]["scalars"]["loss"][:1]  # 1 row of 2
    path = tmp_path / "history.pt"
    torch.save(payload, path)
    return path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nothing_here.pt"


BAD_FILES = [_truncated, _random_bytes, _extra_key, _extra_state_key, _foreign_torch_file, _plain_state_dict,
             _pickled_object, _other_architecture, _other_layers, _another_training_set,
             _history_that_does_not_fit, _missing]


@pytest.mark.parametrize("stages_done", [0, 3], ids=["at_a_batch_boundary", "mid_batch"])
@pytest.mark.parametrize("bad_file", BAD_FILES, ids=[f.__name__.lstrip("_") for f in BAD_FILES])
def test_a_bad_checkpoint_raises_and_leaves_the_loop_as_it_was(tmp_path, bad_file, stages_done):
    path = bad_file(tmp_path)
    loop = make_loop("adam")
    for _ in range(3):
        loop.step()
    for stage in ("forward", "loss", "backward")[:stages_done]:
        getattr(loop, stage)()
    before = fingerprint(loop)
    with pytest.raises(tl.CheckpointError):
        loop.load(path)
    assert_unchanged(loop, before)
    # and it still trains as if nothing had happened
    twin = make_loop("adam")
    for _ in range(3):
        twin.step()
    assert run(loop, 3)[0] == run(twin, 3)[0]


def test_a_checkpoint_error_is_a_value_error_that_names_the_file(tmp_path):
    path = _random_bytes(tmp_path)
    loop = make_loop()
    with pytest.raises(ValueError, match="random.pt"):
        loop.load(path)


def test_a_checkpoint_of_another_optimizer_is_refused_or_fully_usable(tmp_path):
    """Loading an SGD checkpoint into an Adam loop must never leave a half-working optimizer."""
    path = tmp_path / "sgd.pt"
    sgd = make_loop("sgd", momentum=0.9)
    for _ in range(2):
        sgd.step()
    sgd.save(path)
    expected = run(sgd, 3)
    loop = make_loop("adam")
    loop.step()
    before = fingerprint(loop)
    try:
        loop.load(path)
    except tl.CheckpointError:
        assert_unchanged(loop, before)
    else:  # accepted: then it continues exactly as the run that saved it
        got = run(loop, 3)
        assert got[0] == expected[0]
        assert_tree_equal(got[1], expected[1])


def object_loop(kind: type | str) -> tl.Loop:
    """A loop given an optimizer object of class ``kind`` (or a name), stepped once."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    g = torch.Generator().manual_seed(1234)
    X, y = torch.randn(20, 4, generator=g), torch.randn(20, 1, generator=g)
    optimizer = kind if isinstance(kind, str) else kind(model.parameters(), lr=0.01)
    loop = tl.Loop(model, (X, y), "mse", optimizer=optimizer, lr=0.01, batch_size=6)
    loop.step()
    return loop


@pytest.mark.parametrize("stages_done", [0, 2])
@pytest.mark.parametrize("saved_by, loaded_by, why", [
    (torch.optim.Adam, torch.optim.SGD, "another kind of optimizer"),
    (torch.optim.SGD, torch.optim.Adam, "another kind of optimizer"),
    (torch.optim.SGD, "sgd", "optimizer object"),
])
def test_a_checkpoint_of_another_optimizer_object_is_refused(tmp_path, stages_done, saved_by, loaded_by, why):
    object_loop(saved_by).save(tmp_path / "other.pt")
    loop = object_loop(loaded_by)
    for stage in tl.STAGES[:stages_done]:
        getattr(loop, stage)()
    before = fingerprint(loop)
    with pytest.raises(tl.CheckpointError, match=why):
        loop.load(tmp_path / "other.pt")
    assert_unchanged(loop, before)
    steps = loop.state.step
    loop.step()  # and it still trains
    assert loop.state.step == steps + 1


# --- interrupted saves ---------------------------------------------------------------------------


def _write_old_checkpoint(tmp_path: Path) -> tuple[Path, bytes, tl.Loop]:
    path = tmp_path / "run.pt"
    loop = make_loop("adam")
    loop.step()
    loop.save(path)
    for _ in range(3):
        loop.step()
    return path, path.read_bytes(), loop


def test_a_failed_rename_leaves_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path, old, loop = _write_old_checkpoint(tmp_path)

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(trainlab.checkpoint.os, "replace", broken_replace)
    before = fingerprint(loop)
    with pytest.raises(OSError):
        loop.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert_unchanged(loop, before)
    loop.load(path)  # the old checkpoint is intact and loads
    assert loop.state.step == 1


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_a_save_interrupted_while_writing_leaves_no_half_file(tmp_path, monkeypatch, error):
    path, old, loop = _write_old_checkpoint(tmp_path)
    real_save = torch.save

    def half_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the temp file, then it dies
        raise error("interrupted (simulated)")

    monkeypatch.setattr(trainlab.checkpoint.torch, "save", half_save)
    with pytest.raises(error):
        loop.save(path)
    monkeypatch.setattr(trainlab.checkpoint.torch, "save", real_save)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    # a first save that fails leaves nothing at all
    new_path = tmp_path / "new.pt"
    monkeypatch.setattr(trainlab.checkpoint.torch, "save", half_save)
    with pytest.raises(error):
        loop.save(new_path)
    assert not new_path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_a_save_killed_before_the_rename_leaves_the_old_checkpoint_intact(tmp_path):
    path, old, _ = _write_old_checkpoint(tmp_path)
    script = f"""
import os, signal, sys
import torch
from torch import nn
import trainlab as tl
import trainlab.checkpoint

def die(src, dst):
    assert os.path.getsize(src) > 0  # the temp file was written in full
    os.kill(os.getpid(), signal.SIGKILL)

trainlab.checkpoint.os.replace = die
torch.manual_seed(0)
loop = tl.Loop(nn.Linear(4, 1), (torch.randn(20, 4), torch.randn(20, 1)), "mse", "sgd")
loop.step()
loop.save({str(path)!r})
print("not killed")
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert path.read_bytes() == old  # never a half file at the target
    loop = make_loop("adam")
    loop.load(path)
    assert loop.state.step == 1
    # The killed save left its temp file; the next save to the same path cleans it up.
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    loop.save(path)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_an_infinite_setting_is_kept_but_a_nan_one_is_refused(tmp_path):
    loop = object_loop(torch.optim.SGD)
    loop.optimizer.param_groups[0]["max_step"] = float("inf")  # a setting an optimizer may mean as "no limit"
    loop.save(tmp_path / "inf.pt")
    loop.step()
    loop.load(tmp_path / "inf.pt")
    assert loop.optimizer.param_groups[0]["max_step"] == float("inf")
    loop.optimizer.param_groups[0]["max_step"] = float("nan")
    loop.save(tmp_path / "nan.pt")
    loop.optimizer.param_groups[0]["max_step"] = 1.0
    before = fingerprint(loop)
    with pytest.raises(tl.CheckpointError, match="'max_step'"):
        loop.load(tmp_path / "nan.pt")
    assert_unchanged(loop, before)


def test_numpy_numbers_in_optimizer_options_still_give_a_loadable_checkpoint(tmp_path):
    loop = make_loop("adam", optimizer_options={"betas": (np.float64(0.9), np.float32(0.99))})
    loop.step()
    loop.save(tmp_path / "numpy.pt")
    loop.load(tmp_path / "numpy.pt")
    assert loop.optimizer.param_groups[0]["betas"] == (0.9, pytest.approx(0.99))


def test_a_checkpoint_saved_by_older_code_still_loads_and_continues_the_same():
    # tests/data/checkpoint_v1.pt was written by trainlab before the checkpoint got its type and
    # upgrade function (see tests/data/make_checkpoint_v1.py); the run it holds must go on unchanged.
    import json
    import importlib.util
    data = ROOT / "tests" / "data"
    spec = importlib.util.spec_from_file_location("make_checkpoint_v1", data / "make_checkpoint_v1.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    expected = json.loads((data / "checkpoint_v1.json").read_text())
    loop = maker.make_loop()
    loop.load(data / "checkpoint_v1.pt")
    assert (loop.state.step, loop.state.epoch, loop.lr) == (expected["step"], expected["epoch"], expected["lr"])
    assert loop.history.history["loss"] == expected["history_loss"]
    assert loop.history.history["val_loss"] == expected["val_loss"]
    assert [loop.step()["loss"] for _ in range(4)] == expected["following_losses"]
