"""Rows 5 and 8: the cost of a playing dashboard, and of redraws as the history grows."""

from __future__ import annotations

import time
from collections.abc import Callable

import trainlab as tl
from benchmarks import headless
from benchmarks.workloads import Factory, bare, digits_mlp


def playing(epochs: int) -> tuple[Factory, Factory]:
    """Row 5: row 2's MLP with a Dashboard attached and playing (default render budget), and the fastest bare loop."""
    headless.install()
    workload = digits_mlp(32)
    steps = epochs * workload.steps_per_epoch()

    def lab() -> Callable[[], int]:
        loop = tl.Loop(workload.fresh_model(), (workload.inputs, workload.targets), workload.loss,
                       lr=workload.lr, batch_size=workload.batch_size)
        dash = tl.Dashboard(loop)
        headless.show(dash)

        def run() -> int:
            dash.play()
            dash.wait(steps=steps, timeout=600)
            dash.pause()
            done = loop.state.step
            dash.close()
            return done
        return run
    return bare(workload, epochs), lab


def redraws(sizes: list[int], repeats: int = 5) -> list[dict[str, float]]:
    """Row 8: one redraw's time and bytes sent, with histories of each size in ``sizes``."""
    headless.install()
    results = []
    for size in sizes:
        X, y = tl.datasets.moons(n=200, seed=0)
        loop = tl.Loop(tl.models.mlp(2, [16, 16], 2, seed=0), (X, y), "cross_entropy", validation_split=0.2)
        loop.fit(epochs=1)  # real rows first, then a long made-up tail of the same shape
        norms = [1.0] * len(loop.param_names)
        for i in range(size - len(loop.history)):
            loop.history.record_step({"epoch": 1 + i // 1000, "loss": 0.5 + (i % 7) / 10, "accuracy": 0.8, "lr": 0.1, "batch_size": 32, "grad_norm": 1.0}, norms)
        dash = tl.Dashboard(loop)
        headless.show(dash)
        times, sizes_sent = [], []
        for _ in range(repeats):
            loop.history.record_step({"epoch": 99, "loss": 0.4, "accuracy": 0.8, "lr": 0.1, "batch_size": 32, "grad_norm": 1.0}, norms)  # a live redraw has news to show
            headless.reset_counters()
            start = time.perf_counter()
            dash.redraw()
            times.append(time.perf_counter() - start)
            sizes_sent.append(headless.SerializingComm.sent_bytes)
        dash.close()
        results.append({"steps": size, "redraw_ms": 1e3 * sorted(times)[len(times) // 2],
                        "bytes_per_redraw": sorted(sizes_sent)[len(sizes_sent) // 2]})
    return results
