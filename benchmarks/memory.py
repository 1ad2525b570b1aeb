"""How much memory a long history takes."""

from __future__ import annotations

import trainlab as tl


def history_memory(steps: int, layers: int = 4) -> dict[str, float]:
    """Record ``steps`` rows into a History (4 layers, like the MLP) and measure its arrays."""
    history = tl.History([f"layer{i}" for i in range(layers)], ["loss", "accuracy"])
    norms = [1.0] * layers
    for i in range(steps):
        history.record_step({"epoch": i // 100, "loss": 0.5, "accuracy": 0.9, "lr": 0.01, "batch_size": 32, "grad_norm": 1.0}, norms)
    line = history._line
    nbytes = sum(column.nbytes for column in line.scalars.values()) + line.layers.nbytes
    return {"steps": steps, "mb": nbytes / 2**20}
