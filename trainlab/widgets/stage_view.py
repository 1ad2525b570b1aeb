"""The stage view: what the stage that just ran did, shown as an HTML table a learner can read.

forward  -> a few samples: input (a picture, for images), output, prediction, target
loss     -> the loss value and the formula that produced it
backward -> each parameter's gradient norm
update   -> how far the update moved each parameter, relative to its size
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import torch

from trainlab.events import STAGES
from trainlab.widgets.pictures import is_picture, picture_html

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["StageView", "stage_html", "last_stage", "STAGE_SENTENCES", "LOSS_FORMULAS"]

#: One sentence per stage, shown under its name.
STAGE_SENTENCES: dict[str, str] = {
    "forward": "The model turns the batch's inputs into predictions.",
    "loss": "One number saying how wrong those predictions are.",
    "backward": "Backpropagation finds how each weight should change to lower the loss.",
    "update": "The optimizer moves each weight a small step, scaled by the learning rate.",
}

#: How each loss turns outputs and targets into one number, by the loop's ``loss_name``.
LOSS_FORMULAS: dict[str, str] = {
    "mse": "mean of (output − target)²",
    "L1Loss": "mean of |output − target|",
    "cross_entropy": "−log softmax(output)[target], averaged",
    "bce": "−[t·log σ(output) + (1−t)·log(1 − σ(output))], averaged",
    "BCELoss": "−[t·log(output) + (1−t)·log(1 − output)], averaged",
}

_DONE_BEFORE = dict(zip(STAGES[1:], STAGES[:-1]))  # next stage -> the one just run
_MAX_SHOWN_NUMBERS = 4  # per cell: more than this and we show a shape instead of values
_JUST_RAN_BACKGROUND = "var(--jp-layout-color2, #eeeeee)"
_TEXT = "var(--jp-ui-font-color0, rgba(0, 0, 0, 1))"
_ACCENT = "var(--jp-brand-color1, #1976d2)"


class StageView(widgets.HTML):
    """An HTML widget showing what the last stage did; call ``redraw(loop)`` to refresh it."""

    def __init__(self, samples: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.samples = samples

    def redraw(self, loop: Loop, playing: bool = False) -> None:
        """Show the loop's current state (call it only while no other thread runs a stage).

        ``playing``: update ratios are the latest measured (measuring each update would cost a copy).
        """
        self.value = stage_html(loop, self.samples, playing)


def stage_html(loop: Loop, samples: int = 5, playing: bool = False) -> str:
    """The stage view's HTML for ``loop``: the four stages, then details of the one that just ran."""
    done = last_stage(loop)
    details = {"forward": _forward_details, "loss": _loss_details, "backward": _backward_details,
               "update": lambda loop, samples: _update_details(loop, samples, playing)}
    status = _last_status(loop)
    if done:
        body = details[done](loop, samples)
    elif status == "skipped":
        body = "<p>The last batch was skipped: its loss or gradients were not finite, so no update was made.</p>"
    elif status == "restored":
        body = (f"<p>Moved back to step {loop.state.step} (rewind, restore, reset or load): the weights are "
                "exactly as they were then. Press <b>Forward</b> or <b>Step</b> to train on from here.</p>")
    else:
        body = ("<p>Nothing has run yet. Press <b>Forward</b> to send the first batch through the model, "
                "or <b>Step</b> for a whole batch.</p>")
    return f"<div class='trainlab-stages'>{_stage_row(done, loop.next_stage)}{_micro_batch(loop)}{body}</div>"


def _micro_batch(loop: Loop) -> str:
    """With accumulate=k: which micro-batch of the update is open (the update comes after the k-th's backward)."""
    k = getattr(loop, "accumulate", 1)
    batch = loop.open_batch
    if k == 1 or batch is None:
        return ""
    done = " (its backward has run)" if batch.grad_norms is not None else ""
    return (f"<p>Micro-batch <b>{batch.micro_batch} of {k}</b>{done} of update {loop.state.step + 1}: each "
            f"micro-batch's gradients add up (its loss divided by {k}); the optimizer steps after the last.</p>")


def last_stage(loop: Loop) -> str | None:
    """The stage that ran last in the current batch (or "update" after a finished step), or None."""
    due = loop.next_stage
    if due in _DONE_BEFORE:
        return _DONE_BEFORE[due]
    if getattr(loop, "accumulate", 1) > 1 and loop.open_batch is not None:  # between an update's micro-batches
        return "backward"
    return "update" if _last_status(loop) == "updated" else None  # else: nothing yet, restored, or skipped


def _last_status(loop: Loop) -> str | None:
    """The last step's status ("updated", "skipped", "restored"), if it describes where the loop is now."""
    log = loop.last_log
    return log.get("status") if log.get("step") == loop.state.step else None


def _stage_row(done: str | None, due: str) -> str:
    """The four stages side by side, each with its sentence; the one just run is highlighted."""
    cells = []
    for stage in STAGES:
        mark = " ✓ just ran" if stage == done else (" ← next" if stage == due else "")
        # JupyterLab's theme colours (light or dark), with the light ones for pages without them.
        just_ran = stage == done
        style = (f"background:{_JUST_RAN_BACKGROUND};color:{_TEXT};font-weight:bold;"
                 f"border-left:3px solid {_ACCENT};") if just_ran else ""
        css_class = " class='trainlab-just-ran'" if just_ran else ""
        cells.append(f"<td{css_class} style='vertical-align:top;padding:4px;overflow-wrap:anywhere;{style}'>{stage}{mark}<br>"
                     f"<span style='font-weight:normal;font-size:90%'>{STAGE_SENTENCES[stage]}</span></td>")
    return f"<table style='width:100%;table-layout:fixed'><tr>{''.join(cells)}</tr></table>"


def _forward_details(loop: Loop, samples: int) -> str:
    inputs, targets = loop.batch
    outputs = loop.last_predictions.detach()  # the part of the outputs that holds the predictions
    size = _n_samples(targets)
    k = min(samples, size)
    classes = _predicted_classes(loop, outputs[:k])
    predicted = "predicted labels" if str(loop.accuracy_kind).startswith("multilabel") else "predicted class"
    header = ["sample", "input", "output"] + ([predicted] if classes is not None else []) + ["target"]
    rows = []
    for i in range(k):
        row = [str(i), _sample_inputs(inputs, i), _numbers(outputs[i])]
        if classes is not None:
            row.append(_numbers(classes[i]))
        row.append(_sample_inputs(targets, i))
        rows.append(row)
    caption = f"Forward: the outputs for the first {k} of the batch's {size} samples, next to their targets."
    if loop.accuracy_kind == "multiclass" and outputs.dim() > 2:
        caption += (" Each token (or pixel) gets a class: accuracy counts the tokens predicted right, leaving out "
                    "those whose target is the loss's ignore_index.")
    return _table(caption, header, rows)


def _loss_details(loop: Loop, samples: int) -> str:
    value = float(loop.last_loss.detach())
    formula = LOSS_FORMULAS.get(loop.loss_name, "")
    formula_line = f" = {html.escape(formula)}" if formula else ""
    return (f"<p>Loss: <b>{html.escape(str(loop.loss_name))}</b>{formula_line}, over the batch of "
            f"{_n_samples(loop.batch[1])} samples = <b>{value:.4g}</b></p>")


def _backward_details(loop: Loop, samples: int) -> str:
    norms = loop.last_grad_norms
    rows = [[html.escape(name), f"{norm:.3g}", _bar(norm, max(norms.values(), default=0.0))]
            for name, norm in norms.items()]
    caption = "Backward: the size (norm) of each parameter's gradient. Big means the loss is sensitive to it."
    return _table(caption, ["parameter", "gradient norm", ""], rows)


def _update_details(loop: Loop, samples: int, playing: bool = False) -> str:
    ratios = loop.update_ratios(recent=playing)
    if not ratios:
        return "<p>The last update was undone (rewind/restore): nothing to compare.</p>"
    finite = [r for r in ratios.values() if math.isfinite(r)]
    largest = max(finite, default=0.0)
    rows = [[html.escape(name), f"{ratio:.2e}", _bar(ratio, largest)] for name, ratio in ratios.items()]
    caption = (f"Update {loop.state.step}: how far each parameter moved, relative to its size "
               "(‖change‖ / ‖weights‖). A rule of thumb for big networks is about 1e-3; small ones like "
               "these often learn well far above it. Near 1, each update rewrites the weights: the learning rate "
               "is too high.")
    return _clipping(loop) + _table(caption, ["parameter", "update / weight", ""], rows)


def _clipping(loop: Loop) -> str:
    """With clipping (by norm or by value): the gradients' total norm before and after clipping, for the update that just ran."""
    log = loop.last_log
    if "clipped_grad_norm" not in log:
        return ""
    before, after = log["grad_norm"], log["clipped_grad_norm"]
    verdict = "scaled down to" if after < before else "under the limit, so unchanged:"
    limits = [f"{name}={value:g}" for name, value in (("clip_grad_value", loop.clip_grad_value),
                                                        ("clip_grad_norm", loop.clip_grad_norm)) if value is not None]
    return (f"<p>Gradient clipping ({', '.join(limits)}): the gradients' total norm was "
            f"<b>{before:.3g}</b>, {verdict} <b>{after:.3g}</b> before the update.</p>")


def _predicted_classes(loop: Loop, outputs: torch.Tensor) -> torch.Tensor | None:
    """The class each output predicts (multi-label: 0 or 1 per label), or None when accuracy means nothing."""
    kind = loop.accuracy_kind
    if kind is None:
        return None
    if kind == "multiclass":
        return outputs.argmax(1)
    threshold = 0.5 if kind.endswith("_probs") else 0.0  # probabilities vs. raw scores (logits)
    return (outputs.reshape(len(outputs), -1) > threshold).long().squeeze(1)  # binary: (k,); multi-label: (k, labels)


def _n_samples(targets: Any) -> int:
    """The samples in a batch's targets: one tensor, or several (a tuple or dict)."""
    if isinstance(targets, torch.Tensor):
        return len(targets)
    return len(next(iter(targets.values())) if isinstance(targets, dict) else targets[0])


def _sample_inputs(inputs: Any, i: int) -> str:
    """Sample ``i``'s input (a picture when it is one: an 8x8 digit), or each of its several inputs."""
    if isinstance(inputs, torch.Tensor):
        return _input(inputs[i])
    named = inputs.items() if isinstance(inputs, dict) else enumerate(inputs)
    return "; ".join(f"{html.escape(str(name))}: {_input(t[i])}" for name, t in named)


def _input(sample: torch.Tensor) -> str:
    return picture_html(sample) if is_picture(sample) else _numbers(sample)


def _numbers(t: torch.Tensor) -> str:
    """A few numbers as text, or the shape when there are too many to read."""
    t = t.detach()
    if t.numel() > _MAX_SHOWN_NUMBERS:
        return "×".join(str(s) for s in t.shape) + " values"
    values = t.reshape(-1).tolist()
    text = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values)
    return f"[{text}]" if t.dim() else text


def _bar(value: float, largest: float) -> str:
    width = 0 if not largest or not math.isfinite(value) else max(1, round(100 * value / largest))
    return f"<div style='background:{_ACCENT};height:0.8em;width:{width}px'></div>"


def _table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<p>{caption}</p><table><tr>{head}</tr>{body}</table>"
