"""The Makefile's commands, as `make -n` prints them (nothing is run)."""

import os
import re
import subprocess
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

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


def test_make_lab_opens_the_workshop_notebook_with_the_projects_jupyter_setup():
    command = planned("lab")
    assert "jupyter lab notebooks/04_live_lab.ipynb" in command  # JupyterLab opens it, rooted in notebooks/
    assert f"JUPYTER_CONFIG_PATH={ROOT}/jupyter" in command and f"JUPYTER_PATH={ROOT}/jupyter" in command


def test_make_app_serves_the_workshop_notebook_in_voila_and_passes_app_args():
    command = planned("app", "APP_ARGS=--no-browser --port 8866")
    assert "bin/voila notebooks/04_live_lab.ipynb --no-browser --port 8866" in command
    assert f"JUPYTER_CONFIG_PATH={ROOT}/jupyter" in command and f"JUPYTER_PATH={ROOT}/jupyter" in command


def test_what_make_lab_installs_holds_voila():
    # .venv/.installed installs the project itself (`pip install -e .`): its dependencies are what make lab gets.
    recipe = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    assert re.search(r"pip install --quiet -e \.$", recipe, re.M)
    assert "voila" in {Requirement(line).name for line in requires("trainlab") if "extra ==" not in line}


def test_the_learners_folder_holds_only_notebooks_their_readme_and_answer_keys():
    assert {p.name for p in (ROOT / "notebooks").iterdir() if not p.name.startswith(".")} == \
        {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} | {"README.md", "solutions"}
    keys = {p.name for p in (ROOT / "notebooks" / "solutions").iterdir() if not p.name.startswith(".")}
    assert keys and keys <= {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}  # each one a notebook's key


def test_make_test_notebooks_runs_nbval_on_the_answer_keys_too_and_then_the_tests_that_run_nbval():
    command = planned("test-notebooks")
    nbval = re.search(r"^.*--nbval-lax.* (\S+)$", command, re.M).group(1)
    assert nbval == "notebooks"  # nbval collects notebooks/solutions/ inside it
    assert re.search(r"pytest .*tests -m notebooks$", command, re.M)
    # make test runs the rest of the tests once, and the notebook ones through test-notebooks
    assert re.search(r'pytest .*tests -m "not notebooks"$', planned("test"), re.M)


def test_nbval_is_given_a_sanitize_file_that_exists():
    command = planned("test-notebooks")
    path = re.search(r"--nbval-sanitize-with (\S+)", command).group(1)
    assert (ROOT / path).is_file() and "regex:" in (ROOT / path).read_text()
