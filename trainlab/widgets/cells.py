"""Notebook cells, seen from the widgets: call a function when each cell starts or ends (IPython's events)."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["on_cells"]


def on_cells(started: Callable[..., Any] | None = None, ended: Callable[..., Any] | None = None) -> Callable[[], None]:
    """Call ``started``/``ended`` around every notebook cell; returns a function that stops it.

    Outside IPython (plain Python, pytest) there are no cells, and nothing is called.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return lambda: None
    shell = get_ipython()
    if shell is None:
        return lambda: None
    hooks = [(event, fn) for event, fn in (("pre_run_cell", started), ("post_run_cell", ended)) if fn is not None]
    for event, fn in hooks:
        shell.events.register(event, fn)

    def unregister() -> None:
        for event, fn in hooks:
            try:
                shell.events.unregister(event, fn)
            except ValueError:  # already gone
                pass

    return unregister
