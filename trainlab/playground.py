"""The playground: live momentum and dropout, rebuilding the data or the model mid-session, travel in time.

Every knob of TensorFlow Playground, on a ``Loop``, all of it recorded in ``history.changes`` so a
recipe (``recipe.py``) replays it:

- **live** (the run goes on): ``loop.momentum = 0.9`` (SGD's, and RMSprop's) and ``loop.dropout = 0.2``
  (the ``p`` of the model's live dropout layers), like ``loop.lr``;
- **rebuilds** (a new run, step 0): another data set, noise, number of samples, validation share, hidden
  layers, activation: ``change(loop, "noise", 0.3)``. The loop stays the same object (every handler,
  the dashboard's too, stays attached); the old run is kept as a ghost in ``history.branches``, as
  ``reset()`` does; the model is made again by its maker with its seed (the loop's, if it had none),
  so a new data set of the same shape starts from the same initial weights;
- **travel**: ``travel(loop, step)`` goes back to any earlier step the keyframes reach, exactly.

A loop built by ``tl.Loop.from_recipe`` can be changed in every way; one built by hand from
``tl.datasets`` and ``tl.models`` makers too; for a model (or data) of the user's own, only what
does not need its maker.
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.arguments import is_whole_number
from trainlab.makers import DATA_MAKERS, MODEL_MAKERS, arguments_of
from trainlab.recipe import (LIVE_CHANGES, Made, check_dropout, check_momentum, from_recipe, line_entries, loss_for,
                             made, make_data, make_model, recipe_of, settings)

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["LiveDropout", "with_live_dropout", "momentum", "set_momentum", "dropout", "set_dropout", "change",
           "rebuild", "TravelError", "travel", "reachable", "can_change", "resume_branch", "LOOP_ATTRIBUTES"]


class LiveDropout(nn.Dropout):
    """``nn.Dropout`` whose rate is a buffer: snapshots, rewind and checkpoints keep it with the weights,
    so a live change of ``p`` is exact in time travel."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p, inplace)
        self.register_buffer("rate", torch.tensor(float(p), dtype=torch.float64))
        self._read = (id(self.rate), self.rate._version)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (id(self.rate), self.rate._version)  # read the buffer only when written (a float() is a sync)
        if key != self._read:
            self.p, self._read = float(self.rate), key
        return F.dropout(x, self.p, self.training, self.inplace)

    def set_rate(self, p: float) -> None:
        """Zero a fraction ``p`` of the values from the next forward."""
        with torch.no_grad():
            self.rate.fill_(p)


def with_live_dropout(model: nn.Module) -> nn.Module:
    """The model with its dropout layers live; an MLP from ``tl.models.mlp`` gets one after each activation
    even at rate 0 (drawing no random numbers: the same run as without), so dropout can change live."""
    for holder in list(model.modules()):
        for name, child in list(holder.named_children()):
            if type(child) is nn.Dropout:
                setattr(holder, name, LiveDropout(child.p, child.inplace))
    made_by = getattr(model, "made_by", None)
    if isinstance(model, nn.Sequential) and made_by and made_by.get("name") == "mlp" and not _live_layers(model):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, child in model.named_children():
            layers[name] = child
            if name.startswith("act"):
                layers[f"drop{name[3:]}"] = LiveDropout(0.0)
        rebuilt = nn.Sequential(layers)
        rebuilt.made_by = made_by
        return rebuilt
    return model


def _live_layers(model: nn.Module) -> list[LiveDropout]:
    return [module for module in model.modules() if isinstance(module, LiveDropout)]


# --- live settings ------------------------------------------------------------------------------


def momentum(loop: Loop) -> float:
    """The optimizer's momentum (SGD's, RMSprop's; 0.0 for one without); live, like ``loop.lr``."""
    return float(loop.optimizer.param_groups[0].get("momentum", 0.0))


def set_momentum(loop: Loop, value: float) -> None:
    """Set every parameter group's momentum, from the next update; recorded in ``history.changes``."""
    value = check_momentum(value)
    groups = loop.optimizer.param_groups
    if "momentum" not in groups[0]:
        raise ValueError(f"{loop.optimizer_name} has no momentum setting (momentum is SGD's and RMSprop's; "
                         "Adam's betas play its part): loop.set_optimizer('sgd') first")
    if value == 0 and any(group.get("nesterov") for group in groups):
        raise ValueError("Nesterov momentum needs a momentum above 0")
    for group in groups:
        group["momentum"] = value
    loop.note_change("momentum", value)


def dropout(loop: Loop) -> float:
    """The rate of the model's live dropout layers (0.0 without any); live, like ``loop.lr``."""
    layers = _live_layers(loop.model)
    return float(layers[0].rate) if layers else 0.0


def set_dropout(loop: Loop, value: float) -> None:
    """Set ``p`` on every live dropout layer, from the next batch; recorded in ``history.changes``.

    A model from ``tl.models.mlp`` without such layers is rebuilt with them (a new run); another
    model without them cannot change its dropout live (a ValueError says so)."""
    value = check_dropout(value)
    layers = _live_layers(loop.model)
    if not layers:
        if "dropout" in _model_arguments(loop):
            rebuild(loop, "dropout", value)
            return
        raise ValueError("this model has no live dropout layers (trainlab.playground.LiveDropout): use them in "
                         "your model, or build the loop with tl.Loop.from_recipe, whose MLP has them")
    for layer in layers:
        layer.set_rate(value)
    loop.note_change("dropout", value)


# --- any change, by name ----------------------------------------------------------------------------


def change(loop: Loop, name: str, value: Any) -> None:
    """Make a change by the name ``history.changes`` and recipes give it: live, or a rebuild.

    Example: ``change(loop, "lr", 0.05)``, ``change(loop, "dataset", "circles")``, ``change(loop, "hidden", [8, 8])``.
    """
    if name in ("lr", "batch_size", "weight_decay", "clip_grad_norm"):
        setattr(loop, name, value)
    elif name == "optimizer":
        loop.set_optimizer(value)
    elif name == "momentum":
        set_momentum(loop, value)
    elif name == "dropout":
        set_dropout(loop, value)
    else:
        rebuild(loop, name, value)


def can_change(loop: Loop, name: str) -> str:
    """Why ``name`` cannot be changed on this loop ("" when it can): what the controls' tooltips say."""
    if name in LIVE_CHANGES and name not in ("momentum", "dropout"):
        return ""
    if name == "momentum":
        return "" if "momentum" in loop.optimizer.param_groups[0] else f"{loop.optimizer_name} has no momentum"
    record = made(loop)
    if name == "dropout":
        return "" if _live_layers(loop.model) or "dropout" in _model_arguments(loop) else (
            "your model has no live dropout layers (trainlab.playground.LiveDropout)")
    if loop.scheduler is not None:
        return "a scheduler drives this loop's optimizer: build a new Loop to change its data or model"
    if name in ("data", "dataset", "validation_split") or name in _data_arguments(record) or (
            name not in _model_arguments(loop) and any(name in _arguments(maker) for maker in DATA_MAKERS.values())):
        return "" if record.data is not None else "the data is your own (not from tl.datasets or a registered maker)"
    return "" if record.model is not None else "the model is your own (not from tl.models or a registered maker)"


def _model_arguments(loop: Loop) -> set[str]:
    record = made(loop)
    return set(inspect.signature(MODEL_MAKERS[record.model["name"]].fn).parameters) if record.model else set()


def _data_arguments(record: Made) -> set[str]:
    return _arguments(DATA_MAKERS[record.data["name"]]) if record.data else set()


def _arguments(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters) - {"seed"}


# --- rebuilds -------------------------------------------------------------------------------------------


def rebuild(loop: Loop, name: str, value: Any) -> None:
    """A new run with other data or another model (``name`` as ``change`` takes it); the old run becomes a ghost.

    Everything is checked on a trial loop first: a refused change leaves the loop exactly as it was."""
    why = can_change(loop, name)
    if why:
        raise ValueError(f"cannot change {name}: {why}")
    record = made(loop)
    with loop.hold():
        data, model, args = _rebuilt_parts(loop, record, name, value)
        X, y = make_data(data)
        args["loss_fn"] = args["loss_fn"] if loss_for(y) == loss_for(loop.train_data[1]) else loss_for(y)
        args["batch_size"] = min(args["batch_size"], len(y))
        new_model = make_model(model, X, y) if model is not None else None
        from trainlab.loop import Loop

        try:  # on copies: a failure here leaves the loop as it was
            Loop(copy.deepcopy(new_model if new_model is not None else loop.model), (X, y), threads=None, **args)
        except ValueError as error:
            raise ValueError(f"cannot change {name} to {value!r}: {error}") from None
        entries = line_entries(loop, record) + [[loop.state.step, name, copy.deepcopy(value)]]
        _start_again(loop, new_model, (X, y), args, f"before {name} {value}")
        record.past += entries
        record.data, record.model, record.loop = data, model, args
    loop.note_change(name, value)


def _rebuilt_parts(loop: Loop, record: Made, name: str, value: Any) -> tuple[dict, dict | None, dict]:
    """The data and model sections and the Loop arguments after the change (the live settings kept)."""
    data, model = copy.deepcopy(record.data), copy.deepcopy(record.model)
    args = {**record.loop, **settings(loop)}
    if model is not None and _live_layers(loop.model):
        model["dropout"] = dropout(loop)  # the live rate goes on in the new model
    if name == "validation_split":
        args["validation_split"] = value
    elif name == "data":
        data = dict(value)
    elif name == "dataset":
        data = _switched(data, value)
    elif name == "model":
        model = dict(value)
    elif name in _data_arguments(record):
        data[name] = value
    else:
        if model is None or name not in _model_arguments(loop):
            raise ValueError(f"cannot change {name!r}: it is no setting of this loop's data or model")
        model[name] = value
    if model is not None and model.get("seed") is None:
        model["seed"] = loop.seed
    return data, model, args


def _switched(data: dict[str, Any], name: Any) -> dict[str, Any]:
    """Another data maker, keeping the arguments it shares with the old one (n, noise, seed)."""
    if name not in DATA_MAKERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATA_MAKERS)}")
    maker = DATA_MAKERS[name]
    kept = {key: v for key, v in data.items() if key in inspect.signature(maker).parameters and key != "name"}
    return {"name": name, **arguments_of(maker, (), kept)}  # every argument, so the controls show each


def _start_again(loop: Loop, model: nn.Module | None, data: Any, args: dict[str, Any], ghost: str) -> None:
    """Build the loop anew in place (the same object), its old run kept as a ghost branch."""
    from trainlab.loop import Loop

    events, history = loop.events, loop.history
    if model is None:  # the user's own model: back to its initial weights
        last = history.branches[-1] if history.branches else None
        loop.reset()
        if history.branches and history.branches[-1] is not last:
            history.branches[-1].name = ghost
        model = loop.model
    history.clear(ghost)
    Loop.__init__(loop, model, data, threads=None, **args)  # the constructor again: every check, a fresh start
    loop.events = events  # every handler (the dashboard's, callbacks) stays attached
    loop.history.branches = history.branches
    loop.history.full_steps = history.full_steps
    events.fire("after_restore", loop)


# --- travel ---------------------------------------------------------------------------------------------


class TravelError(ValueError):
    """A step ``travel`` cannot reach; ``nearest`` is the nearest one it can."""

    def __init__(self, message: str, nearest: int) -> None:
        super().__init__(message)
        self.nearest = nearest


def reachable(loop: Loop) -> tuple[int, int]:
    """(the earliest step ``travel`` reaches now, the current step)."""
    return loop.state.step - loop.rewind_depth, loop.state.step


def travel(loop: Loop, step: int) -> int:
    """Go back exactly to an earlier ``step`` (a keyframe and a replay); the run left behind becomes a branch.

    A step the keyframes no longer reach raises TravelError, which names the nearest one (``.nearest``)."""
    if not (is_whole_number(step) and step >= 0):
        raise ValueError(f"travel takes a step number, a whole number 0 or more; got {step!r}")
    first, current = reachable(loop)
    if step > current:
        raise TravelError(f"step {step} is ahead of the run, at step {current}: travel goes back in time", current)
    if step < first:
        raise TravelError(f"step {step} is no longer reachable: the keyframes reach back to step {first} (since "
                          "the last restore, reset or rebuild, within rewind_memory_mb); the nearest is step "
                          f"{first}", first)
    if step < current:
        loop.rewind(current - step)
    return loop.state.step



def resume_branch(loop: Loop, branch: Any) -> int:
    """Go to the end of a branch of ``history.branches`` again: back to where it forked, then its steps and
    changes once more (the run is deterministic); the branch is taken off the list, being the run again.

    The run left behind becomes a branch, as with any jump. Raises TravelError when the keyframes no
    longer reach the fork, and ValueError for a branch of other data or another model."""
    rebuilt = [name for _, name, _ in branch.changes if name not in LIVE_CHANGES]
    if rebuilt:
        raise ValueError(f"this branch ran on another build ({rebuilt[0]} changed): replay its recipe instead")
    rows = branch.steps["step"]
    end = int(rows[-1]) if len(rows) else branch.start_step
    travel(loop, branch.start_step)
    pending = list(branch.changes)
    while True:
        while pending and pending[0][0] <= loop.state.step:
            change(loop, pending[0][1], pending[0][2])
            pending.pop(0)
        if loop.state.step >= end:
            break
        loop.step()
    loop.history.branches[:] = [b for b in loop.history.branches if b is not branch]
    return loop.state.step


# What the Loop class takes from here (one line in loop.py): Loop.from_recipe, loop.recipe(), and
# loop.momentum / loop.dropout, live like loop.lr.
LOOP_ATTRIBUTES = (classmethod(from_recipe), recipe_of, property(momentum, set_momentum, doc=momentum.__doc__),
                   property(dropout, set_dropout, doc=dropout.__doc__))
