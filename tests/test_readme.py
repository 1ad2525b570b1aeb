"""The README's code runs as written: a learner copies it first."""

import re
import runpy
from pathlib import Path

import pytest

# Documentation and packaging checks: `pytest -m "not docs"` leaves them out (a quick unit run).
pytestmark = pytest.mark.docs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_python_block_in_the_readme_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)  # it saves a checkpoint
    for i, code in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(code)
        runpy.run_path(str(script))
    assert (tmp_path / "run.pt").exists()
