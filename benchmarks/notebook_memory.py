"""Rows 9 and 9': the workshop notebook's kernel at its peak memory, and its CPU share while playing
at a pace, run in a real kernel as a participant would (the per-learner figures in docs/instructors.md)."""

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


# Play at each pace for a while and print the kernel's CPU time over wall time (all its threads:
# training, drawing, sending the widgets' messages). 1.0 is one whole core.
_CPU = """\
import json, resource, time
shares = {{}}
for speed in {speeds}:
    dash.speed = speed or None
    cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    wall, used, step = time.monotonic(), cpu(), loop.state.step
    dash.play(); dash.wait(timeout={seconds}); dash.pause()
    shares[speed] = {{"cpu_share": (cpu() - used) / (time.monotonic() - wall),
                      "steps_per_second": (loop.state.step - step) / (time.monotonic() - wall)}}
print(json.dumps(shares))
"""


# Play for a long time, reading the kernel's resident memory every ``every`` seconds: does it level off?
_LONG_PLAY = """\
import json
def resident_mb():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024
samples = []
dash.play()
for _ in range({samples}):
    dash.wait(timeout={every})
    samples.append({{"steps": loop.state.step, "mb": round(resident_mb(), 1), "history_rows": len(loop.history)}})
dash.pause()
print(json.dumps({{"samples": samples}}))
"""


def _run_workshop(*cells: str, timeout: float) -> list[dict]:
    """Run the workshop notebook and then ``cells`` in a fresh kernel; each cell's last printed line, as JSON."""
    notebook = nbformat.read(WORKSHOP, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(cell) for cell in cells]
    NotebookClient(notebook, timeout=120 + timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(WORKSHOP.parent)}}).execute()
    return [_last_json(cell) for cell in notebook.cells[-len(cells):]]


def _last_json(cell: dict) -> dict:
    """A cell's last printed line, as JSON (the last: a warning may come first); {} if it printed nothing."""
    printed = "".join(out.get("text", "") for out in cell.outputs if out.get("name") == "stdout")
    return json.loads(printed.splitlines()[-1]) if printed.strip() else {}


def workshop_peak_memory(play_seconds: float) -> dict[str, float]:
    """Run every cell of the workshop notebook, play ``play_seconds`` more, and return the kernel's peak MB."""
    return workshop_kernel(play_seconds, speeds=())["memory"]


def workshop_cpu_share(speeds: tuple[float, ...] = (0, 100, 10), seconds: float = 20) -> dict[str, dict]:
    """The workshop kernel's CPU share (1.0: one core) and steps per second while playing at each pace (0: max)."""
    return workshop_kernel(0, speeds, seconds)["cpu"]


def workshop_kernel(play_seconds: float, speeds: tuple[float, ...] = (0, 100, 10),
                    seconds: float = 20) -> dict[str, dict]:
    """Both, from one kernel: its peak memory after ``play_seconds`` of Play, then its CPU share at each pace."""
    _, memory, cpu = _run_workshop(_PLAY.format(seconds=play_seconds), _REPORT,
                                      _CPU.format(speeds=list(speeds), seconds=seconds),
                                      timeout=play_seconds + len(speeds) * seconds)
    return {"memory": {"mb": memory["kib"] / 1024, "steps": memory["steps"], "play_seconds": play_seconds},
            "cpu": cpu}  # pace ("0": full speed) -> cpu_share, steps_per_second


def workshop_long_play(seconds: float = 360, every: float = 20) -> list[dict]:
    """The workshop kernel's resident MB, steps and history rows every ``every`` seconds of a long Play (Linux)."""
    every = min(every, seconds)
    samples = max(1, round(seconds / every))
    (report,) = _run_workshop(_LONG_PLAY.format(samples=samples, every=every), timeout=seconds)
    return report["samples"]
