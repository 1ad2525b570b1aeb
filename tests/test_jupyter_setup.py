"""The project's own Jupyter setup (jupyter/, binder/jupyter/), as `make lab`, `make app` and Binder load it."""

from __future__ import annotations

import copy
import json
import os
import re
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTORS = (ROOT / "docs" / "instructors.md").read_text()


def server_config_file() -> dict:
    """The names jupyter/jupyter_server_config.py defines, read as Jupyter reads it."""
    config = Config()
    return runpy.run_path(str(ROOT / "jupyter" / "jupyter_server_config.py"), init_globals={"get_config": lambda: config})


SERVER_CONFIG = server_config_file()
WIDGET_NOTE, WIDGET_VIEW, widgets_to_notes = (SERVER_CONFIG[name] for name in ("WIDGET_NOTE", "WIDGET_VIEW",
                                                                                "widgets_to_notes"))

# What a Jupyter server and a standalone Voila read from their configuration, printed as JSON.
READ_SERVER_CONFIG = """
import json
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.load_config_file()
hook = app.config.ContentsManager.get("pre_save_hook")
print(json.dumps({"cull": dict(app.config.MappingKernelManager), "pre_save_hook": getattr(hook, "__name__", None)}))
"""
READ_VOILA_CONFIG = """
import json
from voila.app import Voila
app = Voila()
app.initialize(["notebooks/04_live_lab.ipynb"])
print(json.dumps({"cull": dict(app.config.MappingKernelManager), "template": app.voila_configuration.template,
                  "template_paths": app.template_paths}))
"""

# What Voila as a server extension (Binder's app link) reads: its configuration and the template's folders.
READ_VOILA_EXTENSION_CONFIG = """
import json
from voila.paths import collect_template_paths
from voila.server_extension import load_config_file
name = load_config_file().VoilaConfiguration.template
print(json.dumps({"template": name, "template_paths": collect_template_paths(["voila", "nbconvert"], name)}))
"""


def make_env(target: str) -> dict[str, str]:
    """The environment variables a make target's command sets (VAR=value before the command)."""
    command = subprocess.run(["make", "-n", "-o", ".venv/.installed", target], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    return dict(re.findall(r"\b(JUPYTER_\w+)=(\S+)", command))


def read(script: str, env: dict[str, str], prefix: list[str] | None = None) -> dict:
    """Run ``script`` in a fresh Python with ``env`` added (through ``prefix``, e.g. binder/start) and read its JSON."""
    outside = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH")}
    done = subprocess.run([*(prefix or []), sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**outside, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def documented_voila_culling() -> dict[str, object]:
    """The culling options docs/instructors.md gives for Voila's command line."""
    options = dict(re.findall(r"--MappingKernelManager\.(\w+)=(\w+)", INSTRUCTORS))
    return {name: json.loads(value.lower()) for name, value in options.items()}


def test_the_instructors_page_gives_the_three_culling_options():
    assert documented_voila_culling() == {"cull_idle_timeout": 600, "cull_interval": 60, "cull_connected": True}


def test_make_app_culls_abandoned_kernels_with_the_documented_values_and_uses_the_apps_template():
    voila = read(READ_VOILA_CONFIG, make_env("app"))
    assert voila["cull"] == documented_voila_culling()
    assert voila["template"] == "trainlab"
    assert str(ROOT / "jupyter" / "voila" / "templates" / "trainlab") in voila["template_paths"]


def test_binders_server_culls_the_kernels_of_closed_tabs_and_keeps_connected_ones():
    server = read(READ_SERVER_CONFIG, {}, prefix=["bash", str(ROOT / "binder" / "start")])
    assert server["cull"] == {**documented_voila_culling(), "cull_connected": False}
    assert '"cull_connected": false' in (ROOT / "binder/jupyter/jupyter_server_config.json").read_text()
    assert "binder/jupyter/" in INSTRUCTORS and "`cull_connected` is `false`" in INSTRUCTORS


def test_binders_app_link_uses_the_apps_template():
    voila = read(READ_VOILA_EXTENSION_CONFIG, {}, prefix=["bash", str(ROOT / "binder" / "start")])
    assert voila["template"] == "trainlab"
    assert str(ROOT / "jupyter" / "voila" / "templates" / "trainlab") in voila["template_paths"]


def test_the_app_template_asks_nothing_of_the_internet():
    template = (ROOT / "jupyter/voila/templates/trainlab/index.html.j2").read_text()
    assert "extends 'lab/index.html.j2'" in template
    assert not re.search(r"https?://", template)


# --- notebooks are saved with a note where their widgets were (make lab and Binder) ----------


def test_make_lab_and_binder_save_notebooks_through_widgets_to_notes():
    assert read(READ_SERVER_CONFIG, make_env("lab"))["pre_save_hook"] == "widgets_to_notes"
    binder = read(READ_SERVER_CONFIG, {}, prefix=["bash", str(ROOT / "binder" / "start")])
    assert binder["pre_save_hook"] == "widgets_to_notes"


def test_a_contents_manager_so_configured_saves_the_note_without_a_warning(tmp_path):
    from jupyter_server.services.contents.filemanager import FileContentsManager

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        server_config_file()  # what the server runs first: it silences jupyter_server's "overriding" warning
        manager = FileContentsManager(root_dir=str(tmp_path), config=SERVER_CONFIG["c"])
    manager.save(saved_notebook(), "lab.ipynb")
    outputs = nbformat.read(tmp_path / "lab.ipynb", as_version=4).cells[0].outputs
    assert outputs[0].data == {"text/plain": WIDGET_NOTE} and outputs[1].text == "step 3\n"


def saved_notebook() -> dict:
    """A contents model as JupyterLab sends it to be saved: a widget output, a text output and a checked one."""
    notebook = nbformat.v4.new_notebook()
    widget = nbformat.v4.new_output("display_data", data={
        "text/plain": "Dashboard(...)", WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "ab" * 16}})
    text = nbformat.v4.new_output("stream", name="stdout", text="step 3\n")
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "4"}, execution_count=1)
    notebook.cells = [nbformat.v4.new_code_cell("tl.Dashboard(loop)", outputs=[widget, text]),
                      nbformat.v4.new_code_cell("2 + 2", outputs=[result]), nbformat.v4.new_markdown_cell("# Lab")]
    return {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(notebook))}


def test_a_widget_output_is_saved_as_a_plain_note_and_everything_else_as_it_was():
    model = saved_notebook()
    before = copy.deepcopy(model)
    widgets_to_notes(model=model, path="lab.ipynb", contents_manager=None)
    cells = model["content"]["cells"]
    assert cells[0]["outputs"][0]["data"] == {"text/plain": WIDGET_NOTE}
    assert "run this cell" in WIDGET_NOTE.lower()
    assert cells[0]["outputs"][1] == before["content"]["cells"][0]["outputs"][1]
    assert cells[1:] == before["content"]["cells"][1:]
    nbformat.validate(nbformat.from_dict(model["content"]))


def test_files_other_than_notebooks_are_left_alone():
    model = {"type": "file", "format": "text", "content": "application/vnd.jupyter.widget-view+json"}
    widgets_to_notes(model=model, path="notes.txt")
    assert model["content"] == "application/vnd.jupyter.widget-view+json"
