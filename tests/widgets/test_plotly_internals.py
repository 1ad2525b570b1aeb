"""The live figures reach below plotly's public API: each private name they use is still there, and
pyproject.toml admits only plotly and anywidget versions these tests have run on."""

import tomllib
from importlib.metadata import version
from pathlib import Path

import plotly
import plotly.graph_objects as go
from packaging.requirements import Requirement

from trainlab.widgets.live_figure import PLOTLY_BUNDLE, PLOTLY_PRIVATE_ATTRIBUTES, PLOTLY_PRIVATE_TRAITS

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
ADVICE = ("trainlab/widgets/live_figure.py relies on it: adapt live_figure.py to this plotly, "
          "or keep plotly below this version in pyproject.toml")


def _reach(obj: object, dotted: str) -> bool:
    for name in dotted.split("."):
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def test_plotlys_widget_bundle_is_where_live_figures_load_it_from():
    assert PLOTLY_BUNDLE.is_file(), f"plotly {plotly.__version__} has no widget bundle at {PLOTLY_BUNDLE}; {ADVICE}"


def test_every_private_plotly_name_live_figures_use_still_exists():
    figure = go.FigureWidget()
    figure.add_scatter(y=[1.0, 2.0])
    not_traits = [name for name in PLOTLY_PRIVATE_TRAITS if not figure.has_trait(name)]
    assert not not_traits, f"plotly {plotly.__version__}'s FigureWidget has no trait {not_traits}; {ADVICE}"
    missing = [name for name in PLOTLY_PRIVATE_ATTRIBUTES if not _reach(figure, name)]
    assert not missing, f"plotly {plotly.__version__}'s FigureWidget has no {missing}; {ADVICE}"


def test_pyproject_admits_the_installed_plotly_and_anywidget_and_caps_both():
    requirements = [Requirement(line) for line in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]
    for package in ("plotly", "anywidget"):
        (pin,) = [r for r in requirements if r.name == package]
        assert any(spec.operator == "<" for spec in pin.specifier), f"{pin}: give {package} an upper bound"
        installed = version(package)
        assert pin.specifier.contains(installed), (
            f"{package} {installed} is installed but pyproject.toml says {pin}: if these tests pass on it, "
            "raise the bound")
