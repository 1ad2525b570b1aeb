"""trainlab: an interactive training lab for PyTorch in Jupyter.

    import trainlab as tl
    X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16, 16], 2), (X, y), "cross_entropy", lr=0.1)
    loop.forward(); loop.loss(); loop.backward(); loop.update()   # one step, stage by stage
    loop.fit(epochs=10)                                             # or many
    tl.Dashboard(loop)                                              # or live, in a notebook
"""

from typing import Any

from trainlab import datasets, faults, mistakes, models
from trainlab.activations import ActivationStats
from trainlab.callbacks import Callback, EarlyStopping, StopAtTarget
from trainlab.check import CheckReport, check_loop, check_step
from trainlab.confusion import confusion
from trainlab.distributions import Distributions
from trainlab.errors import CheckpointError, LoopBusyError, NonFiniteError, ReplayError, StageError
from trainlab.events import EVENTS, Event
from trainlab.history import Branch, History
from trainlab.inside import activation_stats, neuron_activations, neuron_layers
from trainlab.landscape import StepLandscape, step_landscape
from trainlab.loop import STAGES, Loop, State
from trainlab.lr_finder import LRFinderResult
from trainlab.makers import register_data, register_model
from trainlab.playground import LiveDropout, TravelError, travel
from trainlab.recipe import replay
from trainlab.snapshot import Snapshot
from trainlab.summary import Summary, summary
from trainlab.top_losses import TopLosses, top_losses

__all__ = [
    "Loop", "State", "STAGES", "EVENTS", "Event", "History", "Branch", "Snapshot",
    "Callback", "EarlyStopping", "StopAtTarget",
    "StageError", "NonFiniteError", "LoopBusyError", "CheckpointError", "ReplayError",
    "LRFinderResult", "StepLandscape", "step_landscape", "neuron_layers", "neuron_activations", "activation_stats",
    "check_step", "check_loop", "CheckReport", "faults", "mistakes",
    "confusion", "top_losses", "TopLosses", "summary", "Summary", "Distributions", "ActivationStats",
    "replay", "travel", "TravelError", "LiveDropout", "register_data", "register_model",
    "datasets", "models", "Dashboard", "NetworkView", "plot_history", "compare_runs", "plot_lr_finder",
    "plot_errors", "plot_distributions",
]
_WIDGET_NAMES = ("Dashboard", "NetworkView", "plot_history", "compare_runs", "plot_lr_finder", "plot_errors",
                 "plot_distributions")
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Reach the widget layer only when asked, so the core never needs ipywidgets or plotly."""
    if name in _WIDGET_NAMES:
        import trainlab.widgets

        return getattr(trainlab.widgets, name)
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
