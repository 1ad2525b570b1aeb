"""How tests/data/checkpoint_v1.pt was made: by trainlab as of commit 4355326 (checkpoint version 1).

Kept to show what the file holds; do not rerun it to refresh the file: the point of the file is
that it was written by the old code (tests/test_checkpoints.py loads it with today's).
Run from the repository root: python tests/data/make_checkpoint_v1.py
"""

import json
from pathlib import Path

import torch
from torch import nn

import trainlab as tl

HERE = Path(__file__).resolve().parent


def make_loop() -> tl.Loop:
    """A tiny regression loop with dropout, Adam and a validation split: the same every time."""
    g = torch.Generator().manual_seed(1234)
    X, y = torch.randn(20, 4, generator=g), torch.randn(20, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 1))
    return tl.Loop(model, (X, y), "mse", optimizer="adam", lr=0.01, batch_size=6, seed=0, validation_split=0.2)


if __name__ == "__main__":
    loop = make_loop()
    for _ in range(4):  # past an epoch's end (16 training samples: 3 batches), into the next one
        loop.step()
    loop.lr = 0.02  # a live change: recorded in history.changes
    loop.step()
    loop.save(HERE / "checkpoint_v1.pt")
    following = [loop.step()["loss"] for _ in range(4)]
    expected = {"step": loop.state.step - 4, "epoch": 1, "lr": 0.02, "following_losses": following,
                "history_loss": loop.history.history["loss"][:1], "val_loss": loop.history.history["val_loss"][:1]}
    (HERE / "checkpoint_v1.json").write_text(json.dumps(expected, indent=1) + "\n")
