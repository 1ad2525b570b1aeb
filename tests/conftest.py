"""Fixtures every test folder shares: the loops of ``loops.py``, and torch's thread count left as found."""

from __future__ import annotations

import gc
import sys
from typing import Callable

import pytest
import torch

import trainlab as tl
from loops import moons_loop, regression_loop


@pytest.fixture
def make_regression_loop() -> Callable[..., tl.Loop]:
    """``make_regression_loop(optimizer=..., n=..., ...)``: see ``loops.regression_loop``."""
    return regression_loop


@pytest.fixture
def make_moons_loop() -> Callable[..., tl.Loop]:
    """``make_moons_loop(n=..., lr=..., ...)``: see ``loops.moons_loop``."""
    return moons_loop


@pytest.fixture(autouse=True, scope="module")
def loops_let_go_of_torch_threads():
    """After each module, its loops are gone, so torch has the thread count it had before them.

    A loop built with ``threads=1`` sets torch's threads until the last such loop is collected;
    widgets and reference cycles can keep a loop alive past its test, and a later test that
    counts on torch's own setting (test_interrupts_and_threads) would then depend on the order.
    """
    yield
    if "ipywidgets" in sys.modules:  # a widget left open is kept by ipywidgets' registry, with its loop
        sys.modules["ipywidgets"].Widget.close_all()
    gc.collect()
