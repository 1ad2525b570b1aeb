"""The notebook layer: a live dashboard for a Loop (ipywidgets + plotly).

    dash = tl.Dashboard(loop)   # buttons, sliders, stage view and live plots; display(dash)
    plot_history(loop)          # a static figure of the run so far (train vs validation, changes, ghosts)

Live plots (redrawn while training) are in ``live_plots``, static ones (drawn once) in
``static_plots``; what both share (colours, change marks) is in ``plot_style``, and their
point thinning in ``series``.

The core never imports this package; ``tl.Dashboard`` reaches it lazily.
"""

from trainlab.widgets.confusion_plot import plot_errors
from trainlab.widgets.dashboard import Dashboard
from trainlab.widgets.distribution_plots import plot_distributions
from trainlab.widgets.network_view import NetworkView
from trainlab.widgets.static_plots import compare_runs, plot_history, plot_lr_finder

__all__ = ["Dashboard", "NetworkView", "plot_history", "compare_runs", "plot_lr_finder", "plot_errors",
           "plot_distributions"]
