"""Time trainlab and every installed peer library on the same workloads, each next to the fastest bare loop."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict
from types import ModuleType
from typing import Any

import torch

from benchmarks.harness import Row, compare
from benchmarks.peers import MODULES, load
from benchmarks.workloads import Workload, bare, big_mlp, digits_cnn, digits_mlp, tiny

__all__ = ["run_peers", "table"]

# Each workload with the epochs of a full run and a column title. A run is one fit: long enough that
# what a library does once a fit (Lightning ~35 ms, Keras ~60 ms here) is a few percent of it.
WORKLOADS: list[tuple[Callable[[], Workload], int, str]] = [
    (tiny, 1000, "tiny linear"), (lambda: digits_mlp(32), 4, "digits MLP bs32"),
    (digits_cnn, 4, "digits CNN bs64"), (big_mlp, 6, "1M MLP bs64"), (lambda: digits_mlp(256), 24, "digits MLP bs256")]


def run_peers(quick: bool, rounds: int) -> dict[str, Any]:
    """Compare each importable peer with the fastest bare loop on every workload; print what is skipped."""
    workloads = [(make(), 2 if quick else epochs) for make, epochs, _ in WORKLOADS]
    peers: list[dict[str, Any]] = []
    for name in MODULES:
        module = load(name)
        if isinstance(module, str):
            print(f"skipped {name.removeprefix('with_')}: not importable ({module})", flush=True)
            continue
        print(f"timing {module.NAME} {module.version()} ...", flush=True)
        peers.append({"name": module.NAME, "version": module.version(), "features": module.FEATURES,
                      "rows": [asdict(_compare(module, workload, epochs, rounds)) for workload, epochs in workloads]})
    return {"workloads": [title for _, _, title in WORKLOADS], "steps": [epochs * workload.steps_per_epoch()
            for workload, epochs in workloads], "rounds": rounds, "peers": peers}


def _compare(module: ModuleType, workload: Workload, epochs: int, rounds: int) -> Row:
    torch.set_num_threads(1)  # for both sides, whatever a library set before
    return compare(f"{module.NAME}: {workload.name}", bare(workload, epochs),
                   lambda: module.build(workload, epochs), rounds, None)


def table(report: dict[str, Any]) -> str:
    """ms/step of each library on each workload, with its ratio to the fastest bare loop."""
    names, peers = report["workloads"], report["peers"]
    width = 18
    header = f"{'library':24}{'version':>8}" + "".join(f"{name:>{width}}" for name in names)
    steps = "".join(f"{f'{n} steps a run':>{width}}" for n in report["steps"])
    title = f"ms/step (ratio to the fastest bare loop), median of {report['rounds']} alternating rounds, 1 torch thread"
    lines = [title, report["machine"]["gate"], "", header, f"{'':32}{steps}", "-" * len(header)]
    if peers:
        bare_ms = [statistics.median(peer["rows"][i]["bare_s"] for peer in peers) * 1e3 for i in range(len(names))]
        lines.append(f"{'fastest bare loop':24}{torch.__version__.split('+')[0]:>8}"
                     + "".join(f"{ms:>{width}.3f}" for ms in bare_ms))
    for peer in peers:
        cells = "".join(f"{_cell(row):>{width}}" for row in peer["rows"])
        lines.append(f"{peer['name']:24}{peer['version']:>8}{cells}")
    lines += ["", "kept on every step, besides the training itself:"]
    lines += [f"  {peer['name']}: {peer['features']}" for peer in peers]
    return "\n".join(lines)


def _cell(row: dict[str, Any]) -> str:
    busy = "" if row["gated"] else "?"  # a run on a busy machine: read with care
    return f"{row['lab_s'] * 1e3:.3f} ({row['ratio']:.2f}x{busy})"
