"""Recipes: a run as a small JSON-able dict, to build again, share, and replay bit for bit.

::

    {"trainlab_recipe": 1,
     "data": {"name": "moons", "n": 400, "noise": 0.2, "seed": 0},
     "model": {"name": "mlp", "hidden": [16, 16], "activation": "tanh", "dropout": 0.0, "seed": 0},
     "loop": {"loss_fn": "cross_entropy", "optimizer": "sgd", "lr": 0.1, "batch_size": 32,
              "validation_split": 0.2, "seed": 0},
     "changes": [[step, name, value], ...],
     "steps": 120}

``data.name`` is a data maker (``tl.datasets``' or one registered with ``tl.register_data``) with its
arguments; ``model.name`` a model maker (``tl.models``' or registered), whose input and output sizes
the data decides; ``loop`` the ``Loop`` arguments. ``changes`` lists every change in the order it
happened, with the updates done by then: live ones (lr, batch_size, momentum, dropout, optimizer,
weight_decay...) and rebuilds (a data set, noise, layers...: see ``playground.py``), after which the
count starts again at 0. ``steps`` is the step the run reached.

``tl.Loop.from_recipe(recipe)`` builds the loop at step 0, ``tl.replay(recipe)`` also replays it to
``steps`` (the weights are bit-identical to the original run's: training on the CPU is deterministic),
and ``loop.recipe()`` writes one. Everything in a recipe is checked before anything is built: another
version, an unknown maker or bad arguments raise a ValueError that says what is wrong.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import urllib.parse
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainlab.arguments import is_whole_number
from trainlab.makers import DATA_MAKERS, MODEL_MAKERS, check_arguments, recent_data
from trainlab.options import LOSSES, OPTIMIZERS, check_batch_size, check_lr, check_weight_decay

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["VERSION", "LOOP_ARGUMENTS", "LIVE_CHANGES", "Made", "checked", "from_recipe", "recipe_of", "replay",
           "make_data", "make_model", "made", "loss_for", "line_entries", "check_momentum", "check_dropout",
           "is_rebuild", "settings", "remember", "write", "shared", "SHARED_FILE"]

VERSION = 1
_KEYS = ("trainlab_recipe", "data", "model", "loop", "changes", "steps")
#: The Loop arguments a recipe may give.
LOOP_ARGUMENTS = ("loss_fn", "optimizer", "lr", "batch_size", "shuffle", "seed", "validation_split", "momentum",
                  "weight_decay", "clip_grad_norm", "on_nonfinite", "rewind_memory_mb")
#: Changes made live, without a rebuild (the rest rebuild the data or the model: see playground.py).
LIVE_CHANGES = ("lr", "batch_size", "weight_decay", "clip_grad_norm", "optimizer", "momentum", "dropout")
# Changes that take effect at the next batch: one made in the middle of a batch counts from the next step.
_NEXT_BATCH = ("batch_size", "dropout")
_REBUILD_NAMES = ("data", "dataset", "model", "validation_split")


@dataclass(eq=False)
class Made:
    """What the playground knows of a loop: what it was built from, and the changes before its last rebuild."""

    start: dict[str, Any]  # {"data", "model", "loop"}: the first build
    data: dict[str, Any] | None  # the current build's data (None: the user's own)
    model: dict[str, Any] | None  # the current build's model (None: the user's own)
    loop: dict[str, Any]  # the current build's Loop arguments
    why_not: str = ""  # why no recipe can be written, if so
    past: list[list[Any]] = field(default_factory=list)  # [step, name, value] before the last rebuild, rebuilds too
    late: dict[int, tuple] = field(default_factory=dict)  # changes made mid-batch, by id (kept alive here)


_MADE: weakref.WeakKeyDictionary[Any, Made] = weakref.WeakKeyDictionary()


# --- checking ----------------------------------------------------------------------------------------


def checked(recipe: Any) -> tuple[dict[str, Any], tuple[Any, Tensor], nn.Module]:
    """The recipe's parts, filled in, with its data and model made; a ValueError (and nothing built) if it is bad."""
    if not isinstance(recipe, dict) or "trainlab_recipe" not in recipe:
        raise ValueError("not a trainlab recipe: a recipe is a dict with \"trainlab_recipe\": 1, \"data\", "
                         "\"model\" and \"loop\" (loop.recipe() writes one)")
    if recipe["trainlab_recipe"] != VERSION:
        raise ValueError(f"this recipe is of version {recipe['trainlab_recipe']!r}; this trainlab reads version "
                         f"{VERSION} (write it again with this trainlab's loop.recipe())")
    unknown = [key for key in recipe if key not in _KEYS]
    if unknown:
        raise ValueError(f"unknown recipe keys {unknown}; a recipe has {list(_KEYS)}")
    for key in ("data", "model", "loop"):
        if not isinstance(recipe.get(key), dict):
            raise ValueError(f"the recipe's {key!r} must be a dict, like {_EXAMPLES[key]}; got {recipe.get(key)!r}")
    data = _section(recipe["data"], DATA_MAKERS, "data", "tl.register_data")
    model = _section(recipe["model"], MODEL_MAKERS, "model", "tl.register_model")
    bad = [key for key in recipe["loop"] if key not in LOOP_ARGUMENTS]
    if bad:
        raise ValueError(f"the recipe's loop has unknown arguments {bad}; it takes {list(LOOP_ARGUMENTS)}")
    steps = recipe.get("steps", 0)
    if not (is_whole_number(steps) and steps >= 0):
        raise ValueError(f"the recipe's steps is the step the run reached, a whole number 0 or more; got {steps!r}")
    changes = _checked_changes(recipe.get("changes", []))
    X, y = make_data(data)
    made_model = make_model(model, X, y)
    loop = {"loss_fn": loss_for(y), **recipe["loop"]}
    return {"data": data, "model": model, "loop": loop, "changes": changes, "steps": int(steps)}, (X, y), made_model


_EXAMPLES = {"data": '{"name": "moons", "n": 400}', "model": '{"name": "mlp", "hidden": [16]}',
             "loop": '{"lr": 0.1}'}


def _section(section: dict[str, Any], makers: dict[str, Any], what: str, how: str) -> dict[str, Any]:
    name = section.get("name")
    if name not in makers:
        raise ValueError(f"the recipe's {what} names an unknown {what} maker {name!r}; choose one of "
                         f"{sorted(makers)}, or register yours with {how}")
    return copy.deepcopy(section)


def _checked_changes(changes: Any) -> list[list[Any]]:
    if not isinstance(changes, (list, tuple)):
        raise ValueError(f"the recipe's changes is a list of [step, name, value]; got {changes!r}")
    names = set(LIVE_CHANGES) | set(_REBUILD_NAMES) | _maker_arguments()
    out, last = [], 0
    for i, entry in enumerate(changes):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
            raise ValueError(f"the recipe's change #{i} is not [step, name, value]: {entry!r}")
        step, name, value = entry
        if not (is_whole_number(step) and step >= 0):
            raise ValueError(f"the recipe's change #{i} ({name!r}) is at step {step!r}; a step is a whole number 0 or more")
        if name not in names:
            raise ValueError(f"the recipe's change #{i} names {name!r}, which nothing can change; "
                             f"changes are {sorted(names)}")
        if step < last:
            raise ValueError(f"the recipe's change #{i} ({name!r}) is at step {step}, before the change above it "
                             f"(step {last}); changes are listed in the order they happened")
        _check_value(name, value, i)
        last = 0 if is_rebuild(name) else int(step)
        out.append([int(step), name, copy.deepcopy(value)])
    return out


def _check_value(name: str, value: Any, i: int) -> None:
    """The live changes' values are checked here, as the loop would check them (a rebuild's, by its maker)."""
    checks = {"lr": check_lr, "batch_size": check_batch_size, "weight_decay": check_weight_decay,
              "momentum": check_momentum, "dropout": check_dropout}
    try:
        if name in checks:
            checks[name](value)
        elif name == "optimizer" and value not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {value!r}; choose one of {sorted(OPTIMIZERS)}")
    except ValueError as error:
        raise ValueError(f"the recipe's change #{i} ({name}): {error}") from None


def check_momentum(value: Any) -> float:
    """A momentum: a number from 0 (none) to below 1."""
    if not (is_number(value) and 0 <= value < 1):
        raise ValueError(f"momentum is a number from 0 (none) to below 1, like 0.9; got {value!r}")
    return float(value)


def check_dropout(value: Any) -> float:
    """A dropout rate: a number from 0 (none) to below 1."""
    if not (is_number(value) and 0 <= value < 1):
        raise ValueError(f"dropout is the fraction of values zeroed in training, from 0 (none) to below 1, "
                         f"like 0.2; got {value!r}")
    return float(value)


def _maker_arguments() -> set[str]:
    """Every argument a registered maker takes (a change of one rebuilds the data or the model)."""
    names: set[str] = set()
    for fn in [*DATA_MAKERS.values(), *(maker.fn for maker in MODEL_MAKERS.values())]:
        names.update(inspect.signature(fn).parameters)
    return names - {"seed"}


def is_rebuild(name: str) -> bool:
    """Whether a change of ``name`` rebuilds the data or the model (its run starts again at step 0)."""
    return name not in LIVE_CHANGES


# --- making the parts ----------------------------------------------------------------------------------


def make_data(section: dict[str, Any]) -> tuple[Any, Tensor]:
    """The data a recipe's data section names (its arguments checked against its maker)."""
    maker = unwrapped(DATA_MAKERS[section["name"]])  # not noted among the data sets the user made
    args = {key: value for key, value in section.items() if key != "name"}
    check_arguments(maker, args, f"the data maker {section['name']!r}")
    try:
        return maker(**args)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the recipe's data ({section['name']}): {error}") from None


def make_model(section: dict[str, Any], X: Any, y: Tensor) -> nn.Module:
    """The model a recipe's model section names, its sizes taken from the data, with live dropout layers."""
    from trainlab.playground import with_live_dropout

    maker = MODEL_MAKERS[section["name"]]
    args = {key: value for key, value in section.items() if key != "name"}
    try:
        sizes = maker.sizes(X, y)
    except ValueError as error:
        raise ValueError(f"the recipe's model ({section['name']}) does not fit its data: {error}") from None
    given = sorted(set(sizes) & set(args))
    if given:
        raise ValueError(f"the recipe's model gives {given}, which the data decides; leave them out")
    check_arguments(maker.fn, {**args, **sizes}, f"the model maker {section['name']!r}")
    try:
        return with_live_dropout(maker.fn(**args, **sizes))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the recipe's model ({section['name']}): {error}") from None


def unwrapped(maker: Any) -> Any:
    """A registered maker without the wrapper that notes what it made."""
    return getattr(maker, "__wrapped__", maker)


def loss_for(y: Tensor) -> str:
    """The loss a data set's targets call for: cross-entropy for class labels, mean squared error for numbers."""
    return "mse" if y.is_floating_point() else "cross_entropy"


# --- building, writing, replaying ------------------------------------------------------------------------


def from_recipe(cls: type, recipe: dict[str, Any]) -> Loop:
    """Build a loop from a recipe, at step 0 (``tl.replay`` also replays its changes). Example:
    ``loop = tl.Loop.from_recipe({"trainlab_recipe": 1, "data": {"name": "moons"}, "model": {"name": "mlp",
    "hidden": [16], "seed": 0}, "loop": {"lr": 0.1}})``."""
    parts, data, model = checked(recipe)
    try:
        loop = cls(model, data, **parts["loop"])
    except (TypeError, ValueError) as error:
        refused = f"the recipe's loop: {error}"
    else:
        refused = ""
    if refused:  # raised out here, so the half-built loop is not kept alive by the traceback
        raise ValueError(refused)
    start = {key: parts[key] for key in ("data", "model", "loop")}
    remember(loop, Made(copy.deepcopy(start), parts["data"], parts["model"], dict(parts["loop"])))
    return loop


def replay(recipe: dict[str, Any]) -> Loop:
    """Build a loop from ``recipe`` and replay its changes to the step it reached: bit-identical weights."""
    from trainlab.loop import Loop
    from trainlab.playground import change

    loop = from_recipe(Loop, recipe)
    for step, name, value in _checked_changes(recipe.get("changes", [])):
        _run_to(loop, step)
        change(loop, name, value)
    _run_to(loop, int(recipe.get("steps", 0)))
    return loop


def _run_to(loop: Loop, step: int) -> None:
    if loop.state.step > step:
        raise ValueError(f"the recipe goes back from step {loop.state.step} to {step} without a rebuild")
    while loop.state.step < step:
        loop.step()


def recipe_of(loop: Loop) -> dict[str, Any]:
    """This run as a recipe (JSON-able): what it was built from, every change, the step it reached.

    For a loop built from a recipe, or by hand from ``tl.datasets`` and ``tl.models`` makers;
    a ValueError says why not for another (a model of your own, say)."""
    record = made(loop)
    if record.why_not:
        raise ValueError(f"this loop has no recipe: {record.why_not}")
    changes = record.past + line_entries(loop, record)
    return _plain({"trainlab_recipe": VERSION, **copy.deepcopy(record.start), "changes": changes,
                   "steps": loop.state.step})


def line_entries(loop: Loop, record: Made) -> list[list[Any]]:
    """The current line's changes as recipe entries (a change made mid-batch to the batch size or
    dropout counts from the next step); the rebuild that started the line is in ``record.past``."""
    entries = []
    for change in loop.history.changes:
        step, name, value = change
        if is_rebuild(name):
            continue
        late = id(change) in record.late and record.late[id(change)] is change
        entries.append([step + 1 if late and name in _NEXT_BATCH else step, name, value])
    return entries


def _plain(value: Any) -> Any:
    """Tuples as lists, numpy and torch numbers as Python ones: what json.dumps takes."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Tensor) or hasattr(value, "item"):
        return value.item()
    return value


# --- what a loop was built from ------------------------------------------------------------------------


def remember(loop: Loop, record: Made) -> None:
    """Keep what the loop was built from; note which later changes are made in the middle of a batch."""
    _MADE[loop] = record

    def noted(lp: Loop) -> None:
        if lp.next_stage != "forward" and lp.history.changes:
            change = lp.history.changes[-1]
            record.late[id(change)] = change

    loop.on("after_change", noted, observer=True)


def made(loop: Loop) -> Made:
    """What the loop was built from: from its recipe, or worked out the first time it is asked (see ``adopt``)."""
    record = _MADE.get(loop)
    if record is None:
        record = adopt(loop)
        remember(loop, record)
    return record


def adopt(loop: Loop) -> Made:
    """Work out what a loop built by hand was built from: the makers' notes and the loop's settings."""
    model = getattr(loop.model, "made_by", None)
    model = {k: v for k, v in model.items() if k not in ("in_features", "out_features", "num_classes")} if model else None
    data, split = _data_of(loop)
    args = settings(loop)
    if split is not None:
        args["validation_split"] = split
    why = _why_no_recipe(loop, data, model, split)
    start = {"data": data, "model": model, "loop": args}
    return Made(copy.deepcopy(start), data, model, dict(args), why_not=why)


def settings(loop: Loop) -> dict[str, Any]:
    """The loop's live settings as Loop arguments (what a rebuild keeps)."""
    from trainlab.playground import momentum

    args: dict[str, Any] = {"loss_fn": loop.loss_name, "optimizer": loop.optimizer_name, "lr": loop.lr,
                            "batch_size": loop.batch_size, "seed": loop.seed}
    if "momentum" in loop.optimizer.param_groups[0] and momentum(loop):
        args["momentum"] = momentum(loop)
    if loop.weight_decay:
        args["weight_decay"] = loop.weight_decay
    if loop.clip_grad_norm is not None:
        args["clip_grad_norm"] = loop.clip_grad_norm
    return args


def _why_no_recipe(loop: Loop, data: Any, model: Any, split: Any) -> str:
    if model is None:
        return "its model is your own (a recipe names a model maker: tl.models.mlp, or one registered with tl.register_model)"
    if model.get("seed") is None:
        return "its model was made without a seed (pass seed= to the model maker, so a replay starts from the same weights)"
    if data is None:
        return "its data is your own (a recipe names a data maker: tl.datasets.moons, ..., or one registered with tl.register_data)"
    if loop.has_validation and split is None:
        return "its validation data was given as val_data (a recipe holds out validation_split of the data instead)"
    if loop.loss_name not in LOSSES or loop.optimizer_name not in OPTIMIZERS or loop.scheduler is not None:
        return "its loss, optimizer or scheduler is an object of your own (a recipe names them, without a scheduler)"
    if loop.history.changes:
        return ("it was changed before the playground first saw it, so its first settings are not known; "
                "build it with tl.Loop.from_recipe to share it")
    return ""


def _data_of(loop: Loop) -> tuple[dict[str, Any] | None, float | None]:
    """The made data set the loop trains on, as a recipe's data section, and its validation split (or Nones)."""
    train_idx, val_idx = loop.train_indices, loop.val_indices
    n = len(train_idx) + len(val_idx)
    for name, args in recent_data():
        try:
            X, y = unwrapped(DATA_MAKERS[name])(**args)
        except Exception:  # a maker of the user's that no longer accepts its old arguments
            continue
        if len(y) != n:
            continue
        split = _split_of(n, len(val_idx), loop)
        if split is None:
            continue
        train_X, train_y = loop.train_data
        if _same(X[train_idx], train_X) and _same(y[train_idx], train_y):
            return {"name": name, **args}, split
    return None, None


def _split_of(n: int, n_val: int, loop: Loop) -> float | None:
    """The validation_split that holds out exactly the loop's validation samples (None: none does)."""
    from trainlab.batching import split_validation

    if n_val == 0:
        return 0.0
    for digits in range(1, 7):
        fraction = round(n_val / n, digits)
        if 0 < fraction < 1 and torch.equal(split_validation(n, fraction, loop.seed)[1], loop.val_indices.cpu()):
            return fraction
    return None


def _same(a: Tensor, b: Any) -> bool:
    return isinstance(b, Tensor) and a.shape == b.shape and torch.equal(a, b.detach().cpu().to(a.dtype))


def is_number(value: Any) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- sharing -----------------------------------------------------------------------------------------

#: The file the dashboard's Share writes, next to the notebook.
SHARED_FILE = "run.trainlab.json"


def write(recipe: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a recipe as JSON (checked first: a bad recipe raises ValueError and writes nothing); returns the path."""
    checked(recipe)
    path = Path(path)
    path.write_text(json.dumps(recipe, indent=1) + "\n")
    return path


def shared(query: str | None = None, folder: str | os.PathLike = ".") -> dict[str, Any] | None:
    """The recipe a link's ``?recipe=run.trainlab.json`` names (None without one), read from ``folder``.

    ``query`` defaults to the page's query string, which Voila hands the kernel (``QUERY_STRING``).
    Only a file name in ``folder`` is read, never a path elsewhere. Example (notebook 04)::

        recipe = tl.recipe.shared()
        loop = tl.replay(recipe) if recipe else tl.Loop(...)
    """
    query = os.environ.get("QUERY_STRING", "") if query is None else query
    names = urllib.parse.parse_qs(query.lstrip("?")).get("recipe")
    if not names:
        return None
    name = names[0]
    if Path(name).name != name or name.startswith("."):
        raise ValueError(f"?recipe= names a file next to the notebook, like {SHARED_FILE}; got {name!r}")
    try:
        recipe = json.loads((Path(folder) / name).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the shared run {name!r}: {error}") from None
    checked(recipe)
    return recipe
