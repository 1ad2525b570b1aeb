"""Which data and model makers exist, by name, and what a made thing was made from.

A recipe (``recipe.py``) names its data by a data maker (``"moons"``, any ``tl.datasets``
function or one a user registers) and its model by a model maker (``"mlp"``, ``"cnn"``, or a
user's): the registries here map those names to the functions. Every registered maker also
notes what it made: a model carries ``model.made_by`` (its maker's name and arguments), and the
last few data sets made are listed (``recent_data``), so a loop built by hand from
``tl.datasets.moons(...)`` and ``tl.models.mlp(...)`` can still be told what it was built from.

Example::

    @tl.register_data("rings")
    def rings(n=400, noise=0.1, seed=0): ...     # returns (X, y) tensors, like tl.datasets'

    tl.Loop.from_recipe({..., "data": {"name": "rings", "n": 200}, ...})
"""

from __future__ import annotations

import functools
import inspect
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor, nn

__all__ = ["DATA_MAKERS", "MODEL_MAKERS", "ModelMaker", "register_data", "register_model", "data_maker",
           "model_maker", "recent_data", "arguments_of", "check_arguments"]

#: Data makers by name: ``fn(**args) -> (X, y)``.
DATA_MAKERS: dict[str, Callable[..., tuple[Any, Tensor]]] = {}


@dataclass(frozen=True)
class ModelMaker:
    """A model maker, and which of its arguments the data decides (``sizes(X, y) -> {argument: value}``)."""

    fn: Callable[..., nn.Module]
    sizes: Callable[[Tensor, Tensor], dict[str, int]]


#: Model makers by name.
MODEL_MAKERS: dict[str, ModelMaker] = {}

_RECENT: deque[tuple[str, dict[str, Any]]] = deque(maxlen=8)  # the data sets made last, newest last


def arguments_of(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every argument of a call to ``fn`` by name, defaults filled in (a TypeError if they do not fit)."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def check_arguments(fn: Callable[..., Any], arguments: dict[str, Any], what: str) -> None:
    """A ValueError naming the arguments ``fn`` does not take, or the ones it needs and did not get."""
    try:
        inspect.signature(fn).bind(**arguments)
    except TypeError as error:
        accepted = ", ".join(inspect.signature(fn).parameters)
        raise ValueError(f"{what}: {error} (it takes: {accepted})") from None


def data_maker(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a data maker under ``name``; each call is noted in ``recent_data``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def make(*args: Any, **kwargs: Any) -> Any:
            made = fn(*args, **kwargs)
            _RECENT.append((name, arguments_of(fn, args, kwargs)))
            return made

        DATA_MAKERS[name] = make
        return make

    return register


def model_maker(name: str, sizes: Callable[[Tensor, Tensor], dict[str, int]] | None = None
                ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a model maker under ``name``; each model it makes carries ``made_by``.

    ``sizes(X, y)`` gives the arguments the data decides; by default ``in_features`` (the inputs'
    width) and ``out_features`` (the number of classes, or of targets).
    """

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        @functools.wraps(fn)
        def make(*args: Any, **kwargs: Any) -> nn.Module:
            model = fn(*args, **kwargs)
            model.made_by = {"name": name, **arguments_of(fn, args, kwargs)}
            return model

        MODEL_MAKERS[name] = ModelMaker(make, sizes or widths)
        return make

    return register


def register_data(name: str, fn: Callable[..., Any] | None = None) -> Any:
    """Register your own data maker ``fn(**args) -> (X, y)`` under ``name`` (or use it as a decorator).

    The dashboard's data-set menu lists it, and recipes can name it. Returns the registered function.
    """
    _check_name(name, DATA_MAKERS, "data")
    return data_maker(name) if fn is None else data_maker(name)(fn)


def register_model(name: str, fn: Callable[..., nn.Module] | None = None,
                   sizes: Callable[[Tensor, Tensor], dict[str, int]] | None = None) -> Any:
    """Register your own model maker under ``name`` (or use it as a decorator); see ``model_maker``."""
    _check_name(name, MODEL_MAKERS, "model")
    return model_maker(name, sizes) if fn is None else model_maker(name, sizes)(fn)


def recent_data() -> list[tuple[str, dict[str, Any]]]:
    """(maker name, arguments) of the data sets made last, newest first."""
    return list(reversed(_RECENT))


def widths(X: Tensor, y: Tensor) -> dict[str, int]:
    """An MLP's sizes for ``(X, y)``: the inputs' width, and the number of classes (or of targets)."""
    if X.dim() != 2:
        raise ValueError(f"an MLP takes one row of numbers per sample; these inputs have shape {tuple(X.shape[1:])}")
    outputs = int(y.max()) + 1 if not y.is_floating_point() else (y.shape[1] if y.dim() == 2 else 1)
    return {"in_features": int(X.shape[1]), "out_features": outputs}


def _check_name(name: Any, registry: dict[str, Any], kind: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} maker's name is a word like 'rings'; got {name!r}")
