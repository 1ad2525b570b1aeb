"""The notebook layer: a live dashboard for a Loop (ipywidgets + plotly).

    dash = tl.Dashboard(loop)   # buttons, sliders, stage view and live plots; display(dash)

The core never imports this package; ``tl.Dashboard`` reaches it lazily.
"""

from trainlab.widgets.dashboard import Dashboard
from trainlab.widgets.history_plot import compare_runs, plot_history

__all__ = ["Dashboard", "plot_history", "compare_runs"]
