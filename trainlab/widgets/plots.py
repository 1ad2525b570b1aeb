"""Every plot a dashboard can show, in the order it shows them: the one registry of plot names.

Each entry says how to build the plot for a loop (or that it does not fit the loop: None), whether
a dashboard shows it when ``plots`` is not given, and on which budget it is drawn:

- ``"turns"``: the plots' budget. The loss plot (first) redraws in every live frame; the others take
  turns, one a frame.
- ``"data"``: the data budget (``boundary_fps``): plots that run the model over many inputs each
  redraw (the decision boundary), drawn in turn with each other.

A plot of one's own joins with ``register_plot("name", make, about="...")``, then
``tl.Dashboard(loop, plots=(..., "name"))``; ``make(loop, options)`` returns a ``Plot`` (``plot.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from trainlab.widgets.activations_plot import ActivationsPlot
from trainlab.widgets.confusion_plot import ConfusionPlot
from trainlab.widgets.data_view import DecisionBoundaryPlot, PredictionCurvePlot, data_view_name
from trainlab.widgets.distribution_plots import DistributionPlot
from trainlab.widgets.landscape_plot import StepLandscapePlot
from trainlab.widgets.live_plots import AccuracyPlot, GradHistogramPlot, GradNormPlot, LossPlot, UpdateRatioPlot
from trainlab.widgets.mistakes_plot import MistakesPlot
from trainlab.widgets.network_view import NetworkView
from trainlab.widgets.plot import Plot
from trainlab.widgets.summary_plot import SummaryPlot

if TYPE_CHECKING:
    from trainlab.loop import Loop

__all__ = ["PlotOptions", "PlotKind", "PLOTS", "register_plot", "default_plots"]


@dataclass(frozen=True)
class PlotOptions:
    """The dashboard's options a plot may use (checked by the dashboard before any plot is built)."""

    max_points: int = 500  # points per trace and redraw
    ghosts: int = 5  # earlier runs drawn faintly
    smoothing: float = 0.9  # EMA weight of smoothed curves
    grid: int = 60  # cells per side of a map over the input plane
    fps: float = 12.0  # the dashboard's frame rate
    own_share: float = 0.01  # the share of a core for each plot that measures on its own budget


@dataclass(frozen=True)
class PlotKind:
    """One entry of the registry: how to build a plot, whether it is on by default, and its budget."""

    name: str
    make: Callable[[Loop, PlotOptions], Plot | None]  # None: the plot does not fit this loop
    about: str  # one line for the documentation and error messages
    default: bool = False
    budget: str = "turns"  # "turns" (the plots' budget) or "data" (the data budget)
    own_budget: bool = False  # it also measures on a budget of its own: it gets a share of max_ui_fraction


#: name -> PlotKind, in the order a dashboard lays them out; "loss" is always first and always shown.
PLOTS: dict[str, PlotKind] = {}


def register_plot(name: str, make: Callable[[Loop, PlotOptions], Plot | None], *, about: str,
                  default: bool = False, budget: str = "turns", own_budget: bool = False) -> PlotKind:
    """Add a plot a dashboard can show by name (``plots=(..., name)``); a name may be registered once."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a plot's name is a word like 'my_plot'; got {name!r}")
    if name in PLOTS:
        raise ValueError(f"a plot named {name!r} is registered already; choose another name")
    if budget not in ("turns", "data"):
        raise ValueError(f"budget is 'turns' (drawn in turn with the plots) or 'data' (on the data budget, "
                         f"for plots that run the model over many inputs); got {budget!r}")
    if not callable(make):
        raise ValueError(f"make is a function (loop, options) -> Plot or None; got {make!r}")
    PLOTS[name] = kind = PlotKind(name, make, about, default, budget, own_budget)
    return kind


def default_plots() -> tuple[str, ...]:
    """The plots a dashboard shows when ``plots`` is not given."""
    return tuple(name for name, kind in PLOTS.items() if kind.default)


def _data_view(name: str, make: Callable[[Loop, PlotOptions], Plot]) -> Callable[[Loop, PlotOptions], Plot | None]:
    """``make`` for a loop whose data the view ``name`` fits (a plane for the boundary, a line for predictions)."""
    return lambda loop, options: make(loop, options) if data_view_name(loop) == name else None


register_plot("loss", lambda loop, o: LossPlot(loop, o.max_points, o.ghosts, o.smoothing), default=True,
              about="the loss per batch (raw and smoothed) and per epoch, with earlier runs as ghosts")
register_plot("accuracy", lambda loop, o: AccuracyPlot(loop, o.max_points) if loop.classification else None,
              default=True, about="accuracy per epoch, training and validation (classification only)")
register_plot("grad_norm", lambda loop, o: GradNormPlot(loop, o.max_points, o.smoothing), default=True,
              about="each parameter's gradient norm over the steps (smoothed)")
register_plot("gradients", lambda loop, o: GradHistogramPlot(loop), default=True,
              about="a histogram of the latest step's gradient values, per layer")
register_plot("update_ratio", lambda loop, o: UpdateRatioPlot(loop), default=True,
              about="each parameter's update relative to its size, at the last update")
register_plot("decision_boundary", _data_view("decision_boundary", lambda loop, o: DecisionBoundaryPlot(loop, o.grid)),
              default=True, budget="data", about="the model's prediction over the input plane, with the data "
                                                 "(2-D classification only)")
register_plot("prediction", _data_view("prediction", lambda loop, o: PredictionCurvePlot(loop)), default=True,
              budget="data", about="the model's prediction along the input, with the data (1-D regression only)")
register_plot("network", lambda loop, o: NetworkView(loop, live=False),  # the dashboard redraws it in turn
              about="every neuron's output over the input plane, or per-layer statistics (runs the model)")
register_plot("step_landscape", lambda loop, o: StepLandscapePlot(loop, o.fps / 2, o.own_share), own_budget=True,
              about="the open batch's loss along the coming update (runs the model several times a step)")
# Issue 29: the errors, and the inside over time. Off by default: the default dashboard is full, and each
# runs the model (over the validation data, or a probe batch) or measures every step on a budget of its own.
register_plot("confusion", lambda loop, o: ConfusionPlot(loop) if _one_class_each(loop) else None, budget="data",
              about="the confusion matrix on the validation data: true class by predicted class, counts and row "
                    "shares; click a cell to see its samples in the mistakes (classification only; runs the model)")
register_plot("mistakes", lambda loop, o: MistakesPlot(loop) if loop.accuracy_kind or loop.loss_name == "mse" else None,
              budget="data", about="the samples with the highest loss, drawn as the data is shaped (pictures, "
                                   "points ringed on the plane, tokens), with true and predicted label (runs the model)")
register_plot("weight_distributions", lambda loop, o: DistributionPlot(loop, "weights", o.max_points, o.own_share),
              own_budget=True, about="a layer's weights over the steps: percentile bands (records a few times a "
                                     "second)")
register_plot("grad_distributions", lambda loop, o: DistributionPlot(loop, "grads", o.max_points, o.own_share),
              own_budget=True, about="a layer's gradients over the steps: percentile bands (records a few times a "
                                     "second)")
register_plot("activations", lambda loop, o: ActivationsPlot(loop, o.max_points, o.own_share), own_budget=True,
              about="every layer's dead units, mean and spread over the steps, or one layer's values as a "
                    "colorful dimension (runs a probe batch a couple of times a second)")
register_plot("summary", lambda loop, o: SummaryPlot(loop),
              about="the model layer by layer: type, output shape, parameters, gradient norm (tl.summary)")


def _one_class_each(loop: Loop) -> bool:
    """Whether each sample has one class (cross-entropy, or binary cross-entropy on one output): a confusion matrix."""
    return loop.accuracy_kind in ("multiclass", "binary_logits", "binary_probs")
