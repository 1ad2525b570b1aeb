"""Downsampling keeps spikes and a fixed point budget; EMA smoothing matches a plain loop."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainlab.widgets.series import Downsampler, Ema, downsample


def test_short_columns_are_kept_whole():
    y = np.arange(100.0)
    assert np.array_equal(downsample(y, 500), np.arange(100))


def test_a_long_column_fits_the_budget_and_keeps_a_single_spike():
    y = np.ones(1_000_000, np.float32)
    y[123_457] = 50.0  # one exploding step among a million
    y[876_543] = -3.0
    rows = downsample(y, 500)
    assert len(rows) <= 500
    assert 123_457 in rows and 876_543 in rows
    assert np.all(np.diff(rows) > 0)  # in time order, no repeats


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=3000),
       st.integers(8, 120),
       st.lists(st.integers(1, 400), min_size=1, max_size=12))
def test_incremental_growth_matches_the_contract(values, max_points, growth):
    """Fed a growing column in uneven pieces: always within budget, sorted, and both extremes kept."""
    column = np.asarray(values, np.float64)
    sampler = Downsampler(max_points)
    n = 0
    for extra in growth + [len(column)]:
        n = min(len(column), n + extra)
        rows = sampler.indices(column[:n])
        assert len(rows) <= max_points
        assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < n
        seen = column[:n][rows]
        assert seen.min() == column[:n].min() and seen.max() == column[:n].max()


def test_a_replaced_column_is_detected_when_it_shrinks():
    sampler = Downsampler(16)
    sampler.indices(np.arange(1000.0))
    rows = sampler.indices(np.zeros(40))  # e.g. a rewind: a shorter, different history
    assert len(rows) <= 16 and rows[-1] < 40


def test_points_are_float64_numpy_arrays_on_the_step_axis():
    x, y = Downsampler(500).points(np.array([3.0, 2.0, 1.0], np.float32))
    assert x.dtype == y.dtype == np.float64
    assert x.tolist() == [1.0, 2.0, 3.0]  # step numbers start at 1


def test_ema_matches_a_plain_debiased_loop_and_skips_non_finite_values():
    values = [4.0, 2.0, math.nan, 1.0, 3.0]
    ema = Ema(0.9)
    first = ema(np.array(values[:2])).copy()
    smoothed = ema(np.array(values))  # incremental: only the new rows are computed
    expected, total, weight = [], 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            total, weight = 0.9 * total + 0.1 * v, 0.9 * weight + 0.1
        expected.append(total / weight)
    assert np.allclose(smoothed, expected)
    assert np.allclose(first, expected[:2])
    assert smoothed[0] == 4.0  # debiased: the first point is not pulled toward 0


def test_ema_starts_at_the_first_value_and_keeps_a_constant_column_exactly():
    # Off by a rounding error, the smoothed curve beside the raw one made the loss plot's whole y
    # range 1e-16 wide after the first step: plotly.js cannot lay that out (Infinity in its SVG).
    losses = np.random.default_rng(0).random(1000).astype(np.float32).astype(np.float64)  # as recorded
    firsts = np.array([Ema(0.9)(losses[i:i + 1])[0] for i in range(len(losses))])
    assert np.array_equal(firsts, losses)
    for loss in losses[:50]:
        constant = np.full(200, loss)
        constant[7] = math.nan  # skipped, as before
        assert set(Ema(0.9)(constant).tolist()) == {loss}


@pytest.mark.parametrize("smoothing", [0.0, 0.3, 0.9, 0.99, 0.999])
def test_ema_in_vectorised_blocks_matches_the_plain_loop_however_the_column_grows(smoothing):
    rng = np.random.default_rng(1)
    values = rng.random(3000) * 10 + 1e3
    values[rng.random(3000) < 0.05] = np.nan
    values[:3] = np.nan  # nothing finite yet: NaN until the first value
    ema = Ema(smoothing)
    for end in (1, 7, 300, 301, 2000, 3000):
        smoothed = ema(values[:end])
    expected, mean, weight = [], 0.0, 0.0
    for value in values:
        if math.isfinite(value):
            weight = smoothing * weight + (1 - smoothing)
            mean += (1 - smoothing) / weight * (value - mean)
        expected.append(mean if weight else math.nan)
    np.testing.assert_allclose(smoothed, expected, rtol=1e-12)
