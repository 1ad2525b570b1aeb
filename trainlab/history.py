"""History: what happened at every step and every epoch, plus the branches left behind.

Per-epoch numbers live in ``history.history``, a Keras-style dict of lists, so code
written for Keras' ``History`` works unchanged::

    plt.plot(history.history["loss"], label="train")
    plt.plot(history.history["val_loss"], label="validation")

Per-step numbers live in growing numpy arrays (``history.steps``), one column per
quantity, so a million steps cost tens of megabytes, not a million dicts.

The memory stays bounded however long a dashboard plays: the last ``full_steps`` steps
(100,000 by default) are kept at full resolution; older ones are thinned to every k-th step
(k a power of two, doubling as needed), so at most ``2 * full_steps`` rows are ever held,
about 20 MB for the workshop's network (72 bytes a row). ``steps["step"]`` says which step
each row is. The per-epoch lists, the changes and the branches' starts are always whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from trainlab.arguments import is_whole_number

__all__ = ["History", "Branch", "HistoryMark", "FULL_STEPS"]

# Scalar per-step columns and their storage types (float32 where float32 is the
# precision the numbers had anyway; lr in float64 so 1e-3 prints as 1e-3).
_SCALARS: dict[str, type] = {
    "epoch": np.int32,
    "loss": np.float32,
    "accuracy": np.float32,
    "lr": np.float64,
    "batch_size": np.int32,
    "grad_norm": np.float64,  # before clipping
    "clipped_grad_norm": np.float64,  # after clipping (the same when the loop does not clip)
}
_FIRST_CAPACITY = 1024
MAX_BRANCHES = 20
#: Steps kept at full resolution by default; older ones are thinned (see the module's docstring).
FULL_STEPS = 100_000


class _Timeline:
    """The storage of one line of history. Rows below ``n`` are never written again (but for an
    accuracy counted a few steps late, see ``History.fill``), only thinned away (into new arrays);
    a restore starts a new timeline instead. Marks count steps,
    not rows, so they stay valid across thinning and can share the timeline safely."""

    def __init__(self, n_layers: int, epoch_keys: Sequence[str]) -> None:
        self.n = 0
        self.step = np.empty(_FIRST_CAPACITY, np.int64)  # each row's step number (1, 2, ...; sparser once thinned)
        self.stride = 1  # the thinned rows are the steps divisible by this
        self.scalars = {name: np.empty(_FIRST_CAPACITY, dtype) for name, dtype in _SCALARS.items()}
        self.layers = np.empty((_FIRST_CAPACITY, n_layers), np.float32)
        self.epochs: dict[str, list[float]] = {key: [] for key in epoch_keys}
        self.epoch_index: list[int] = []
        self.changes: list[tuple[int, str, float]] = []
        self.node = _Node(None, (0, 0, 0))

    def grow(self) -> None:
        """Double the capacity into new arrays (old arrays stay valid for old marks)."""
        capacity = 2 * len(self.layers)
        self.step = _resized(self.step, capacity)
        self.scalars = {name: _resized(col, capacity) for name, col in self.scalars.items()}
        self.layers = _resized(self.layers, capacity)

    @property
    def last_step(self) -> int:
        """The step number of the last row (0 when empty)."""
        return int(self.step[self.n - 1]) if self.n else 0

    def rows_upto(self, step: int) -> int:
        """How many rows hold steps up to and including ``step``."""
        return int(np.searchsorted(self.step[:self.n], step, side="right"))

    def thin(self, full_steps: int) -> None:
        """Keep the last ``full_steps`` rows whole and at most ``full_steps // 2`` of the older ones,
        evenly by step number (every ``stride``-th step), in new arrays."""
        old = self.n - full_steps
        steps = self.step[:old]
        keep = steps % self.stride == 0
        while keep.sum() > full_steps // 2:
            self.stride *= 2
            keep = steps % self.stride == 0
        rows = np.concatenate([np.flatnonzero(keep), np.arange(old, self.n)])
        capacity = len(self.layers)
        self.step = _resized(self.step[rows], capacity)
        self.scalars = {name: _resized(col[rows], capacity) for name, col in self.scalars.items()}
        self.layers = _resized(self.layers[rows], capacity)
        self.n = len(rows)

    def prefix(self, n_steps: int, n_epochs: int, n_changes: int) -> "_Timeline":
        """A new timeline holding copies of this one's rows up to step ``n_steps``."""
        new = _Timeline.__new__(_Timeline)
        n = self.rows_upto(n_steps)
        capacity = max(_FIRST_CAPACITY, 1 << max(n - 1, 0).bit_length())
        new.n = n
        new.stride = self.stride
        new.step = _resized(self.step[:n], capacity)
        new.scalars = {name: _resized(col[:n], capacity) for name, col in self.scalars.items()}
        new.layers = _resized(self.layers[:n], capacity)
        new.epochs = {key: values[:n_epochs] for key, values in self.epochs.items()}
        new.epoch_index = self.epoch_index[:n_epochs]
        new.changes = self.changes[:n_changes]
        new.node = _Node(self.node, (n_steps, n_epochs, n_changes))
        return new


class _Node:
    """A timeline's place in the family tree: its parent and the (steps, epochs, changes) it shares.

    Kept apart from the arrays, so a long chain of rewinds holds tiny nodes, not old columns.
    """

    def __init__(self, parent: "_Node | None", fork: tuple[int, int, int]) -> None:
        self.parent = parent
        self.fork = fork

    def ancestry(self, limit: tuple[int, int, int]) -> dict[int, tuple[int, int, int]]:
        """id of this node and of each parent -> how much of it lies on the way to ``limit``."""
        chain: dict[int, tuple[int, int, int]] = {}
        node: _Node | None = self
        while node is not None:
            chain[id(node)] = limit
            limit = tuple(map(min, limit, node.fork))  # type: ignore[assignment]
            node = node.parent
        return chain


def common_past(a: "HistoryMark", b: "HistoryMark") -> tuple[int, int, int]:
    """The (steps, epochs, changes) two points of history share, found through the family tree."""
    b_chain = b.timeline.node.ancestry((b.n_steps, b.n_epochs, b.n_changes))
    for key, a_limit in a.timeline.node.ancestry((a.n_steps, a.n_epochs, a.n_changes)).items():
        if key in b_chain:
            return tuple(map(min, a_limit, b_chain[key]))  # type: ignore[return-value]
    return (0, 0, 0)


def _resized(array: np.ndarray, capacity: int) -> np.ndarray:
    out = np.empty((capacity,) + array.shape[1:], array.dtype)
    out[: len(array)] = array
    return out


@dataclass(frozen=True)
class HistoryMark:
    """A point in the history, kept by snapshots: cheap, because rows are never rewritten."""

    timeline: _Timeline
    n_steps: int  # steps done (not rows: rows may be thinned)
    n_epochs: int
    n_changes: int


@dataclass
class Branch:
    """The part of a run that a restore left behind, kept so a plot can show it as a ghost."""

    name: str
    start_step: int  # its first row is step start_step + 1
    steps: dict[str, np.ndarray]
    history: dict[str, list[float]]
    epoch: list[int]
    changes: list[tuple[int, str, float]] = field(default_factory=list)


class History:
    """Per-step columns, a Keras-style per-epoch dict, hyperparameter changes and branches."""

    def __init__(self, param_names: Sequence[str], epoch_keys: Sequence[str], validation: bool = False,
                 full_steps: int = FULL_STEPS) -> None:
        """``epoch_keys``: "loss" (and "accuracy"); ``validation`` adds "val_loss" (and "val_accuracy");
        ``full_steps``: how many of the latest steps are kept at full resolution (older ones are thinned)."""
        self.full_steps = full_steps
        self.thinnings = 0  # how many times older rows were thinned (plots that cache rows start again)
        self.param_names = list(param_names)
        self.epoch_keys = list(epoch_keys) + ([f"val_{key}" for key in epoch_keys] if validation else [])
        self.branches: list[Branch] = []
        self._line = _Timeline(len(self.param_names), self.epoch_keys)

    @property
    def full_steps(self) -> int:
        """How many of the latest steps are kept whole (older ones are thinned); settable, e.g. to 20_000."""
        return self._full_steps

    @full_steps.setter
    def full_steps(self, value: int) -> None:
        # Checked here, not when the next step is recorded: that would be after its update.
        if not (is_whole_number(value) and value >= 2):
            raise ValueError(f"full_steps is a whole number of steps, at least 2, like 100_000; got {value!r}")
        self._full_steps = int(value)

    # --- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        """The number of per-step rows: every completed update on the current branch, until the run
        outgrows ``full_steps`` and older steps are thinned (``steps["step"]`` says which are held)."""
        return self._line.n

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch lists, Keras-style: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``."""
        return self._line.epochs

    @property
    def epoch(self) -> list[int]:
        """The index of each recorded epoch (0, 1, 2, ...), as in Keras."""
        return self._line.epoch_index

    @property
    def changes(self) -> list[tuple[int, str, float]]:
        """Every live hyperparameter change as ``(step, name, value)``; step = updates done before it."""
        return self._line.changes

    @property
    def steps(self) -> dict[str, np.ndarray]:
        """Per-step columns (read-only numpy views): step, epoch, loss, accuracy, lr,
        batch_size, grad_norm, and ``grad_norm/<parameter name>`` for every parameter."""
        return _columns(self._line, self._line.n, self.param_names)

    def __repr__(self) -> str:
        return f"History({len(self)} steps, {len(self.epoch)} epochs, keys={list(self.history)})"

    # --- writing (called by the loop) ------------------------------------------

    def record_step(self, log: Mapping[str, Any], layer_norms: Iterable[float]) -> None:
        """Append one step's numbers, taken from its log (``loop.last_log``); a missing number is NaN."""
        line = self._line
        if line.n >= 2 * self.full_steps:
            line.thin(self.full_steps)
            self.thinnings += 1
        i = line.n
        if i == len(line.layers):
            line.grow()
        line.step[i] = log["step"] if "step" in log else line.last_step + 1  # (not read first: a step has its number)
        for name, column in line.scalars.items():
            column[i] = log.get(name, math.nan)
        if "clipped_grad_norm" not in log:  # not clipping: the norm the update used is the norm
            line.scalars["clipped_grad_norm"][i] = log.get("grad_norm", math.nan)
        line.layers[i] = list(layer_norms)
        line.n = i + 1

    def fill(self, key: str, steps: Sequence[int], values: Sequence[float]) -> None:
        """Write ``values`` into column ``key`` of the rows of ``steps`` recorded before the numbers were known
        (accuracy counted in bulk, see ``tally.py``); a row thinned away meanwhile is skipped."""
        line, steps = self._line, np.asarray(steps)
        held = line.step[:line.n]
        rows = np.searchsorted(held, steps)
        found = rows < line.n
        found[found] = held[rows[found]] == steps[found]
        line.scalars[key][rows[found]] = np.asarray(values)[found]

    def record_epoch(self, epoch: int, log: dict[str, float]) -> None:
        """Append one epoch's numbers (keys missing from ``log`` get NaN)."""
        self._line.epoch_index.append(epoch)
        for key, values in self._line.epochs.items():
            values.append(log.get(key, float("nan")))

    def record_change(self, step: int, name: str, value: float) -> None:
        """Remember a live hyperparameter change, so plots can mark it."""
        self._line.changes.append((step, name, value))

    # --- time travel ------------------------------------------------------------

    def mark(self) -> HistoryMark:
        """The current point, for a snapshot."""
        line = self._line
        return HistoryMark(line, line.last_step, len(line.epoch_index), len(line.changes))

    def mark_at(self, n_steps: int, n_epochs: int, n_changes: int) -> HistoryMark:
        """An earlier point of the current line (steps, epochs and changes recorded by then)."""
        return HistoryMark(self._line, n_steps, n_epochs, n_changes)

    def blank(self) -> "History":
        """An empty history with the same columns (a replay records into one, then drops it)."""
        return History(self.param_names, self.epoch_keys)

    def restore(self, mark: HistoryMark, branch_name: str) -> Branch | None:
        """Go back to ``mark``; what is left behind becomes a branch (returned)."""
        fork = common_past(self.mark(), mark)
        branch = self._branch_from(fork, branch_name) if self._line.last_step > fork[0] else None
        self._line = mark.timeline.prefix(mark.n_steps, mark.n_epochs, mark.n_changes)
        if branch is not None:
            self.branches.append(branch)
            del self.branches[:-MAX_BRANCHES]
        return branch

    def clear(self, branch_name: str) -> None:
        """Start again from nothing, keeping the old run as a branch."""
        self.restore(HistoryMark(self._line, 0, 0, 0), branch_name)

    def _branch_from(self, fork: tuple[int, int, int], name: str) -> Branch:
        line = self._line
        n_steps, n_epochs, n_changes = fork
        first = line.rows_upto(n_steps)
        steps = {key: np.array(col[first:]) for key, col in _columns(line, line.n, self.param_names).items()}
        return Branch(name=name, start_step=n_steps, steps=steps,
                      history={key: values[n_epochs:] for key, values in line.epochs.items()},
                      epoch=line.epoch_index[n_epochs:], changes=line.changes[n_changes:])

    # --- checkpoints --------------------------------------------------------------

    def state_dict(self, mark: HistoryMark | None = None) -> dict:
        """The history (up to ``mark``) as plain lists, for ``torch.save``."""
        mark = mark or self.mark()
        line, e = mark.timeline, mark.n_epochs
        n = line.rows_upto(mark.n_steps)
        return {
            "step": line.step[:n].tolist(),
            "scalars": {name: col[:n].tolist() for name, col in line.scalars.items()},
            "layers": line.layers[:n].tolist(),
            "epochs": {key: values[:e] for key, values in line.epochs.items()},
            "epoch_index": line.epoch_index[:e],
            "changes": [list(change) for change in line.changes[: mark.n_changes]],
        }

    def load_state_dict(self, state: dict, branch_name: str) -> None:
        """Replace the history with one from ``state_dict()``; the old run becomes a branch.

        Raises ValueError (and changes nothing) when ``state`` does not fit this history.
        """
        self.adopt(self.parse_state_dict(state), branch_name)

    def adopt(self, line: "_Timeline", branch_name: str) -> None:
        """Make a parsed timeline the current one, keeping the old run as a branch."""
        self.restore(HistoryMark(self._line, 0, 0, 0), branch_name)
        self._line = line

    def parse_state_dict(self, state: dict) -> "_Timeline":
        """A timeline from ``state_dict()`` output, checked to fit this history (ValueError if not)."""
        line = _Timeline(len(self.param_names), self.epoch_keys)
        layers = np.asarray(state["layers"], np.float32).reshape(-1, len(self.param_names))
        n = len(layers)
        while len(line.layers) < n:
            line.grow()
        line.layers[:n] = layers
        scalars = dict(state["scalars"])  # older layouts are brought up to date by checkpoint.upgrade
        if set(scalars) != set(_SCALARS) or set(state["epochs"]) != set(self.epoch_keys):
            raise ValueError("the saved history has other columns than this loop records")
        for name, values in scalars.items():
            if len(values) != n:
                raise ValueError(f"the saved history's {name!r} column has {len(values)} rows, not {n}")
            line.scalars[name][:n] = values
        step = state["step"]
        if len(step) != n or np.any(np.diff(np.asarray(step, np.int64)) <= 0):
            raise ValueError("the saved history's step numbers do not match its rows")
        line.step[:n] = step
        line.n = n
        line.epochs = {key: [float(v) for v in state["epochs"][key]] for key in self.epoch_keys}
        line.epoch_index = [int(i) for i in state["epoch_index"]]
        line.changes = [(int(s), str(name), value) for s, name, value in state["changes"]]
        if not len(line.epoch_index) == len(next(iter(line.epochs.values()), line.epoch_index)):
            raise ValueError("the saved history's epochs do not line up")
        return line


def _columns(line: _Timeline, n: int, param_names: Sequence[str]) -> dict[str, np.ndarray]:
    columns = {"step": line.step[:n]}
    columns.update((name, col[:n]) for name, col in line.scalars.items())
    columns.update((f"grad_norm/{name}", line.layers[:n, j]) for j, name in enumerate(param_names))
    for column in columns.values():
        column.flags.writeable = False
    return columns
