"""The benchmarks' contention gate: a run is timed only on a quiet machine, and a busy one is seen as busy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import harness
from benchmarks.harness import Gate

pytestmark = pytest.mark.skipif(not Gate().enabled, reason="the gate reads /proc/stat (Linux)")


@pytest.fixture
def busy_neighbour():
    """Another process using a whole core, as another session's test run would."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    spinner.kill()
    spinner.wait()


def test_another_process_using_a_core_is_counted_and_this_ones_own_work_is_not(busy_neighbour):
    gate = Gate()
    assert gate.others(0.5) > 0.6
    mark = gate.mark()
    sum(i * i for i in range(2_000_000))  # this process's own work is the run being timed, not a neighbour's
    assert gate.others_since(mark) > 0.6  # still the neighbour alone (within what a 2-core machine allows)


def test_a_row_timed_beside_a_busy_neighbour_is_marked_not_gated_and_redone(busy_neighbour, monkeypatch):
    monkeypatch.setattr(harness, "GATE", Gate(limit=0.3, wait=0.05, retries=1, window=0.1))
    monkeypatch.setattr(harness.gc, "collect", lambda: 0)  # a full collection in pytest's process takes ~0.2 s
    row = harness.compare("sum", lambda: lambda: sum(range(1000)) * 0 + 1, lambda: lambda: 1, rounds=1, target=2.0)
    assert not row.gated and row.disturbed == 2 and row.verdict == "ok (busy machine)"
