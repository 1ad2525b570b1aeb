"""The Makefile's commands, as `make -n` prints them (nothing is run)."""

import os
import subprocess
from pathlib import Path

import pytest

# Documentation and packaging checks: `pytest -m "not docs"` leaves them out (a quick unit run).
pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parent.parent


def planned(*args: str) -> str:
    """What `make` would run, without running it (the venv stamp is treated as up to date)."""
    done = subprocess.run(["make", "-n", "-o", ".venv/.installed", *args], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout


def test_make_lab_passes_lab_args_and_allows_root_when_root():
    command = planned("lab", "LAB_ARGS=--no-browser --port 8899")
    assert "jupyter lab notebooks/" in command and "--no-browser --port 8899" in command
    assert ("--allow-root" in command) == (os.geteuid() == 0)
