"""The widget layer speaks the core's vocabulary: a bad option is a ValueError that names it and says what to
pass, never a raw TypeError, and a near-number is never cut silently (max_points=8.7 is not 8)."""

from __future__ import annotations

import pytest

import trainlab as tl
from trainlab.arguments import number_in, positive_number, whole_number


@pytest.mark.parametrize("options, name", [
    (dict(fps="10"), "fps"), (dict(fps=0), "fps"), (dict(boundary_fps=True), "boundary_fps"),
    (dict(max_points=8.7), "max_points"), (dict(max_points=4), "max_points"), (dict(grid=1.5), "grid"),
    (dict(grid=1), "grid"), (dict(ghosts=-1), "ghosts"), (dict(ghosts="5"), "ghosts"),
    (dict(smoothing=1), "smoothing"), (dict(smoothing="0.9"), "smoothing"),
    (dict(max_ui_fraction="0.05"), "max_ui_fraction"), (dict(speed="fast"), "speed"),
    (dict(watch_timeout="10"), "watch_timeout"), (dict(watch_timeout=float("nan")), "watch_timeout"),
])
def test_a_dashboard_refuses_a_bad_option_by_name_with_an_example(make_loop, options, name):
    loop = make_loop()
    with pytest.raises(ValueError, match=rf"{name}.*like {name}=") as refused:
        tl.Dashboard(loop, **options)
    assert repr(next(iter(options.values())))[:20] in str(refused.value)  # shows what was given


@pytest.mark.parametrize("options, name", [(dict(max_neurons=2.5), "max_neurons"), (dict(grid="20"), "grid")])
def test_the_network_view_refuses_a_bad_size_by_name(make_loop, options, name):
    with pytest.raises(ValueError, match=rf"^{name} must be a whole number of at least \d, like {name}="):
        tl.NetworkView(make_loop(), **options)


def test_numbers_of_any_kind_are_taken_and_returned_as_plain_numbers():
    import numpy as np
    import torch

    assert whole_number(np.int64(9), "max_points", 8, "500") == 9 and type(whole_number(np.int64(9), "n", 1, "1")) is int
    assert positive_number(torch.tensor(2.0), "fps", "12") == 2.0
    assert number_in(np.float32(0.5), "smoothing", 0, 1, "0.9", high_open=True) == 0.5


@pytest.mark.parametrize("value", [True, "3", 3.0, 2, None, [9]])
def test_whole_number_refuses_what_is_not_a_whole_number_of_at_least_least(value):
    with pytest.raises(ValueError, match=r"^n must be a whole number of at least 3, like n=5; got "):
        whole_number(value, "n", 3, "5")


@pytest.mark.parametrize("value, message", [
    (1.0, r"must be a number in \[0, 1\), like s=0.9"), (-0.1, r"\[0, 1\)"), (float("nan"), r"\[0, 1\)"),
    (True, r"\[0, 1\)"),
])
def test_number_in_names_its_interval(value, message):
    with pytest.raises(ValueError, match=message):
        number_in(value, "s", 0, 1, "0.9", high_open=True)
