"""The live figures use only public APIs of plotly.py, plotly.js and anywidget; these tests check each
one is there, and that pyproject.toml admits only versions the tests have run on."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import anywidget
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from packaging.requirements import Requirement
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from trainlab.widgets.live_figure import DARK_TEMPLATE, LIGHT_TEMPLATE, plotly_library

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SCRIPT = Path(__file__).resolve().parents[2] / "trainlab" / "widgets" / "live_figure.js"


def test_plotly_ships_plotlyjs_and_says_its_version():
    source = get_plotlyjs()
    assert len(source) > 1_000_000
    assert re.match(r"\d+\.\d+\.\d+$", get_plotlyjs_version())
    assert f"v{get_plotlyjs_version()}" in source[:200]  # the version named is the one shipped
    assert "window.Plotly = Plotly" in source  # how live_figure.js picks it up after running it


def test_the_library_widget_carries_plotlyjs_once_and_both_templates():
    library = plotly_library()
    assert plotly_library() is library
    assert library.source == get_plotlyjs().encode()
    assert set(library.templates) == {"light", "dark"}
    for name in (LIGHT_TEMPLATE, DARK_TEMPLATE):
        assert "layout" in pio.templates[name].to_plotly_json()


def test_plotly_restyle_stores_numpy_arrays_as_given():
    figure = go.Figure()
    figure.add_scatter(y=np.zeros(2))
    figure.plotly_restyle({"y": [np.arange(3.0)]}, [0])
    assert isinstance(figure.data[0].y, np.ndarray) and list(figure.data[0].y) == [0.0, 1.0, 2.0]


def test_the_script_uses_only_public_plotlyjs_and_anywidget_calls():
    script = SCRIPT.read_text()
    assert set(re.findall(r"Plotly\.(\w+)\(", script)) == {"react", "purge"}
    assert set(re.findall(r"model\.(\w+)", script)) <= {"get", "send", "on", "off", "widget_manager"}
    assert hasattr(anywidget, "AnyWidget")


def test_pyproject_admits_the_installed_plotly_and_anywidget_and_caps_both():
    requirements = [Requirement(line) for line in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]
    for package in ("plotly", "anywidget"):
        (pin,) = [r for r in requirements if r.name == package]
        assert any(spec.operator == "<" for spec in pin.specifier), f"{pin}: give {package} an upper bound"
        installed = version(package)
        assert pin.specifier.contains(installed), (
            f"{package} {installed} is installed but pyproject.toml says {pin}: if these tests pass on it, "
            "raise the bound")
