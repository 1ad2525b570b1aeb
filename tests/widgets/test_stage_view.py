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


def _constant_model(value: float, outputs: int = 1) -> torch.nn.Linear:
    """A model that answers ``value`` for every input: its predictions are known in advance."""
    model = torch.nn.Linear(2, outputs)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.constant_(model.bias, value)
    return model


def test_a_loss_given_as_an_object_has_the_formula_of_its_name():
    X, y = tl.datasets.sine(n=50, seed=0)
    loop = tl.Loop(torch.nn.Linear(1, 1), (X, y), torch.nn.MSELoss())
    loop.forward()
    loop.loss()
    assert LOSS_FORMULAS[loop.loss_name] in stage_html(loop)


def test_predicted_classes_read_probabilities_and_logits_each_their_own_way():
    X, y = tl.datasets.moons(n=40, seed=0)
    targets = y.float().view(-1, 1)
    cell = "<td style='padding:2px 8px'>{}</td>"
    for loss_fn, predicted in ((torch.nn.BCELoss(), "0"), ("bce", "1")):  # 0.3: a probability below 0.5; a logit above 0
        loop = tl.Loop(_constant_model(0.3), (X, targets), loss_fn)
        loop.forward()
        html = stage_html(loop)
        assert "predicted class" in html
        assert cell.format("[0.3]") + cell.format(predicted) in html, loss_fn


def test_multi_label_outputs_predict_each_label():
    X, _ = tl.datasets.moons(n=40, seed=0)
    labels = (X > 0).float()  # two independent labels per sample
    loop = tl.Loop(_constant_model(-1.0, outputs=2), (X, labels), "bce")
    loop.forward()
    html = stage_html(loop)
    assert "predicted labels" in html and "<td style='padding:2px 8px'>[0, 0]</td>" in html


def test_a_skipped_batch_says_so_and_no_stage_is_marked_as_just_run():
    X, y = tl.datasets.sine(n=50, seed=0)
    loop = tl.Loop(torch.nn.Linear(1, 1), (X, y * float("nan")), "mse", on_nonfinite="skip_batch")
    loop.step()
    assert loop.last_log["status"] == "skipped"
    html = stage_html(loop)
    assert "The last batch was skipped" in html and "✓ just ran" not in html


def test_with_clipping_the_update_shows_the_norm_before_and_after():
    X, y = tl.datasets.moons(n=64, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", clip_grad_norm=0.01)
    loop.step()
    html = stage_html(loop)
    before, after = loop.last_log["grad_norm"], loop.last_log["clipped_grad_norm"]
    assert after == 0.01 < before
    assert "clip_grad_norm=0.01" in html and f"{before:.3g}" in html and "scaled down to <b>0.01</b>" in html
    loop.clip_grad_norm = 100.0
    loop.step()
    assert "unchanged" in stage_html(loop)
    loop.clip_grad_norm = None
    loop.step()
    assert "clipping" not in stage_html(loop)


def test_clipping_by_value_is_named_in_the_update_with_the_norm_before_and_after():
    X, y = tl.datasets.moons(n=64, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", clip_grad_value=0.001)
    loop.step()
    html = stage_html(loop)
    assert "clip_grad_value=0.001" in html and "clip_grad_norm" not in html
    assert loop.last_log["clipped_grad_norm"] < loop.last_log["grad_norm"] and "scaled down to" in html
