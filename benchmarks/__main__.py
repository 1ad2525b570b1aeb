"""Run the benchmarks, print a table and write it as JSON: ``python -m benchmarks [--quick] [--peers]``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks import dashboard_rows, live_page, rows, workloads
from benchmarks.harness import GATE, Row, compare
from benchmarks.memory import history_memory
from benchmarks.notebook_memory import workshop_kernel, workshop_long_play
from benchmarks.workloads import bare, lab

HISTORY_MEMORY_TARGET_MB = 64  # at 1M steps
PEAK_MEMORY_TARGET_MB = 1024  # the workshop notebook's kernel
PAGE_SHARE_TARGET = 0.85  # row 5': training's speed while a page draws the dashboard, over the kernel's alone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few steps each: checks the benchmarks run")
    parser.add_argument("--rounds", type=int, default=None,
                        help="A/B rounds per row, median reported (default 9; 5 with --peers)")
    parser.add_argument("--peers", action="store_true",
                        help="only the peer libraries' table (those installed: pip install -e '.[peers]')")
    parser.add_argument("--json", default=None,
                        help="where to write the results (default benchmarks/results.json; none with --peers)")
    parser.add_argument("--long-play", type=float, default=None, metavar="SECONDS",
                        help="only this: the workshop kernel's memory over a long Play at full speed (Linux)")
    parser.add_argument("--no-gate", action="store_true",
                        help="time runs even while other processes are busy (rows are then marked 'busy machine')")
    args = parser.parse_args(argv)
    GATE.enabled = GATE.enabled and not (args.quick or args.no_gate)  # --quick checks that rows run, not speed
    torch.set_num_threads(1)  # as trainlab's Loop sets it: both sides of every row run on one thread
    rounds = 1 if args.quick else args.rounds or (5 if args.peers else 9)
    machine = {"python": platform.python_version(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "platform": platform.platform(),
               "gate": f"each timed run on a quiet machine (other processes under {GATE.limit} cores)"
               if GATE.enabled else "ungated: other processes may have slowed any run"}
    if args.long_play:
        print(f"{'steps':>9} {'resident MB':>12} {'history rows':>13}")
        for sample in workshop_long_play(args.long_play):
            print(f"{sample['steps']:>9,} {sample['mb']:>12.1f} {sample['history_rows']:>13,}")
        return 0
    if args.peers:
        from benchmarks.peers.table import run_peers, table  # imports no peer library until it runs

        report = {"machine": machine, "quick": args.quick} | run_peers(args.quick, rounds)
        print(table(report))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    return benchmarks(args.quick, rounds, machine, args.json or "benchmarks/results.json")


def benchmarks(quick: bool, rounds: int, machine: dict[str, object], json_path: str) -> int:
    """Rows 1-9: trainlab against the fastest bare loop, redraws, memory, the workshop kernel (and 5', in a page)."""
    scale = 1 if quick else 10
    epochs = 1 if quick else 5  # of digits, for rows 2-4 (57 steps an epoch at batch 32)
    tiny, mlp = workloads.tiny(), workloads.digits_mlp(32)
    results = [
        compare("1. tiny: seed-000 linear, full batch", bare(tiny, 200 * scale), lab(tiny, 200 * scale),
                rounds, 1.40),
        compare("1'. (1)'s bare loop + copying weights, grad norms", bare(tiny, 200 * scale),
                rows.floor(tiny, 200 * scale), rounds, None,
                "informative: the floor for row 1 (both loops are bare PyTorch)"),
        compare("2. MLP 64-128-10 on digits, batch 32", bare(mlp, epochs), lab(mlp, epochs), rounds, 1.20),
        compare("2'. (2) against seed 001's DataLoader loop", rows.seed001(mlp, epochs), lab(mlp, epochs),
                rounds, None, "informative: the baseline is the seed's loop, slower than the fastest"),
        compare("3. digits CNN, batch 64", bare(workloads.digits_cnn(), epochs),
                lab(workloads.digits_cnn(), epochs), rounds, 1.05),
        compare("4. (2) stage by stage", bare(mlp, epochs), lab(mlp, epochs, stages=True), rounds, 1.25),
        # Longer runs here (over a second of play, as in a workshop): the per-click cost of Play's
        # first frame and Pause's last one is not a per-step cost.
        compare("5. (2) with a Dashboard playing", *dashboard_rows.playing(12 * scale), rounds, 1.30,
                "widgets live, messages serialised as in a kernel"),
        compare("6. MLP 64-128-10 on digits, batch 256", bare(workloads.digits_mlp(256), 6 * epochs),
                lab(workloads.digits_mlp(256), 6 * epochs), rounds, 1.05),
        compare("7. MLP 784-1024-512-10 (1.3M params), batch 64", bare(workloads.big_mlp(), epochs),
                lab(workloads.big_mlp(), epochs, rewind_memory_mb=0), rounds, 1.05,
                "random data, 16 steps an epoch; rewind off"),
        compare("7'. (7) with rewind on (16 MB)", bare(workloads.big_mlp(), epochs),
                lab(workloads.big_mlp(), epochs), rounds, 1.10, "keyframes every 16 steps, replay between"),
    ]
    rewinds = rows.rewind_times(workloads.big_mlp(), 20 if quick else 80, [1, 2, 5, 8, 15, 16, 17, 31, 40, 47])
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    redraws = dashboard_rows.redraws(sizes, repeats=1 if quick else 5)
    memory = history_memory(10_000 if quick else 1_000_000)
    kernel = workshop_kernel(play_seconds=2 if quick else 30, speeds=(0, 100, 10), seconds=1 if quick else 20)
    # A page takes a browser and ~40 s: the full run only (the browser tests measure the same way, and assert it).
    page = None if quick else live_page.playing_in_a_page()
    workshop = kernel["memory"]
    print(machine["gate"])
    print(table(results))
    print("\n8. redraw cost as the history grows (bounded by the point budget):")
    for row in redraws:
        print(f"   {row['steps']:>9,} steps: {row['redraw_ms']:7.1f} ms, {row['bytes_per_redraw'] / 1024:8.1f} KiB sent")
    if page is not None:
        print(f"\n5'. the workshop app playing in Voila, drawn by Chromium ({page['rounds']} rounds of "
              f"{page['seconds']:g} s, alternating): {page['playing_steps_per_s']:,.0f} steps/s against "
              f"{page['bare_steps_per_s']:,.0f} with no dashboard: training share {page['training_share']:.2f} "
              f"(target >= {PAGE_SHARE_TARGET}); loss plot {page['loss_refresh_per_s']:.1f} refreshes/s (target >= 10)")
    print(f"\n7''. rewind(n) on (7) with rewind on, n in {rewinds['amounts']} (depth {rewinds['depth']}): "
          f"worst {rewinds['worst_s'] * 1e3:.0f} ms (target < 200 ms), exact: {rewinds['exact']}")
    print(f"\nhistory memory at {memory['steps']:,} steps: {memory['mb']:.1f} MB (target <= {HISTORY_MEMORY_TARGET_MB} MB)")
    print(f"\n9. workshop notebook's kernel, every cell run and {workshop['steps']:,} steps played: "
          f"peak {workshop['mb']:.0f} MB (target <= {PEAK_MEMORY_TARGET_MB} MB)")
    print("\n9'. its CPU while playing (1.0 = one core; the figures in docs/instructors.md):")
    for speed, share in kernel["cpu"].items():
        pace = "full speed" if speed == "0" else f"{speed} steps/s"
        print(f"   {pace:>14}: {share['cpu_share']:.2f} core, {share['steps_per_second']:,.0f} steps/s reached")
    report = {
        "machine": machine, "quick": quick, "rounds": rounds,
        "rows": [asdict(row) | {"verdict": row.verdict} for row in results],
        "redraws": redraws,
        "rewind_times": rewinds,
        "history_memory": memory,
        "workshop_kernel_peak": workshop,
        "workshop_kernel_cpu": kernel["cpu"],
        "dashboard_in_a_page": page,
    }
    Path(json_path).write_text(json.dumps(report, indent=2))
    missed = [row.name for row in results if row.verdict.startswith("MISSED")]
    missed += [] if rewinds["exact"] and rewinds["worst_s"] < 0.2 else ["rewind"]
    missed += ["history memory"] if memory["mb"] > HISTORY_MEMORY_TARGET_MB else []
    missed += ["workshop memory"] if workshop["mb"] > PEAK_MEMORY_TARGET_MB else []
    missed += ["dashboard in a page"] if page and page["training_share"] < PAGE_SHARE_TARGET else []
    return 1 if missed and not quick else 0


def table(results: list[Row]) -> str:
    """A plain-text table of the rows."""
    header = (f"{'benchmark':50} {'bare ms/step':>13} {'trainlab ms/step':>17} {'ratio':>7} {'target':>7} "
              f"{'redone':>6}")
    lines = [header, "-" * len(header)]
    for row in results:
        target = f"<={row.target:g}" if row.target else "-"
        lines.append(f"{row.name:50} {row.bare_s * 1e3:13.3f} {row.lab_s * 1e3:17.3f} {row.ratio:7.3f} "
                     f"{target:>7} {row.disturbed:>6} {row.verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
