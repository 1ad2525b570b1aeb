"""The stage view says what the stage that just ran did, in a learner's words."""

import torch

import trainlab as tl
from trainlab.widgets.stage_view import LOSS_FORMULAS, STAGE_SENTENCES, stage_html


def test_before_anything_runs_it_says_where_to_start(dash):
    assert "Nothing has run yet" in dash.stage_view.value
    for sentence in STAGE_SENTENCES.values():
        assert sentence.replace("'", "&#x27;") in dash.stage_view.value or sentence in dash.stage_view.value


def test_after_forward_it_shows_outputs_next_to_targets(dash, loop):
    dash.buttons["Forward"].click()
    html = dash.stage_view.value
    assert "forward ✓ just ran" in html
    assert "<th" in html and "output" in html and "target" in html and "predicted class" in html
    first_target = int(loop.batch[1][0])
    assert f"<td style='padding:2px 8px'>{first_target}</td>" in html


def test_after_loss_it_shows_the_value_and_formula(dash, loop):
    dash.buttons["Forward"].click()
    dash.buttons["Loss"].click()
    html = dash.stage_view.value
    assert "−log softmax(output)[target], averaged" in html
    assert f"{float(loop.last_loss.detach()):.4g}" in html


def test_after_backward_it_lists_each_parameters_gradient_norm(dash, loop):
    for label in ("Forward", "Loss", "Backward"):
        dash.buttons[label].click()
    html = dash.stage_view.value
    for name, norm in loop.last_grad_norms.items():
        assert name in html and f"{norm:.3g}" in html


def test_after_update_it_shows_update_to_weight_ratios(dash, loop):
    dash.buttons["Step"].click()
    html = dash.stage_view.value
    assert "update ✓ just ran" in html and "update / weight" in html
    for name, ratio in loop.update_ratios().items():
        assert f"{ratio:.2e}" in html


def test_mse_has_its_formula():
    X, y = tl.datasets.sine(n=50, seed=0)
    loop = tl.Loop(torch.nn.Linear(1, 1), (X, y), "mse")
    loop.forward()
    loop.loss()
    assert LOSS_FORMULAS["mse"] == "mean of (output − target)²"
    assert "mean of (output − target)²" in stage_html(loop)
    loop.backward()
    loop.update()
    loop.rewind(1)  # after a rewind there is no "last update" to describe: it says where the loop is
    assert "Moved back to step 0" in stage_html(loop) and "update ✓" not in stage_html(loop)


def test_after_a_rewind_it_says_where_the_loop_now_is_and_the_status_shows_that_steps_loss(dash, loop):
    for _ in range(3):
        dash.buttons["Step"].click()
    dash.buttons["Rewind"].click()
    assert loop.state.step == 2
    assert "Moved back to step 2" in dash.stage_view.value
    assert f"loss {float(loop.history.steps['loss'][-1]):.4g}" in dash.status.value
