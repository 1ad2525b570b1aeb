"""Errors raised in the background thread pause the runner and are shown in the dashboard, never lost."""

import torch
from torch import nn

import trainlab as tl


class BreakableModel(nn.Module):
    """An MLP that raises in forward once ``broken`` is set: a bug in the learner's model."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tl.models.mlp(2, [16], 2, seed=0)
        self.broken = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.broken:
            raise RuntimeError("shape mismatch in my_layer (the learner's bug)")
        return self.net(x)


def test_an_error_in_the_model_pauses_the_runner_and_is_shown(dashboards, until, within):
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    model = BreakableModel()
    loop = tl.Loop(model, (X, y), "cross_entropy", lr=0.1)
    dash = dashboards(loop)
    dash.play()
    assert until(lambda: loop.state.step > 5)
    model.broken = True
    within(5, lambda: dash.wait(timeout=5))
    assert not dash.playing
    assert "RuntimeError" in dash.error and "the learner's bug" in dash.error
    assert "the learner&#x27;s bug" in dash.alert.value  # visible, HTML-escaped
    assert isinstance(dash.exception, RuntimeError)
    assert dash.buttons["Play"].description == "Play" and not dash.buttons["Step"].disabled
    # the loop is usable again once the bug is fixed
    model.broken = False
    step = loop.state.step
    dash.buttons["Step"].click()
    assert loop.state.step == step + 1 and dash.error is None


def test_an_exploding_learning_rate_pauses_the_runner_with_the_loops_message(make_loop, dashboards, within):
    loop = make_loop(lr=1e6)
    dash = dashboards(loop)
    dash.play()
    within(10, lambda: dash.wait(timeout=10))
    assert not dash.playing
    assert dash.error.startswith("NonFiniteError: ") and "at step" in dash.error
    assert "rewind" in dash.alert.value
    assert isinstance(dash.exception, tl.NonFiniteError)
    # recover as the message says: rewind (to before the explosion), lower the learning rate, go on
    while not dash.buttons["Rewind"].disabled:
        dash.buttons["Rewind"].click()
    assert loop.state.step == 0
    dash.lr_slider.value = 0.1
    dash.buttons["Play"].click()
    dash.wait(steps=20, timeout=10)
    dash.pause()
    assert dash.error is None and loop.state.step >= 20


def test_an_exploding_linear_regression_is_caught_too(dashboards, within):
    X, y = tl.datasets.linear(n=100, seed=0)
    loop = tl.Loop(nn.Linear(10, 1), (X, y), "mse", lr=10.0)
    dash = dashboards(loop)
    assert "prediction" not in dash.figures and "accuracy" not in dash.figures  # 10 features, no classes
    dash.play()
    within(10, lambda: dash.wait(timeout=10))
    assert isinstance(dash.exception, tl.NonFiniteError) and "loss is" in dash.error
    loop.rewind(loop.rewind_depth)  # the weights before they blew up
    loop.lr = 1e-3
    loop.step()  # usable afterwards
    assert dash.lr_slider.value == 1e-3


def test_playing_a_loop_that_another_thread_owns_reports_busy(loop, dashboards):
    first, second = dashboards(loop), dashboards(loop)
    first.play()
    try:
        second.play()
        assert not second.playing
        assert "LoopBusyError" in second.error
    finally:
        first.pause()
    assert first.error is None
