"""The core stands alone (no widget libraries), and its hot path syncs with the host sparingly."""

import re
import subprocess
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

import trainlab as tl

BLOCKED_IMPORT = """
import sys
for name in ("ipywidgets", "plotly", "anywidget", "traitlets"):
    sys.modules[name] = None  # any import of them now fails
import trainlab as tl
X, y = tl.datasets.moons(n=50, seed=0)
loop = tl.Loop(tl.models.mlp(2, [4], 2), (X, y), "cross_entropy")
loop.fit(epochs=1)
assert "trainlab.widgets" not in sys.modules
try:
    tl.Dashboard
except ImportError:
    print("core ok; Dashboard needs the widget libraries")
"""


def test_the_core_imports_and_trains_with_widget_libraries_blocked():
    result = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "core ok" in result.stdout


class CountHostSyncs(TorchFunctionMode):
    """Counts the calls that copy a tensor's value to Python (each one is a device sync)."""

    SYNCS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__,
             torch.Tensor.__int__, torch.Tensor.numpy}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.SYNCS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_backward_records_every_layer_norm_with_one_host_sync():
    X, y = tl.datasets.moons(n=64, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16, 16, 16], 2, seed=0), (X, y), "cross_entropy")
    assert len(loop.param_names) == 8
    loop.forward(); loop.loss()
    with CountHostSyncs() as counter:
        norms = loop.backward()
    assert len(norms) == 8
    assert counter.count == 1  # all 8 norms (and the batch's correct count) in one .tolist()
    with CountHostSyncs() as counter:
        loop.update()
    assert counter.count == 0  # the update records numbers that are already on the host


def test_a_whole_step_costs_two_syncs():
    X, y = tl.datasets.moons(n=64, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16], 2, seed=0), (X, y), "cross_entropy")
    loop.step()
    with CountHostSyncs() as counter:
        loop.step()
    assert counter.count == 2  # the loss (to check it is finite) and the norms


# --- seams: only the loop's own files read its private attributes ---------------------------------

PACKAGE = Path(tl.__file__).resolve().parent
# Loop, and the files it is made of: its run state and open batch, its time travel and keyframes.
LOOP_FILES = {"loop.py", "state.py", "time_travel.py", "keyframes.py"}
# loop._batch, self._loop._data, lp._guard (a handler's name for it)... but not loop.__class__
PRIVATE_READ = re.compile(r"\b(?:_?loop|lp)\._[a-z]\w*")


def test_no_module_but_the_loops_own_files_reads_the_loops_private_attributes():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):  # the widget layer too: it uses only the public API
        if path.parent == PACKAGE and path.name in LOOP_FILES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE_READ.search(line.split("#", 1)[0]):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "reads of the loop's private attributes; publish what they need:\n" + "\n".join(offenders)


def test_loop_is_one_object_of_its_own():
    assert tl.Loop.__bases__ == (object,)  # no base class of the project's own: it holds its parts


def test_the_loop_reads_in_one_sitting_and_no_function_runs_long():
    import ast

    assert len((PACKAGE / "loop.py").read_text().splitlines()) < 600
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not long, "functions over 60 lines: " + ", ".join(long)
