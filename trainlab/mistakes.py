"""The classic training-loop mistakes, by name: the stage where each first shows, and what to do about it.

``tl.check_step`` and ``tl.check_loop`` name the one they recognise in a learner's code
(``report.mistake``, ``report.advice``); the bug clinic (``faults.py``) plants some of them in a
loop so the dashboard shows their symptoms. One table, so a fault and the check's diagnosis of the
same mistake say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Mistake", "MISTAKES", "STAGE_ORDER"]

#: The stages a check compares, in the order a step runs them.
STAGE_ORDER = ("forward", "loss", "backward", "update")


@dataclass(frozen=True)
class Mistake:
    """A known mistake: the stage whose numbers first differ from the loop's, and the advice, in one sentence."""

    name: str
    stage: str
    advice: str


MISTAKES: dict[str, Mistake] = {m.name: m for m in (
    Mistake("eval_mode", "forward",
            "the model ran in eval mode (model.eval() left on), so dropout and BatchNorm behaved as they do "
            "when testing: call model.train() before training"),
    Mistake("wrong_inputs", "forward",
            "the model was not given this batch's inputs: call it on the inputs as they come, "
            "outputs = model(inputs)"),
    Mistake("softmax_before_loss", "loss",
            "the loss was given probabilities (a softmax of the outputs), not the raw outputs: "
            "CrossEntropyLoss applies the softmax itself, so pass it the model's outputs as they are"),
    Mistake("loss_summed", "loss",
            "the loss is the sum over the batch, not the mean, so it and every gradient are batch-size times "
            "too large: use the mean (reduction='mean', the default, or .mean())"),
    Mistake("loss_not_reduced", "loss",
            "the loss is not one number but one per sample: reduce it to their mean "
            "(reduction='mean', the default, or .mean())"),
    Mistake("labels_shuffled", "loss",
            "the targets no longer match the inputs (they were shuffled separately): keep each input with "
            "its own target, as the DataLoader gives them (for inputs, targets in data_loader)"),
    Mistake("forgot_zero_grad", "backward",
            "the gradients are the sum of this batch's and the last one's: call optimizer.zero_grad() "
            "before backward()"),
    Mistake("step_before_backward", "backward",
            "optimizer.step() ran before loss.backward(), so it used the last batch's gradients (or none): "
            "call loss.backward() first, then optimizer.step()"),
    Mistake("loss_item", "backward",
            "backward() needs the loss tensor: loss.item() (or float(loss), torch.tensor(loss.item())) is a "
            "plain number cut off from the model; use .item() only to print or record the loss"),
    Mistake("detached_outputs", "backward",
            "the outputs were cut off from the model (.detach(), .data or torch.no_grad()), so no gradient "
            "reaches the weights: compute them with outputs = model(inputs), nothing more"),
    Mistake("forgot_step", "update",
            "the weights did not change: call optimizer.step() after loss.backward()"),
    Mistake("lr_magnitude", "update",
            "the weights moved a power of ten further (or less far) than the optimizer's learning rate "
            "takes them: check the learning rate's order of magnitude"),
)}
