"""The widget layer imports on its own, and tl.Dashboard reaches it lazily."""

import subprocess
import sys

import ipywidgets

import trainlab as tl
import trainlab.widgets


def test_dashboard_resolves_lazily_from_the_package():
    code = (
        "import sys, trainlab as tl\n"
        "assert 'trainlab.widgets' not in sys.modules and 'plotly' not in sys.modules\n"
        "D = tl.Dashboard\n"
        "import trainlab.widgets\n"
        "assert D is trainlab.widgets.Dashboard\n"
        "assert 'plotly' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_widgets_package_exports_the_dashboard_widget():
    assert trainlab.widgets.__all__ == ["Dashboard", "NetworkView", "plot_history", "compare_runs", "plot_lr_finder",
                                        "plot_errors", "plot_distributions"]
    assert tl.plot_history is trainlab.widgets.plot_history
    assert tl.NetworkView is trainlab.widgets.NetworkView and tl.plot_lr_finder is trainlab.widgets.plot_lr_finder
    assert tl.plot_errors is trainlab.widgets.plot_errors and tl.plot_distributions is trainlab.widgets.plot_distributions
    assert tl.Dashboard is trainlab.widgets.Dashboard
    assert issubclass(tl.Dashboard, ipywidgets.VBox)  # display(dash) works: it is the widget


def test_every_widget_module_declares_its_public_names():
    import importlib
    import pkgutil

    names = [info.name for info in pkgutil.iter_modules(trainlab.widgets.__path__)]
    assert {"live_plots", "static_plots", "plot_style", "dashboard"} <= set(names)
    for name in names:
        module = importlib.import_module(f"trainlab.widgets.{name}")
        assert module.__all__, name
        for public in module.__all__:
            assert hasattr(module, public), f"{name}.{public}"
