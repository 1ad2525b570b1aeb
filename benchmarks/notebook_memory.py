"""Row 9: the workshop notebook's kernel at its peak memory, run in a real kernel as a participant would."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

WORKSHOP = Path(__file__).resolve().parent.parent / "notebooks" / "04_live_lab.ipynb"

# After the notebook's own cells: play on (the history grows, the rewind buffer fills),
# then read the kernel's peak resident memory. On Linux that is VmHWM: ru_maxrss would
# also count the benchmark process the kernel was forked from (Linux keeps it across exec).
_PLAY = "dash.play()\ndash.wait(steps=10**9, timeout={seconds})\ndash.pause()"
_REPORT = """\
import json, resource, sys
try:
    with open("/proc/self/status") as status:
        kib = int(next(line for line in status if line.startswith("VmHWM")).split()[1])
except OSError:  # not Linux: ru_maxrss, in bytes on macOS
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
print(json.dumps({"kib": kib, "steps": loop.state.step}))
"""


def workshop_peak_memory(play_seconds: float) -> dict[str, float]:
    """Run every cell of the workshop notebook, play ``play_seconds`` more, and return the kernel's peak MB."""
    notebook = nbformat.read(WORKSHOP, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(_PLAY.format(seconds=play_seconds)),
                       nbformat.v4.new_code_cell(_REPORT)]
    NotebookClient(notebook, timeout=120 + play_seconds, kernel_name="python3",
                   resources={"metadata": {"path": str(WORKSHOP.parent)}}).execute()
    printed = "".join(out.get("text", "") for out in notebook.cells[-1].outputs if out.get("name") == "stdout")
    report = json.loads(printed.splitlines()[-1])  # the last line: a warning may come first
    return {"mb": report["kib"] / 1024, "steps": report["steps"], "play_seconds": play_seconds}
