"""The Jupyter server's configuration for `make lab` and Binder (on JUPYTER_CONFIG_PATH).

A notebook is saved with a plain note where its live widgets were. A widget lives in its
kernel: saved as it is, its output names a widget model that a reopened notebook's new kernel
does not have, and JupyterLab shows "Error displaying widget: model not found" (and logs a
console error) until the cell runs again.

The hook is written here rather than imported from trainlab: importing trainlab imports torch,
some 175 MB in the server process, which Binder's 1-2 GB cannot spare.
"""

import warnings

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "▶ Run this cell to start its live widget (the dashboard or plot is not saved with the notebook)."


def widgets_to_notes(model, **_):
    """A Jupyter pre-save hook: every widget output of a notebook being saved becomes ``WIDGET_NOTE``."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    for cell in model["content"].get("cells", []):
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                output["data"] = {"text/plain": WIDGET_NOTE}


c = get_config()  # noqa: F821 (Jupyter defines it while it reads this file)
# A callable, not its import string: jupyter_server's check of a string hook imports the old value.
c.ContentsManager.pre_save_hook = widgets_to_notes
# That check also sees the hook it checks as already set, and would greet every `make lab` with
# "UserWarning: Overriding existing pre_save_hook (widgets_to_notes) with a new one (widgets_to_notes)".
warnings.filterwarnings("ignore", message=r"Overriding existing pre_save_hook \(widgets_to_notes\)")
