"""One vocabulary for checking arguments, in every layer: a bad value is a ValueError that names the
argument, says what to pass with an example, and shows what was given.

    fps = positive_number(fps, "fps", example="12")           # "fps must be a number above 0, like fps=12; got '10'"
    grid = whole_number(grid, "grid", least=2, example="60")  # 8.7 is refused, not cut to 8

Numbers may come as Python, numpy or 0-d torch numbers; True and False are never numbers here.
(``options.py`` keeps the loop's options: losses, optimizers, the learning rate, the batch size.)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from torch import Tensor

__all__ = ["real_number", "is_whole_number", "is_bool", "short", "positive_or_none", "positive_number",
           "number_in", "whole_number"]


def real_number(value: Any) -> float | None:
    """One real number as a float: an int, float, numpy scalar or 0-d array/tensor; None for anything else."""
    if is_bool(value) or isinstance(value, (str, bytes, complex)) or not hasattr(value, "__float__"):
        return None
    if isinstance(value, Tensor) and value.is_complex():
        return None
    if getattr(value, "shape", ()) != () or getattr(getattr(value, "dtype", None), "kind", "f") not in "iuf":
        return None  # arrays and tensors holding one element among others, complex numpy scalars
    try:
        return float(value)
    except OverflowError:
        return math.inf  # an int like 10**400 is too big for a float: treat it as infinite
    except (TypeError, ValueError):
        return None


def is_whole_number(value: Any) -> bool:
    """True for whole numbers (Python's and numpy's), but not for True/False."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_bool(value: Any) -> bool:
    """Python, numpy and tensor booleans: True is not a learning rate."""
    return isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")


def short(value: Any) -> str:
    """A repr fit for a message (10**400 has 401 digits)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def positive_or_none(value: Any, meaning: str) -> float | None:
    """None, or a finite number above zero as a float; else a ValueError that starts with ``meaning``."""
    if value is None:
        return None
    number = real_number(value)
    if number is None or not 0 < number < math.inf:
        raise ValueError(f"{meaning}; got {short(value)}")
    return number


def positive_number(value: Any, name: str, example: str) -> float:
    """A finite number above 0, as a float; else a ValueError naming ``name`` with ``name=example``."""
    number = real_number(value)
    if number is None or not 0 < number < math.inf:
        raise ValueError(f"{name} must be a number above 0, like {name}={example}; got {short(value)}")
    return number


def number_in(value: Any, name: str, low: float, high: float, example: str, *, low_open: bool = False,
              high_open: bool = False) -> float:
    """A number from ``low`` to ``high`` (either end left out when open), as a float; else a ValueError."""
    number = real_number(value)
    above = number is not None and (number > low if low_open else number >= low)
    below = number is not None and (number < high if high_open else number <= high)
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, like {name}={example}; got {short(value)}")
    return number


def whole_number(value: Any, name: str, least: int, example: str) -> int:
    """A whole number of at least ``least``, as an int (8.7 is refused, never cut to 8); else a ValueError."""
    if not is_whole_number(value) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, like {name}={example}; "
                         f"got {short(value)}")
    return int(value)
