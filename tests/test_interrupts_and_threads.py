"""Ctrl-C and threads: an interrupted fit stops at a stage boundary and resumes exactly;
a loop owned by another thread refuses stage calls with LoopBusyError."""

from __future__ import annotations

import signal
import threading

import pytest
import torch

import trainlab as tl
from loops import regression_loop


make_loop = regression_loop  # a tiny regression loop on shuffled data, with dropout (tests/loops.py)


def params(loop: tl.Loop) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loop.model.parameters()]


def assert_params_equal(a, b) -> None:
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def reference(steps: int) -> tl.Loop:
    loop = make_loop()
    for _ in range(steps):
        loop.step()
    return loop


def interrupt_at(loop: tl.Loop, event: str, call: int) -> None:
    """Raise KeyboardInterrupt from an event handler the ``call``-th time ``event`` fires."""
    count = [0]

    def handler(lp):
        count[0] += 1
        if count[0] == call:
            raise KeyboardInterrupt

    loop.on(event, handler)


# --- KeyboardInterrupt from inside fit/run_epoch ---------------------------------------------------


@pytest.mark.parametrize("event", ["before_forward", "after_forward", "after_loss", "after_backward",
                                   "before_update", "after_update"])
def test_an_interrupted_fit_is_consistent_and_resumes_exactly(event):
    loop = make_loop()
    interrupt_at(loop, event, call=6)  # during epoch 1 (4 batches per epoch)
    with pytest.raises(KeyboardInterrupt):
        loop.fit(epochs=3)
    assert loop.next_stage in tl.STAGES
    assert len(loop.history) == loop.state.step
    done = loop.state.step
    assert done in (5, 6)
    # the weights are exactly those after `done` updates
    assert_params_equal(params(loop), params(reference(done)))
    # fit again: 3 epochs in all, as if never interrupted
    loop.fit(epochs=3 - loop.state.epoch)
    full = make_loop()
    full.fit(epochs=3)
    assert loop.state.step == full.state.step == 12 and loop.state.epoch == 3
    assert_params_equal(params(loop), params(full))
    assert loop.history.steps["loss"].tolist() == full.history.steps["loss"].tolist()
    assert loop.history.history["loss"] == full.history.history["loss"]


@pytest.mark.parametrize("event", ["after_update", "after_epoch"])
def test_an_interrupt_at_the_end_of_an_epoch_still_ends_that_epoch_once(event):
    """Interrupted right at an epoch's last update: the epoch is ended (and announced) exactly once."""
    loop = make_loop()
    ended: list[int] = []
    loop.on("after_epoch", lambda lp: ended.append(lp.state.epoch))
    interrupt_at(loop, event, call=4 if event == "after_update" else 1)  # step 4 ends epoch 0
    with pytest.raises(KeyboardInterrupt):
        loop.fit(epochs=3)
    assert loop.state.step == 4 and loop.state.epoch == 1
    assert len(loop.history) == 4 and loop.history.epoch == [0]
    loop.fit(epochs=2)
    assert loop.state.epoch == 3 and loop.history.epoch == [0, 1, 2]
    assert ended == [1, 2, 3]  # after_epoch fired once per epoch, the interrupted one included


def test_an_interrupt_inside_the_optimizer_step_leaves_no_half_update():
    loop = make_loop()
    count = [0]

    def hook(optimizer, args, kwargs):  # runs after Adam has moved the weights
        count[0] += 1
        if count[0] == 3:
            raise KeyboardInterrupt

    loop.optimizer.register_step_post_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        loop.run_epoch()
    assert loop.state.step == 2 and len(loop.history) == 2
    assert loop.next_stage == "update"  # the batch is still open; its gradients are there
    assert_params_equal(params(loop), params(reference(2)))
    loop.run_epoch()
    loop.run_epoch()
    ref = reference(8)
    assert_params_equal(params(loop), params(ref))
    assert loop.history.steps["loss"].tolist() == ref.history.steps["loss"].tolist()


def test_ctrl_c_during_fit_stops_at_the_next_batch_boundary():
    loop = make_loop()
    count = [0]

    def press_ctrl_c(lp):
        count[0] += 1
        if count[0] == 6:
            signal.raise_signal(signal.SIGINT)

    handle = loop.on("after_backward", press_ctrl_c)
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        loop.fit(epochs=3)
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    assert loop.state.step == 6  # the sixth batch was finished, then it stopped
    assert loop.next_stage == "forward" and len(loop.history) == 6
    assert_params_equal(params(loop), params(reference(6)))
    handle.remove()
    loop.fit(epochs=2)
    full = make_loop()
    full.fit(epochs=3)
    assert_params_equal(params(loop), params(full))


# --- threads --------------------------------------------------------------------------------------


class Holder:
    """A thread that owns the loop (``with loop.hold():``) until released."""

    def __init__(self, loop: tl.Loop) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(loop,), daemon=True)

    def _run(self, loop: tl.Loop) -> None:
        try:
            with loop.hold():
                self.holding.set()
                self.release.wait(30)
        except BaseException as error:  # pragma: no cover - reported by the test
            self.error = error
            self.holding.set()

    def __enter__(self) -> "Holder":
        self.thread.start()
        assert self.holding.wait(30)
        assert self.error is None
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("stages_done", [0, 1, 3])
def test_stage_calls_from_another_thread_raise_loop_busy_and_change_nothing(tmp_path, stages_done):
    loop = make_loop()
    loop.step()
    snap = loop.snapshot()
    loop.step()
    for stage in tl.STAGES[:stages_done]:
        getattr(loop, stage)()
    stage_due = loop.next_stage
    before = params(loop)
    calls = {
        "forward": loop.forward, "loss": loop.loss, "backward": loop.backward, "update": loop.update,
        "step": loop.step, "run_epoch": loop.run_epoch, "fit": lambda: loop.fit(1),
        "evaluate": lambda: loop.evaluate(loop.train_data), "snapshot": loop.snapshot,
        "restore": lambda: loop.restore(snap), "rewind": lambda: loop.rewind(1), "reset": loop.reset,
        "save": lambda: loop.save(tmp_path / "x.pt"), "load": lambda: loop.load(tmp_path / "x.pt"),
        "set_optimizer": lambda: loop.set_optimizer("sgd"),
    }
    with Holder(loop):
        for name, call in calls.items():
            with pytest.raises(tl.LoopBusyError) as info:
                call()
            assert "pause" in str(info.value).lower(), name
        assert (loop.state.step, loop.next_stage, len(loop.history)) == (2, stage_due, 2)
        assert_params_equal(params(loop), before)
        assert not (tmp_path / "x.pt").exists()
        assert loop.optimizer_name == "adam" and not loop.history.changes
    # once the other thread lets go, the loop works again from where it was
    loop.step()
    assert loop.state.step == 3 and loop.next_stage == "forward"


def test_a_thread_is_refused_while_the_main_thread_holds_the_loop():
    loop = make_loop()
    errors: list[BaseException] = []

    def worker():
        try:
            loop.step()
        except BaseException as error:
            errors.append(error)

    with loop.hold():
        loop.step()  # the holder itself may call stages (the lock is re-entrant)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], tl.LoopBusyError)
    assert loop.state.step == 1
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert len(errors) == 1 and loop.state.step == 2  # free again: the worker's step ran


def test_a_background_fit_refuses_cell_calls_until_it_is_done():
    loop = make_loop()
    paused, resume = threading.Event(), threading.Event()

    def pause_once(lp):
        if lp.state.step == 3 and not paused.is_set():
            paused.set()
            resume.wait(30)

    loop.on("after_update", pause_once)
    errors: list[BaseException] = []

    def play():
        try:
            loop.fit(epochs=2)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    assert paused.wait(30)
    for call in (loop.forward, loop.step, loop.run_epoch):
        with pytest.raises(tl.LoopBusyError):
            call()
    assert loop.state.step == 3
    resume.set()
    thread.join(30)
    assert not thread.is_alive() and errors == []
    assert loop.state.epoch == 2 and loop.state.step == 8 and len(loop.history) == 8
    ref = make_loop()
    ref.fit(epochs=2)
    assert_params_equal(params(loop), params(ref))


def test_torch_threads_come_back_when_the_last_loop_that_set_them_is_gone():
    import gc

    gc.collect()  # loops of earlier tests that only a collection frees (cycles through widgets) go first
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X, y = tl.datasets.moons(n=40, seed=0)
        loops = [tl.Loop(tl.models.mlp(2, [4], 2), (X, y), "cross_entropy", threads=1) for _ in range(2)]
        assert torch.get_num_threads() == 1
        loops.pop()
        gc.collect()
        assert torch.get_num_threads() == 1  # one loop still wants a single thread
        loops.clear()
        gc.collect()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("call", ["step", "update"])
def test_a_real_ctrl_c_while_a_step_commits_finishes_the_step_first(call):
    X, y = tl.datasets.moons(n=40, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [4], 2, seed=0), (X, y), "cross_entropy", batch_size=8)
    loop.step()
    note_update = loop._time.keyframes.note_update

    def interrupted_note(skipped):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C lands inside the commit
        note_update(skipped)

    loop._time.keyframes.note_update = interrupted_note
    if call == "update":
        loop.forward(); loop.loss(); loop.backward()
    with pytest.raises(KeyboardInterrupt, match="the step was finished first"):
        getattr(loop, call)()
    loop._time.keyframes.note_update = note_update
    assert loop.state.step == 2 and len(loop.history) == 2 and loop.next_stage == "forward"
    assert loop.rewind_depth == 2 and loop.last_log["status"] == "updated"
    loop.step()  # and the loop goes on
    assert loop.state.step == 3
