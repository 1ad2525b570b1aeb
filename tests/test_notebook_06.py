"""Notebook 06 and its answer key: the key is the notebook with its exercises answered; the unfinished
exercises give a report, not an error; nbval's check of "your loop is correct" fails when a mistake is put
back into the answer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import trainlab as tl

ROOT = Path(__file__).resolve().parents[1]
NAME = "06_write_the_loop_yourself.ipynb"
LEARNER = ROOT / "notebooks" / NAME
KEY = ROOT / "notebooks" / "solutions" / NAME


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def exercise(notebook, starts: str) -> str:
    """The source of the exercise cell that starts with ``starts``."""
    return next(c.source for c in notebook.cells if "exercise" in tags(c) and c.source.startswith(starts))


@pytest.mark.docs
def test_the_answer_key_is_the_notebook_with_its_exercises_answered():
    learner, key = read(LEARNER), read(KEY)
    assert [c.id for c in learner.cells] == [c.id for c in key.cells]
    assert learner.metadata == key.metadata
    answered = 0
    for mine, answer in zip(learner.cells, key.cells):
        assert tags(mine) == [t for t in tags(answer) if t != "nbval-check-output"], mine.id
        if "exercise" in tags(mine):
            assert mine.source != answer.source, f"{mine.id}: the answer key leaves an exercise open"
            answered += 1
        else:
            assert mine.source == answer.source, f"{mine.id} differs between the notebook and its answer key"
    assert answered == 3  # my_step, my_train_epoch, the diagnosis
    verdicts = [c for c in key.cells if "nbval-check-output" in tags(c)]
    assert [c.outputs[0]["text"] for c in verdicts] == ["your loop is correct\n", "your epoch is correct\n"]
    assert not any("nbval-check-output" in tags(c) for c in learner.cells)  # an open exercise must not fail


def test_the_unfinished_exercises_give_a_report_not_an_error():
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16], 2, seed=0), (X, y), "cross_entropy", lr=0.1)
    names: dict = {}
    exec(exercise(read(LEARNER), "def my_step"), names)
    exec(exercise(read(LEARNER), "def my_train_epoch"), names)
    step, epoch = tl.check_step(names["my_step"], loop), tl.check_loop(names["my_train_epoch"], loop)
    assert (step.ok, step.stage) == (False, "forward") and "model(inputs)" in step.advice
    assert (epoch.ok, epoch.stage) == (False, "forward")


def test_the_answer_key_diagnoses_its_patients_right():
    diagnosis: dict = {}
    exec(exercise(read(KEY), "my_diagnosis"), diagnosis)
    X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
    for i, letter in enumerate("ABC"):  # seat 0, as the notebook builds its patients
        loop = tl.Loop(tl.models.mlp(2, [32, 32], 2, seed=0), (X, y), "cross_entropy", seed=0)
        tl.faults.plant(loop, "random", seed=0, patient=i)
        assert tl.faults.reveal(loop, guess=diagnosis["my_diagnosis"][letter]).right


def nbval(notebook: nbformat.NotebookNode, folder: Path) -> subprocess.CompletedProcess:
    """Run nbval on ``notebook`` as `make test-notebooks` does (the same flags and sanitizing)."""
    path = folder / NAME
    nbformat.write(notebook, path)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-sanitize-with",
                           str(ROOT / "tests" / "nbval_sanitize.cfg"), "-p", "no:cacheprovider", str(path)],
                          cwd=folder, capture_output=True, text=True, timeout=600)


@pytest.mark.notebooks
def test_nbval_fails_the_your_loop_is_correct_cell_when_a_mistake_is_put_back(tmp_path):
    key = read(KEY)
    code = [c for c in key.cells if c.cell_type == "code"]
    verdict = next(i for i, c in enumerate(code) if "nbval-check-output" in tags(c))
    assert "your loop is correct" in code[verdict].outputs[0]["text"]
    key.cells = key.cells[: key.cells.index(code[verdict]) + 1]  # up to the verdict: the clinic is not needed

    (tmp_path / "as_answered").mkdir()
    (tmp_path / "mistaken").mkdir()
    passed = nbval(key, tmp_path / "as_answered")  # the answer as it is: nbval passes
    assert passed.returncode == 0, passed.stdout[-3000:]

    step = next(c for c in key.cells if c.source.startswith("def my_step"))
    assert "    optimizer.zero_grad()" in step.source
    step.source = step.source.replace("    optimizer.zero_grad()", "    # optimizer.zero_grad()")
    failed = nbval(key, tmp_path / "mistaken")
    assert failed.returncode == 1
    assert re.findall(r"^FAILED .*::Cell (\d+)", failed.stdout, re.M) == [str(verdict)], failed.stdout[-3000:]
    assert "not yet: the gradients are the sum of this batch's and the last one's" in failed.stdout
