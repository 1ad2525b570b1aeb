"""Static plots of a run's history, drawn once when called (the dashboard's plots are the live ones):
train vs validation curves, hyperparameter changes, and ghosts of abandoned runs.

    fig = plot_history(loop.history, metrics=("loss", "accuracy"))   # one subplot per metric
    fig = plot_history(loop, steps=True)     # also every batch's loss (a Loop knows its epoch size)
    fig = compare_runs({"lr 0.1": run_a, "lr 1.0": run_b}, metric="val_loss")

The x axis counts epochs: an epoch's numbers sit at the epoch's end (1, 2, 3, ...), and a
step sits at the share of its epoch done after it (so 1.5 = half way through epoch 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trainlab.history import Branch, History
from trainlab.lr_finder import LRFinderResult
from trainlab.arguments import is_whole_number
from trainlab.widgets.live_figure import LiveFigure
from trainlab.widgets.plot_style import (EPOCH_AXIS, GHOST_OPACITY, LEGEND, LOG_AXIS, TRAIN_COLOR,
                                         VAL_COLOR, change_marks)
from trainlab.widgets.series import Downsampler

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["plot_history", "compare_runs", "plot_lr_finder"]

# Per trace: longer per-step curves are thinned before they go to the browser. More than the
# live plots send per redraw: a static figure is sent once.
MAX_POINTS = 2000
MAX_GHOSTS = 5  # the most recent abandoned branches drawn


def plot_history(
    history: History | Loop,
    metrics: str | Sequence[str] = ("loss",),
    branches: bool | int = True,
    steps: bool = False,
    changes: bool = True,
    log_y: bool = False,
) -> LiveFigure:
    """Train vs validation curves per epoch, one subplot per metric, with changes marked and abandoned runs as ghosts.

    ``branches``: True draws the last few abandoned runs, a number that many of the latest, False none;
    ``steps``: add every batch's value; ``log_y``: a log scale, so a blown-up run and a normal one both show.
    """
    history, samples_per_epoch = _unpack(history)
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(metrics, Sequence) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"metrics is one name or a list of names, like metrics=('loss', 'accuracy'); got {metrics!r}")
    metrics = list(metrics)
    if not (isinstance(branches, bool) or is_whole_number(branches)):
        raise ValueError(f"branches is True (the last few abandoned runs), False (none) or how many; got {branches!r}")
    for metric in metrics:
        _check_metric(history, metric)
    columns = history.steps
    if samples_per_epoch is None:
        samples_per_epoch = _samples_per_epoch(history)
    positions = _step_positions(columns["epoch"], columns["batch_size"], samples_per_epoch)
    n_ghosts = MAX_GHOSTS if branches is True else int(branches)
    ghosts = history.branches[-n_ghosts:] if n_ghosts > 0 else []
    labels = _ghost_labels(ghosts)

    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for col, metric in enumerate(metrics, start=1):
        per_epoch = metric in history.history
        keys = [key for key in (metric, f"val_{metric}") if key in history.history] if per_epoch else []
        if (steps or not per_epoch) and metric in columns:
            x, y = _thin(columns[metric], positions)
            fig.add_trace(go.Scatter(x=x, y=y, name=f"{metric} per step" if per_epoch else metric, mode="lines",
                                     opacity=0.5 if per_epoch else 1.0, line={"color": TRAIN_COLOR, "width": 1}),
                          row=1, col=col)
        for key in keys:
            x = np.asarray(history.epoch, dtype=np.float64) + 1
            y = np.asarray(history.history[key], dtype=np.float64)
            fig.add_trace(go.Scatter(x=x, y=y, name=key, mode="lines+markers", marker={"size": 4},
                                     line={"color": _color(key)}), row=1, col=col)
        for branch, label in zip(ghosts, labels):  # one legend entry per branch toggles all its curves
            _add_ghosts(fig, col, history, branch, label, metric, keys, steps, samples_per_epoch, legend=col == 1)
        fig.update_xaxes(title_text="epoch", rangemode="tozero", row=1, col=col, **EPOCH_AXIS)
        if log_y:
            fig.update_yaxes(row=1, col=col, **LOG_AXIS)
    if changes:
        _mark_changes(fig, len(metrics), history.changes, positions)
    fig.update_layout(height=340, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2})
    return LiveFigure(figure=fig)


def compare_runs(runs: Mapping[str, History | Branch | Loop], metric: str = "val_loss") -> LiveFigure:
    """One metric of several runs (histories, abandoned branches or loops) on one plot, one named curve each."""
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("compare_runs takes a dict that names each run, like {'lr 0.1': loop_a, 'lr 1.0': "
                         f"loop_b.history}}; got {type(runs).__name__ if runs else runs!r}")
    fig = go.Figure()
    per_step = False
    for label, run in runs.items():
        run = run.history if _is_loop(run) else run
        if not isinstance(run, (History, Branch)):
            raise ValueError(f"run {label!r} must be a loop, its history (loop.history) or an abandoned run "
                             f"(loop.history.branches[-1]); got {type(run).__name__}")
        if metric in run.history:
            x = np.asarray(run.epoch, dtype=np.float64) + 1
            y = np.asarray(run.history[metric], dtype=np.float64)
            mode = "lines+markers"
        elif metric in run.steps:
            per_step = True
            x, y = _thin(run.steps[metric], run.steps["step"])
            mode = "lines"
        else:
            raise ValueError(f"run {label!r} has no {metric!r}; it records {_names(run)}")
        fig.add_trace(go.Scatter(x=x, y=y, name=str(label), mode=mode, marker={"size": 4}))
    fig.update_layout(height=340, title=metric,
                      xaxis_title="step" if per_step else "epoch", yaxis_title=metric,
                      margin={"l": 50, "r": 20, "t": 40, "b": 40})
    return LiveFigure(figure=fig)


# --- helpers ---------------------------------------------------------------------------


def plot_lr_finder(result: LRFinderResult) -> LiveFigure:
    """The learning-rate finder's loss against lr, on a log axis, with its suggestion marked."""
    fig = go.Figure(layout=go.Layout(
        title=dict(text="Learning-rate finder", font=dict(size=14)), width=460, height=300,
        margin=dict(l=50, r=10, t=36, b=36), xaxis=dict(title="learning rate", type="log"),
        yaxis=dict(title="loss"), legend=LEGEND))
    fig.add_scatter(x=result.lrs, y=result.raw_losses, mode="lines", name="loss per batch",
                    line=dict(color=TRAIN_COLOR, width=1), opacity=0.3)
    fig.add_scatter(x=result.lrs, y=result.losses, mode="lines", name="smoothed loss",
                    line=dict(color=TRAIN_COLOR, width=2))
    if result.suggestion is not None:
        at = int(np.argmin(np.abs(result.lrs - result.suggestion)))
        fig.add_scatter(x=[result.suggestion], y=[result.losses[at]], mode="markers",
                        name=f"suggestion: {result.suggestion:.3g} ({result.rule})",
                        marker=dict(color=VAL_COLOR, size=12, symbol="diamond"))
        fig.add_vline(x=result.suggestion, line=dict(color=VAL_COLOR, dash="dot"))
    losses = result.losses[np.isfinite(result.losses)]
    if len(losses):  # the blow-up at the end would squash the interesting part flat: leave it off the top
        # Up from the start, or from where 90% of the curve stays below if higher: the start alone is
        # no guide on a trained model, where the first batch may be the lowest of all.
        low, top = float(np.min(losses)), max(float(losses[0]), float(np.quantile(losses, 0.9)))
        spread = max(top - low, 1e-12)
        fig.update_yaxes(range=[low - 0.1 * spread, top + 0.5 * spread])  # room above for the rise to show
    return LiveFigure(figure=fig)


def _is_loop(obj: Any) -> bool:
    return isinstance(getattr(obj, "history", None), History)


def _unpack(obj: Any) -> tuple[History, int | None]:
    """A History, and the samples per epoch when known (a Loop knows; a History has to guess)."""
    if isinstance(obj, History):
        return obj, None
    if _is_loop(obj):
        return obj.history, int(obj.n_train)
    raise ValueError(f"plot_history takes a loop or its history (loop.history); got {type(obj).__name__}")


def _names(run: History | Branch) -> list[str]:
    return list(run.history) + [name for name in run.steps if name not in ("step", "epoch")]


def _check_metric(history: History, metric: str) -> None:
    if metric.startswith("val_"):
        raise ValueError(f"name the metric without 'val_' (like {metric[4:]!r}): "
                         "its validation curve is drawn next to the training one")
    if metric not in history.history and metric not in history.steps:
        raise ValueError(f"this history has no {metric!r}; choose from {_names(history)}")


def _color(key: str) -> str:
    return VAL_COLOR if key.startswith("val_") else TRAIN_COLOR


def _samples_per_epoch(history: History) -> int:
    """The training samples in one epoch: the most any recorded epoch used (complete ones first)."""
    cols = history.steps
    best = _largest_epoch(cols["epoch"], cols["batch_size"], history.epoch)
    for branch in history.branches:
        best = max(best, _largest_epoch(branch.steps["epoch"], branch.steps["batch_size"], branch.epoch))
    if best == 0:  # no epoch has ended yet: the samples seen so far are the best guess
        best = max(_largest_epoch(cols["epoch"], cols["batch_size"], None), 1)
    return best


def _largest_epoch(epochs: np.ndarray, batch_sizes: np.ndarray, which: Sequence[int] | None) -> int:
    if len(epochs) == 0:
        return 0
    sums = np.bincount(epochs.astype(np.int64), weights=batch_sizes.astype(np.float64))
    if which is not None:
        index = [e for e in which if e < len(sums)]
        sums = sums[index] if index else np.zeros(0)
    return int(sums.max()) if len(sums) else 0


def _step_positions(epochs: np.ndarray, batch_sizes: np.ndarray, samples_per_epoch: int,
                    already_done: int = 0) -> np.ndarray:
    """Where each step ends on the epoch axis: its epoch plus the share of that epoch done after it."""
    if len(epochs) == 0:
        return np.zeros(0)
    sizes = batch_sizes.astype(np.float64)
    sizes[0] += already_done  # samples of the first epoch done before these rows
    done = np.cumsum(sizes)
    starts = np.flatnonzero(np.r_[True, epochs[1:] != epochs[:-1]])  # first row of each epoch
    group = np.cumsum(np.r_[True, epochs[1:] != epochs[:-1]]) - 1
    before = (done - sizes)[starts][group]  # samples done before each epoch's first row
    return epochs.astype(np.float64) + (done - before) / max(samples_per_epoch, 1)


def _thin(column: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS of a per-step curve as float64 ``(x, y)``, with its spikes and its last point."""
    return Downsampler(MAX_POINTS).points(column, x)


def _ghost_labels(branches: Sequence[Branch]) -> list[str]:
    """Each branch's name, numbered where several share one (two restores to the same snapshot)."""
    names = [branch.name for branch in branches]
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(f"{name} #{seen[name]}" if names.count(name) > 1 else name)
    return labels


def _add_ghosts(fig: go.Figure, col: int, history: History, branch: Branch, label: str, metric: str,
                keys: list[str], steps: bool, samples_per_epoch: int, legend: bool) -> None:
    """Draw one abandoned branch faintly and dashed, joined to the run it forked from."""
    curves: list[tuple[str, np.ndarray, np.ndarray]] = []
    if (steps or not keys) and metric in branch.steps and len(branch.steps["epoch"]):
        x, y = _thin(branch.steps[metric], _branch_positions(history, branch, samples_per_epoch))
        curves.append((f"{metric} per step" if keys else metric, x, y))
    for key in keys:
        if key not in branch.history or not branch.epoch:
            continue
        x = np.asarray(branch.epoch, dtype=np.float64) + 1
        y = np.asarray(branch.history[key], dtype=np.float64)
        fork = branch.epoch[0] - 1  # the last epoch both runs share, if the current run still has it
        if 0 <= fork < len(history.epoch) and len(history) >= branch.start_step:
            x = np.r_[fork + 1.0, x]
            y = np.r_[history.history[key][fork], y]
        curves.append((key, x, y))
    for i, (key, x, y) in enumerate(curves):
        fig.add_trace(go.Scatter(x=x, y=y, name=f"{key} ({label})", mode="lines", opacity=GHOST_OPACITY,
                                 line={"dash": "dash", "width": 1.5, "color": _color(key)},
                                 legendgroup=f"ghost: {label}", showlegend=legend and i == 0,
                                 hoverlabel={"namelength": -1}), row=1, col=col)


def _branch_positions(history: History, branch: Branch, samples_per_epoch: int) -> np.ndarray:
    epochs = branch.steps["epoch"]
    shared = history.steps
    already_done = 0
    if len(history) >= branch.start_step:  # samples of the fork's epoch done before the fork
        before = slice(0, branch.start_step)
        same_epoch = shared["epoch"][before] == epochs[0]
        already_done = int(shared["batch_size"][before][same_epoch].sum())
    return _step_positions(epochs, branch.steps["batch_size"], samples_per_epoch, already_done)


def _mark_changes(fig: go.Figure, n_cols: int, changes: list[tuple[int, str, Any]],
                  positions: np.ndarray) -> None:
    """A dotted vertical line (and a label) in every subplot where a hyperparameter was changed."""

    def x_of_step(step: int) -> float | None:  # where the step ended on the epoch axis; None: not in this run
        if step > len(positions):
            return None
        return float(positions[step - 1]) if step > 0 else 0.0

    axes = ["" if col == 1 else str(col) for col in range(1, n_cols + 1)]  # x/y, x2/y2, ...
    shapes, notes = change_marks(changes, x_of_step, axes)
    if shapes:
        fig.update_layout(shapes=list(fig.layout.shapes) + shapes,
                          annotations=list(fig.layout.annotations) + notes)
