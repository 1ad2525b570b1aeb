"""The dashboard's learning-rate finder: a button that runs ``loop.find_lr()``, its plot, and "use it"."""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from trainlab.lr_finder import LRFinderResult
from trainlab.widgets.static_plots import plot_lr_finder

__all__ = ["LRFinderPanel"]

_TIP = ("The learning-rate range test: train briefly with a learning rate growing from 1e-7 to 10, watch where "
        "the loss falls fastest, then put the loop back exactly as it was (paused only)")


class LRFinderPanel:
    """A "Find lr" button, the loss-vs-lr plot once it has run, and a button that applies the suggestion."""

    def __init__(self, run: Callable[[], LRFinderResult | None], apply: Callable[[float], None]) -> None:
        self._run, self._apply = run, apply
        self.result: LRFinderResult | None = None
        self.find_button = widgets.Button(description="Find lr", icon="search", tooltip=_TIP,
                                          layout=widgets.Layout(width="auto"))
        self.apply_button = widgets.Button(description="Use suggestion", disabled=True,
                                           tooltip="Set the learning rate to the finder's suggestion",
                                           layout=widgets.Layout(width="auto"))
        self.note = widgets.HTML()
        self.plot_box = widgets.Box()  # the plot appears here after a run: nothing is drawn before
        self.find_button.on_click(lambda _: self.find())
        self.apply_button.on_click(lambda _: self.apply())
        self.widget = widgets.VBox([widgets.HBox([self.find_button, self.apply_button, self.note]), self.plot_box])

    def find(self) -> None:
        """Run the finder (the dashboard refuses while playing) and show what it found."""
        result = self._run()
        if result is None:
            return
        self.result = result
        for old in self.plot_box.children:
            old.close()
        self.plot_box.children = [plot_lr_finder(result)]
        if result.suggestion is None:
            self.note.value = f"No suggestion: {result.stop_reason} after {len(result.lrs)} batches."
            self.apply_button.disabled = True
            return
        self.note.value = (f"suggestion: lr = <b>{result.suggestion:.3g}</b> ({result.rule} rule); "
                           f"{result.stop_reason}. The loop was put back as it was.")
        self.apply_button.description = f"Use lr = {result.suggestion:.3g}"
        self.apply_button.disabled = False

    def apply(self) -> None:
        """Set the loop's lr to the suggestion (recorded as a change, like moving the slider)."""
        if self.result is not None and self.result.suggestion is not None:
            self._apply(self.result.suggestion)

    def close(self) -> None:
        """Close every widget of the panel."""
        for child in (*self.plot_box.children, self.find_button, self.apply_button, self.note, self.plot_box,
                      self.widget):
            child.close()
