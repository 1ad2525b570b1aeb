"""Early stopping, stop-at-target and loop.stop()."""

import pytest

import trainlab as tl


def overfitting_loop():
    """Few noisy samples and a big net: validation loss soon rises."""
    X, y = tl.datasets.moons(n=60, noise=0.45, seed=2)
    model = tl.models.mlp(2, [128, 128], 2, seed=0)
    return tl.Loop(model, (X, y), "cross_entropy", "adam", lr=0.02, batch_size=16, validation_split=0.5, seed=0)


def test_early_stopping_stops_and_restores_the_best_weights():
    loop = overfitting_loop()
    stopper = tl.EarlyStopping(monitor="val_loss", patience=3, restore_best=True)
    loop.fit(epochs=200, callbacks=[stopper])
    val = list(loop.history.history["val_loss"])
    assert loop.state.epoch < 200 and stopper.stopped_epoch == loop.state.epoch - 1
    best = min(range(len(val)), key=val.__getitem__)
    assert stopper.best_epoch == best and len(val) == best + 1 + 3  # patience 3: 3 epochs without progress
    assert "early stopping" in loop.stop_reason
    # The weights in the model now are the best epoch's, not the last one's.
    assert loop.evaluate()["loss"] == pytest.approx(val[best], rel=1e-6)
    # fit(callbacks=...) detached the stopper: training on goes on without it.
    loop.fit(epochs=2)
    assert len(loop.history.history["val_loss"]) == len(val) + 2


def test_early_stopping_without_restore_keeps_the_last_weights():
    loop = overfitting_loop()
    stopper = tl.EarlyStopping(patience=2, restore_best=False)
    loop.fit(epochs=200, callbacks=[stopper])
    assert loop.evaluate()["loss"] == pytest.approx(loop.history.history["val_loss"][-1], rel=1e-6)


def test_stop_at_target_stops_once_the_target_is_reached():
    X, y = tl.datasets.blobs(n=300, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16], 3, seed=0), (X, y), "cross_entropy", lr=0.1, validation_split=0.2)
    target = tl.StopAtTarget("val_accuracy", 0.9)
    loop.fit(epochs=100, callbacks=[target])
    accuracy = loop.history.history["val_accuracy"]
    assert accuracy[-1] >= 0.9 and all(a < 0.9 for a in accuracy[:-1])
    assert target.reached_epoch == len(accuracy) - 1


def test_monitoring_what_is_not_recorded_is_refused_with_a_hint():
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2), (X, y), "cross_entropy")
    with pytest.raises(ValueError, match="validation_split"):
        loop.fit(epochs=3, callbacks=[tl.EarlyStopping()])
    assert loop.state.step == 0
    with pytest.raises(ValueError):
        tl.EarlyStopping(patience=-1)


@pytest.mark.parametrize("second", [tl.EarlyStopping(monitor="val_loss"), object()])
def test_a_refused_callback_leaves_none_of_the_others_attached(second):
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy")
    with pytest.raises(ValueError):
        loop.fit(epochs=10, callbacks=[tl.StopAtTarget("accuracy", 0.0), second])
    assert loop.state.step == 0
    loop.fit(epochs=3)  # the StopAtTarget of the refused call would have stopped this after one epoch
    assert loop.state.epoch == 3 and not loop.stop_requested


def test_callbacks_must_be_a_list():
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy")
    with pytest.raises(ValueError, match=r"callbacks=\[tl.EarlyStopping\(\)\]"):
        loop.fit(epochs=1, callbacks=tl.StopAtTarget("accuracy", 0.0))
    assert loop.state.step == 0


def test_stop_from_a_handler_ends_fit_at_the_batch_boundary():
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2), (X, y), "cross_entropy", batch_size=10)
    loop.on("after_update", lambda lp: lp.stop() if lp.state.step == 4 else None)
    loop.fit(epochs=5)
    assert loop.state.step == 4 and loop.next_stage == "forward" and loop.stop_requested
    loop.fit(epochs=1)  # a new fit clears the request; the handler only fires at step 4
    assert loop.state.epoch == 1 and loop.state.step == 10


def test_early_stopping_takes_keras_restore_best_weights_name():
    assert tl.EarlyStopping(restore_best_weights=False).restore_best is False
    assert tl.EarlyStopping(restore_best_weights=True, restore_best=False).restore_best is True
    with pytest.raises(ValueError, match="restore_best_weights must be True or False"):
        tl.EarlyStopping(restore_best_weights="yes")


def test_a_callback_of_ones_own_listens_to_the_events_it_has_methods_for():
    class Recorder(tl.Callback):
        def __init__(self):
            self.calls = []

        def before_fit(self, loop):
            self.calls.append("fit")

        def after_epoch(self, loop):
            self.calls.append(loop.last_epoch_log["epoch"])

    loop = overfitting_loop()
    recorder = Recorder()
    loop.fit(2, callbacks=[recorder])
    loop.fit(1)  # attached for that fit only
    assert recorder.calls == ["fit", 0, 1]
    assert isinstance(tl.EarlyStopping(), tl.Callback)


def test_something_without_attach_is_refused_as_a_callback():
    loop = overfitting_loop()
    with pytest.raises(ValueError, match="attach"):
        loop.fit(1, callbacks=[print])
    assert loop.state.step == 0
