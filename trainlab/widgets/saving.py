"""Saving notebooks: each live widget becomes a plain note, so a reopened notebook shows no error.

A widget lives in its kernel. Saved as it is, its output names a widget model that a reopened
notebook's new kernel does not have, and JupyterLab shows "Error displaying widget: model not
found" (and logs a console error) until the cell runs again. The project's Jupyter server
(jupyter/jupyter_server_config.py, used by `make lab` and Binder) runs ``widgets_to_notes``
before every save.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WIDGET_VIEW", "WIDGET_NOTE", "widgets_to_notes"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "▶ Run this cell to start its live widget (the dashboard or plot is not saved with the notebook)."


def widgets_to_notes(model: dict[str, Any], **_: Any) -> None:
    """A Jupyter pre-save hook: every widget output of a notebook being saved becomes ``WIDGET_NOTE``."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    for cell in model["content"].get("cells", []):
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                output["data"] = {"text/plain": WIDGET_NOTE}
