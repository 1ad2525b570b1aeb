"""Build-time checks: every mistake a Loop can see before training, reported as a ValueError saying what to do.

The model and loss are tried on two samples when the loop is built (``probe``), so a
wrong input size, output size or target type surfaces at once, in words, instead of as
a shape error deep inside the first step.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.arguments import is_whole_number, real_number
from trainlab.batching import as_inputs, call_model, first_tensor, head, leaves, like, map_tensors
from trainlab.metrics import eval_mode, pick

__all__ = ["check_flags", "check_count", "pick_device", "rewind_bytes", "probe", "in_model_dtype", "quiet_forward",
           "not_one_number", "non_finite_data", "non_finite_advice", "may_draw_random_numbers", "predict_batch",
           "watched_parameters"]


def check_flags(model: Any, on_nonfinite: str, scheduler_interval: str, threads: Any,
                shuffle: Any, accuracy: Any) -> None:
    """Refuse a Loop's plain arguments that are of the wrong kind."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if on_nonfinite not in ("raise", "skip_batch"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'skip_batch'; got {on_nonfinite!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step'; got {scheduler_interval!r}")
    if threads is not None and not (is_whole_number(threads) and threads >= 1):
        raise ValueError(f"threads must be a whole number, at least 1, or None; got {threads!r}")
    if shuffle is not None and not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True, False or None (the default); got {shuffle!r}")
    if accuracy is not None and not isinstance(accuracy, (bool, int, str)):
        raise ValueError(f"accuracy must be True, False or None (the default), or the target it reads when there "
                         f"are several (accuracy=0, accuracy='label'); got {accuracy!r}")


def check_count(value: Any, what: str, least: int = 1) -> int:
    """A whole number of at least ``least`` (epochs, steps), or a ValueError naming ``what``."""
    if not (is_whole_number(value) and value >= least):
        raise ValueError(f"{what} must be a whole number of at least {least}; got {value!r}")
    return int(value)


def pick_device(device: str | torch.device) -> torch.device:
    """The torch device to train on ("auto": a GPU if there is one), or a ValueError if this machine lacks it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(chosen.type, False):
        raise ValueError(f"this machine has no {chosen.type} device; use device='cpu' (or 'auto': a GPU if there is one)")
    return chosen


def rewind_bytes(megabytes: Any) -> int:
    """The rewind budget in bytes: a number of MB, at least 0 (0 turns rewind off)."""
    number = real_number(megabytes)
    if number is None or not 0 <= number < math.inf:
        raise ValueError(f"rewind_memory_mb is a number of megabytes, at least 0 (0 turns rewind off), "
                         f"like rewind_memory_mb=16; got {megabytes!r}")
    return int(number * 2**20)


# torch.nn layers known to draw no random numbers in forward: any other layer (a layer of one's own,
# Dropout, RReLU, FractionalMaxPool2d, an RNN or attention with dropout) runs on the loop's stream.
_DETERMINISTIC_LAYERS = frozenset("""
    Sequential ModuleList ModuleDict ParameterList ParameterDict Identity Flatten Unflatten
    Linear Bilinear LazyLinear Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d
    LazyConv1d LazyConv2d LazyConv3d LazyConvTranspose1d LazyConvTranspose2d LazyConvTranspose3d
    Embedding EmbeddingBag BatchNorm1d BatchNorm2d BatchNorm3d LazyBatchNorm1d LazyBatchNorm2d LazyBatchNorm3d
    SyncBatchNorm InstanceNorm1d InstanceNorm2d InstanceNorm3d LazyInstanceNorm1d LazyInstanceNorm2d
    LazyInstanceNorm3d LayerNorm GroupNorm RMSNorm LocalResponseNorm CrossMapLRN2d
    ReLU ReLU6 LeakyReLU PReLU ELU SELU CELU GELU SiLU Mish Sigmoid Tanh Softmax LogSoftmax Softmin Softmax2d
    Softplus Softsign Hardtanh Hardswish Hardsigmoid Hardshrink Softshrink Tanhshrink Threshold LogSigmoid GLU
    MaxPool1d MaxPool2d MaxPool3d AvgPool1d AvgPool2d AvgPool3d AdaptiveAvgPool1d AdaptiveAvgPool2d
    AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d LPPool1d LPPool2d LPPool3d
    MaxUnpool1d MaxUnpool2d MaxUnpool3d ZeroPad1d ZeroPad2d ZeroPad3d ConstantPad1d ConstantPad2d ConstantPad3d
    ReflectionPad1d ReflectionPad2d ReflectionPad3d ReplicationPad1d ReplicationPad2d ReplicationPad3d
    CircularPad1d CircularPad2d CircularPad3d Upsample UpsamplingNearest2d UpsamplingBilinear2d PixelShuffle
    PixelUnshuffle ChannelShuffle Fold Unfold CosineSimilarity PairwiseDistance
    RNNCell LSTMCell GRUCell TransformerEncoder TransformerDecoder TransformerEncoderLayer
    TransformerDecoderLayer Transformer
""".split())
_WITH_DROPOUT_SETTING = ("RNN", "LSTM", "GRU", "MultiheadAttention")  # deterministic with dropout=0


def _deterministic(module: nn.Module) -> bool:
    cls = type(module)
    if not cls.__module__.startswith("torch.nn.modules"):  # one's own, parametrized, compiled: maybe random
        return False
    if cls.__name__ in _WITH_DROPOUT_SETTING:
        return not getattr(module, "dropout", 0)
    return cls.__name__ in _DETERMINISTIC_LAYERS


def watched_parameters(model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
    """Every parameter's name and the parameter, in module order; ValueError if none can train."""
    # Frozen ones too (their gradient norm is 0): a layer unfrozen later (fine-tuning) is measured,
    # checked and has its gradients cleared like the others.
    named = list(model.named_parameters())
    if not any(p.requires_grad for _, p in named):
        raise ValueError("the model has no trainable parameters (none has requires_grad=True): there is "
                         "nothing to train; unfreeze some with layer.requires_grad_(True)")
    return [name for name, _ in named], [p for _, p in named]


def may_draw_random_numbers(model: nn.Module) -> bool:
    """Whether forward may use the RNG: any layer not known to be deterministic (an allowlist of torch.nn's)."""
    return not all(map(_deterministic, model.modules()))


def fails_on_one_sample(model: nn.Module, inputs: Any, targets: Any) -> bool:
    """Whether a one-sample batch fails in train mode (BatchNorm on (n, features): one value per channel).

    Tried only for a model with a BatchNorm, on one sample, leaving no trace (statistics put back)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return False
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    flags = [(module, module.training) for module in model.modules()]
    if not model.training:  # as the loop's forward does: a BatchNorm frozen inside a training model stays frozen
        model.train()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            call_model(model, head(inputs, 1))
        return False
    except ValueError as error:
        return "more than 1 value per channel" in str(error)
    except Exception:
        return False
    finally:
        for module, training in flags:
            module.training = training
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers and b.shape == buffers[name].shape:
                    b.copy_(buffers[name])


def in_model_dtype(model: nn.Module, inputs: Any) -> torch.dtype | None:
    """The dtype to convert float inputs to, if the model does not run on them as they are; else None.

    numpy gives float64 and torch layers are float32: such data is converted, as Keras does.
    A model that takes float64 itself (to centre raw timestamps, say) keeps its precision.
    Integer inputs (token ids for an embedding) always pass as they are.
    """
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    floats = [t for t in leaves(inputs) if t.is_floating_point()]
    if dtype is None or all(t.dtype == dtype for t in floats) or _runs_on(model, head(inputs, 2)):
        return None
    return dtype


def _runs_on(model: nn.Module, x: Any) -> bool:
    try:
        quiet_forward(model, x)
        return True
    except Exception:
        return False


def quiet_forward(model: nn.Module, x: Any) -> Any:
    """The model's outputs for ``x`` in eval mode, leaving no trace: no graph, no random numbers drawn."""
    with eval_mode(model), torch.no_grad(), torch.random.fork_rng(devices=[]):
        return call_model(model, x)


def not_one_number(loss: Any) -> str:
    """Why a loss function's result cannot be trained on, and what to return instead."""
    if not isinstance(loss, Tensor):
        return (f"the loss function must return a tensor computed from the outputs (so backward() can follow "
                f"it); it returned a {type(loss).__name__}")
    return (f"the loss function must return one number (a 0-d tensor); it returned shape {tuple(loss.shape)}: "
            "use a loss with reduction='mean'")


def non_finite_data(inputs: Any, targets: Tensor) -> str | None:
    """Which part of a batch holds NaN/inf ("inputs" or "targets"), or None if it is all finite."""
    for name, tensors in (("inputs", leaves(inputs)), ("targets", leaves(targets))):
        if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
            return name
    return None


def non_finite_advice(inputs: Any, targets: Tensor) -> str:
    """What to do about a NaN/inf loss or gradient: fix the batch's data, or step back and lower the lr."""
    bad_data = non_finite_data(inputs, targets)
    if bad_data:
        return (f"This batch's {bad_data} hold NaN or infinite values: fix the data, or build the loop with "
                "on_nonfinite='skip_batch' to skip such batches")
    return "Undo recent updates with loop.rewind(), lower the learning rate (loop.lr = ...) and continue"


def probe(model: nn.Module, loss_fn: Any, kind: str | None, inputs: Any, targets: Any,
          part: int | str | None = None, target_part: int | str | None = None, named_loss: bool = True,
          warn: bool = True) -> None:
    """Run the model and loss on two samples now, so shape mistakes are reported at build time.

    ``named_loss``: a loss of the loop's (or torch's) whose targets must match the outputs' shape; with a
    loss function of one's own, a shape that differs only by a 1 (n, 1 vs n) is tried both ways and only
    warned about when the two give different losses (``warn``)."""
    x, y = head(inputs, 2), head(targets, 2)
    try:
        outputs = quiet_forward(model, x)
    except Exception as error:
        raise ValueError(f"the model failed on a batch of the data ({_describe(x)}): {error}. "
                         f"{_input_hint(x)}") from error
    predictions = _predictions(outputs, part)
    chosen, chosen_y = pick(targets, target_part), pick(y, target_part)
    if kind == "multiclass":
        _check_class_scores(predictions, chosen, first_tensor(x), getattr(loss_fn, "ignore_index", None))
    mismatch = (kind is None and isinstance(chosen_y, Tensor) and predictions.shape != chosen_y.shape
                and predictions.dim() and predictions.numel() == chosen_y.numel())
    if mismatch and named_loss:
        raise ValueError(f"the model outputs shape {tuple(predictions.shape[1:])} per sample but the targets have "
                         f"{tuple(chosen_y.shape[1:])}; reshape the targets (e.g. y.view(-1, 1)) so they match")
    try:
        loss = loss_fn(outputs, y)
    except Exception as error:
        hint = _loss_hint(kind, predictions, chosen_y)
        raise ValueError(f"the loss function failed on the model's outputs: {error}{hint}") from error
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        raise ValueError(not_one_number(loss))
    if mismatch and warn and isinstance(outputs, Tensor) and _broadcasts(loss_fn, outputs, y, loss):
        warnings.warn(f"the model outputs shape {tuple(predictions.shape[1:])} per sample but the targets have "
                      f"{tuple(chosen_y.shape[1:])}, and your loss function gives another value when they are "
                      "reshaped to match: if it compares them directly they broadcast to (n, n); squeeze the "
                      "outputs (out.squeeze(-1)) or reshape the targets (y.view(-1, 1))", stacklevel=4)


def _broadcasts(loss_fn: Any, outputs: Tensor, y: Tensor, loss: Tensor) -> bool:
    """Whether a loss function of one's own gives another loss once the outputs are shaped like the targets."""
    try:
        matched = loss_fn(outputs.reshape(y.shape), y)
        return not bool(torch.isclose(matched.detach().float(), loss.detach().float(), rtol=1e-5, atol=1e-7))
    except Exception:
        return True


def _loss_hint(kind: str | None, predictions: Tensor, targets: Any) -> str:
    """For class scores laid out (n, tokens, classes): torch wants the classes on dim 1."""
    if (kind == "multiclass" and isinstance(targets, Tensor) and predictions.dim() == targets.dim() + 1 >= 3
            and predictions.shape[:-1] == targets.shape):
        return (f". The outputs have shape {tuple(predictions.shape)}: cross-entropy wants the class scores on "
                "dim 1, (n, classes, tokens...); return logits.transpose(1, -1) (or permute) from the model")
    return ""


def _describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"inputs of shape {tuple(x.shape[1:])}, {x.dtype}"
    shapes = {key: tuple(t.shape[1:]) for key, t in (x.items() if isinstance(x, dict) else enumerate(x))}
    return f"several inputs, of shapes {shapes}"


def _input_hint(x: Any) -> str:
    first = first_tensor(x)
    if not first.is_floating_point():
        return (f"The inputs are {first.dtype}: that suits an nn.Embedding's token ids; a model that starts "
                "with another layer (nn.Linear, nn.Conv2d) needs floats: convert them with X.float()")
    return "Check that the model's input size matches the data"


def _predictions(outputs: Any, part: int | str | None) -> Tensor:
    """The outputs' part that holds the predictions, or a ValueError saying how to name it."""
    if part is None:
        if isinstance(outputs, Tensor):
            return outputs
        kind = type(outputs).__name__
        example = "outputs='logits'" if isinstance(outputs, dict) else "outputs=0"
        raise ValueError(f"the model returns a {kind}, not one tensor; the loss gets all of it, and the loop needs "
                         f"to know which part holds the predictions (for accuracy and plots): Loop(..., {example})")
    try:
        chosen = pick(outputs, part)
    except (KeyError, IndexError, AttributeError, TypeError):
        raise ValueError(f"outputs={part!r} names no part of what the model returns "
                         f"(a {type(outputs).__name__})") from None
    if not isinstance(chosen, Tensor):
        raise ValueError(f"outputs={part!r} picks a {type(chosen).__name__}; it must pick a tensor of predictions")
    return chosen


def _check_class_scores(outputs: Tensor, targets: Tensor, x: Tensor, ignore_index: int | None) -> None:
    """A classifier gives one score per class (per sample, or per token: (n, classes, d1, ...) against
    targets (n, d1, ...)), and at least as many classes as the labels name."""
    per_token = outputs.dim() >= 3 and (
        targets.shape[1:] == outputs.shape[1:] if targets.is_floating_point() else
        targets.dim() == outputs.dim() - 1 and targets.shape[1:] == outputs.shape[2:])
    if outputs.dim() != 2 and not per_token:
        hint = ("; the inputs have no feature axis: give them shape (n, 1) with X.view(-1, 1)" if x.dim() == 1
                else _token_hint(outputs, targets))
        raise ValueError(f"a classifier must output one score per class for each sample, shape (batch, classes), "
                         f"or for each token, (batch, classes, tokens...) against targets (batch, tokens...); "
                         f"on 2 samples the model outputs shape {tuple(outputs.shape)}{hint}")
    if outputs.dim() == 2 and targets.dim() > 1 and not targets.is_floating_point():
        raise ValueError(f"the targets hold a class per token, shape {tuple(targets.shape)}, but the model outputs "
                         f"one score per class for each sample, shape {tuple(outputs.shape)}; for per-token "
                         "classes, return scores of shape (batch, classes, tokens...)")
    if targets.is_floating_point():
        return
    labels = targets[targets != ignore_index] if ignore_index is not None else targets  # -100: "no label"
    if not len(labels):
        return
    classes, top, bottom = outputs.shape[1], int(labels.max()), int(labels.min())
    if bottom < 0:
        raise ValueError(f"the targets hold class {bottom}, but classes are numbered from 0; "
                         f"fix the labels (or give the loss ignore_index={bottom} if it marks 'no label')")
    if top >= classes:
        unit = "sample" if outputs.dim() == 2 else "token"
        raise ValueError(f"the targets hold class {top} but the model outputs {classes} scores per {unit}; "
                         f"build it with at least {top + 1} outputs")


def _token_hint(outputs: Tensor, targets: Tensor) -> str:
    if outputs.dim() == targets.dim() + 1 and outputs.shape[1:-1] == targets.shape[1:]:
        return ("; the class scores must be on dim 1: return logits.transpose(1, -1) from the model "
                f"(shape (batch, {outputs.shape[-1]}, {', '.join(map(str, outputs.shape[1:-1]))}))")
    return ""


def predict_batch(inputs: Any, train_x: Any, device: torch.device) -> Any:
    """``inputs`` as a batch like the training inputs (same dtype and device), or a ValueError."""
    if not isinstance(train_x, Tensor):  # several inputs: laid out like the training ones
        if not isinstance(inputs, (tuple, list, dict)):
            raise ValueError("predict takes the model's several inputs, laid out like the training inputs "
                             "(a tuple or dict of tensors)")
        return map_tensors(like(as_inputs(inputs, "predict's inputs"), train_x, "predict's inputs"),
                           lambda t: t.to(device))
    shape = tuple(train_x.shape[1:])
    batch = f"(n, {', '.join(map(str, shape))})"
    try:
        x = torch.as_tensor(inputs)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"predict takes a batch of inputs, a tensor or array of shape {batch}; "
                         f"got {type(inputs).__name__}") from None
    if tuple(x.shape) == shape:
        raise ValueError(f"predict takes a batch; for one sample of shape {shape} pass x.unsqueeze(0) or [x]")
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"predict takes inputs shaped like the training inputs, {batch}; got shape {tuple(x.shape)}")
    return x.to(device, train_x.dtype)
