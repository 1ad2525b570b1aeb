"""The Jupyter server's configuration for `make lab` and Binder (on JUPYTER_CONFIG_PATH).

A notebook is saved with a plain note where its live widgets were: reopened later, its widgets'
models are gone with the old kernel, and JupyterLab would show "Error displaying widget: model
not found" instead.
"""

from trainlab.widgets.saving import widgets_to_notes

c = get_config()  # noqa: F821 (Jupyter defines it while it reads this file)
# A callable, not its import string: jupyter_server's check of a string hook fails (it imports the old value).
c.ContentsManager.pre_save_hook = widgets_to_notes
