"""The dashboard's playground: the data set and its noise, the layers, dropout and momentum, a timeline, Share.

Two rows of controls around the dashboard's plots (``top``: the problem, the architecture and the
regularization; ``bottom``, under the plots: the timeline, snapshots, branches and Share). Each
control makes a change through the core (``trainlab.playground``): live ones (dropout, momentum)
and rebuilds (data set, noise, samples, classes, validation share, layers, neurons, activation), a
new run whose old one stays a ghost on the plots. While playing, the player pauses at the end of
its batch, the change is made, and it plays on. A control that cannot apply to the loop (a model
of the user's own has no layers to add) is not shown: a grey word with a tooltip saying why
stands where it would have been.

``Dashboard(controls=...)`` picks which show: a preset name (``PRESETS``), or families
(``FAMILIES``) and control names; ``docs/instructors.md`` has one preset per exercise.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import ipywidgets as widgets

from trainlab import playground, recipe
from trainlab.errors import LoopBusyError
from trainlab.makers import DATA_MAKERS, arguments_of
from trainlab.models import ACTIVATIONS
from trainlab.widgets.controls import wrapping_row

if TYPE_CHECKING:
    from trainlab.widgets.dashboard import Dashboard

__all__ = ["PlaygroundPanel", "FAMILIES", "PRESETS", "CONTROL_NAMES", "shown_controls", "share_link"]

#: The playground's controls, by family (one exercise of notebook 04 each).
FAMILIES: dict[str, tuple[str, ...]] = {
    "problem": ("dataset", "noise", "samples", "classes", "validation", "show_validation", "discretize"),
    "architecture": ("layers", "neurons", "activation"),
    "regularization": ("dropout", "momentum"),
    "time_travel": ("timeline", "snapshots", "branches"),
    "share": ("share",),
}
CONTROL_NAMES = tuple(name for names in FAMILIES.values() for name in names)
#: Ready-made choices for ``Dashboard(controls=...)``: one per exercise of notebook 04, and all or none.
PRESETS: dict[str, tuple[str, ...]] = {
    "all": CONTROL_NAMES,
    "none": (),
    "data": FAMILIES["problem"],
    "layers": FAMILIES["problem"] + FAMILIES["architecture"],
    "overfitting": ("dataset", "noise", "samples", "validation", "show_validation", *FAMILIES["regularization"]),
    "time_travel": FAMILIES["time_travel"] + FAMILIES["share"],
}
# The change each control makes (trainlab.playground.change's names); blobs call noise "std", classes "centers".
_CHANGES = {"dataset": "dataset", "noise": "noise", "samples": "n", "classes": "classes",
            "validation": "validation_split", "layers": "hidden", "neurons": "hidden", "activation": "activation",
            "dropout": "dropout", "momentum": "momentum"}
_ALIASES = {"noise": ("noise", "std"), "classes": ("classes", "centers")}
_LABELS = {"dataset": "data set", "noise": "noise", "samples": "samples", "classes": "classes",
           "validation": "validation share", "show_validation": "show validation points", "discretize": "discretize",
           "layers": "hidden layers", "neurons": "neurons", "activation": "activation", "dropout": "dropout",
           "momentum": "momentum", "timeline": "timeline", "snapshots": "snapshots", "branches": "branches",
           "share": "Share"}
# Every control says what it does (a described widget without a tooltip shows one reading "null").
_TIPS = {"data set": "Another data set: a new run from the same first weights (the old one stays a ghost)",
         "noise": "How far the points scatter from their shape: a new run", "samples": "How many points: a new run",
         "classes": "How many classes (spiral arms, blobs): a new run",
         "validation share": "The share of points held out to validate on: a new run",
         "show validation points": "Draw the held-out points, hollow, on the decision boundary",
         "discretize": "Colour the plane by the class each point falls in, without shades",
         "−": "One less", "+": "One more", "activation": "The hidden layers' activation: a new run",
         "step": "Drag back to any earlier step (exact)", "Snapshot": "Keep this moment, under the name typed",
         "Restore": "Go back to the snapshot chosen (the run left behind becomes a branch)",
         "branch": "Runs left behind by a restore, a rewind, a reset or a rebuild"}
_WIDE = {"description_width": "initial"}
# A track a thumb can drag (100 px or more) beside the longest label ("validation share") and the readout.
_SLIDER = dict(flex="1 1 300px", min_width="290px", max_width="380px")
# Buttons keep their width (a shrunk button cuts its label); rows wrap instead.
_BUTTON = dict(width="auto", flex="0 0 auto")


def shown_controls(controls: str | Sequence[str] | None) -> tuple[str, ...]:
    """The control names ``Dashboard(controls=...)`` asks for: a preset, or families and names (None: all)."""
    if controls is None:
        return CONTROL_NAMES
    if isinstance(controls, str):
        if controls not in PRESETS:
            raise ValueError(f"unknown controls preset {controls!r}; choose one of {sorted(PRESETS)}, or pass a list "
                             f"of families {sorted(FAMILIES)} and control names")
        return PRESETS[controls]
    names: list[str] = []
    for item in controls:
        if item not in FAMILIES and item not in CONTROL_NAMES:
            raise ValueError(f"unknown control {item!r}; choose families {sorted(FAMILIES)} or controls "
                             f"{list(CONTROL_NAMES)}")
        names += FAMILIES.get(item, (item,))
    return tuple(dict.fromkeys(names))


def share_link(name: str) -> str:
    """The link that opens the workshop notebook's app with the shared run: the same page in Voila,
    or the Voila view of this notebook from JupyterLab (``?recipe=`` names the file)."""
    import os
    import urllib.parse

    query = "?" + urllib.parse.urlencode({"recipe": name})
    if "SCRIPT_NAME" in os.environ and "QUERY_STRING" in os.environ:  # in Voila: this very app, with the run
        return query
    base, notebook = _notebook_url()
    return f"{base.rstrip('/')}/voila/render/{urllib.parse.quote(notebook)}{query}"


def _notebook_url() -> tuple[str, str]:
    """The Jupyter server's base URL and this kernel's notebook path from its root (JupyterLab names the
    notebook by its full path: the server that started this kernel says where its root is)."""
    import os

    notebook = os.environ.get("JPY_SESSION_NAME", "")
    base = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    try:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
    except Exception:  # no Jupyter server here (a script): the workshop notebook's usual place
        servers = []
    for server in sorted(servers, key=lambda info: info.get("pid") != os.getppid()):  # ours first
        root = server.get("root_dir", "")
        if notebook and root and os.path.isabs(notebook) and notebook.startswith(root.rstrip("/") + "/"):
            return server.get("base_url", base), os.path.relpath(notebook, root)
    return base, notebook.lstrip("/") if notebook and not os.path.isabs(notebook) else "notebooks/04_live_lab.ipynb"


class PlaygroundPanel:
    """The playground's widgets for one dashboard: ``top`` (problem, architecture, regularization) and ``bottom``."""

    def __init__(self, dashboard: Dashboard, shown: Sequence[str], share_dir: str | Path | None = None) -> None:
        self.dash = dashboard
        self.loop = dashboard.loop
        self.share_dir = Path.cwd() if share_dir is None else Path(share_dir)
        self._local = threading.local()  # .syncing: copying the loop's values onto the widgets
        self._acting = False
        self.controls: dict[str, widgets.Widget] = {}  # name -> the control (a box for composite ones)
        self.unavailable: dict[str, widgets.HTML] = {}  # name -> the grey word whose tooltip says why
        self.snapshots: dict[str, Any] = {}  # label -> snapshot (one from before a rebuild: refused by restore)
        self._build(shown)
        self.handles = [self.loop.on("after_change", self._on_change, observer=True)]
        self.refresh(False)

    # --- building -----------------------------------------------------------------------------------

    def _build(self, shown: Sequence[str]) -> None:
        makers = {"dataset": self._dataset, "noise": self._noise, "samples": self._samples, "classes": self._classes,
                  "validation": self._validation, "show_validation": self._show_validation,
                  "discretize": self._discretize, "layers": self._layers, "neurons": self._neurons,
                  "activation": self._activation, "dropout": self._dropout, "momentum": self._momentum,
                  "timeline": self._timeline, "snapshots": self._snapshots, "branches": self._branches,
                  "share": self._share}
        for name in shown:
            why = self.why_not(name)
            if why:
                self.unavailable[name] = widgets.HTML(
                    f"<span style='color:var(--jp-ui-font-color2, gray)'>{_LABELS[name]} ⓘ</span>", tooltip=why)
            else:
                self.controls[name] = makers[name]()
        self.alert = widgets.HTML()
        top = [self._place(name) for name in shown if name in FAMILIES["problem"] + FAMILIES["architecture"]
               + FAMILIES["regularization"]]
        bottom = [self._place(name) for name in shown if name in FAMILIES["time_travel"] + FAMILIES["share"]]
        self.top = widgets.HBox(top, layout=wrapping_row())
        self.bottom = widgets.VBox([widgets.HBox(bottom, layout=wrapping_row()), self.alert])
        for widget in _tree(self.top) + _tree(self.bottom):
            if getattr(widget, "description", "") and getattr(widget, "tooltip", "") is None:
                widget.tooltip = _TIPS.get(widget.description, widget.description)

    def _place(self, name: str) -> widgets.Widget:
        return self.controls.get(name) or self.unavailable[name]

    def why_not(self, name: str) -> str:
        """Why control ``name`` cannot apply to this loop ("" when it can): its tooltip where it would be."""
        loop = self.loop
        if name in ("show_validation", "discretize"):
            return "" if "decision_boundary" in self.dash.plots else "for 2-D classification data: the decision boundary"
        if name == "share":
            why = recipe.made(loop).why_not
            return f"this run cannot be shared: {why}" if why else ""
        if name in FAMILIES["time_travel"]:
            return ""
        if name in _ALIASES:
            return playground.can_change(loop, self._change_name(name))
        return playground.can_change(loop, _CHANGES[name])

    def _change_name(self, name: str) -> str:
        """The data maker's own name for a control's setting (blobs' noise is ``std``)."""
        record = recipe.made(self.loop)
        data = arguments_of(DATA_MAKERS[record.data["name"]], (), {k: v for k, v in record.data.items()
                                                                   if k != "name"}) if record.data else {}
        return next((alias for alias in _ALIASES.get(name, (name,)) if alias in data), _ALIASES.get(name, (name,))[0])

    def _observed(self, widget: widgets.Widget, fn: Callable[[Any], None]) -> widgets.Widget:
        def observe(change: dict) -> None:
            if not getattr(self._local, "syncing", False):
                fn(change["new"])

        widget.observe(observe, names="value")
        return widget

    def _dataset(self) -> widgets.Widget:
        options = [name for name in DATA_MAKERS if name != "digits"]  # 8x8 images need the CNN, not the MLP
        return self._observed(widgets.Dropdown(options=options, description="data set", style=_WIDE,
                                               layout=widgets.Layout(width="190px")),
                              lambda value: self.make("dataset", value))

    def _noise(self) -> widgets.Widget:
        return self._observed(widgets.FloatSlider(min=0, max=1.0, step=0.05, description="noise",
                                                  continuous_update=False, style=_WIDE, layout=widgets.Layout(**_SLIDER)),
                              lambda value: self.make(self._change_name("noise"), round(value, 2)))

    def _samples(self) -> widgets.Widget:
        return self._observed(widgets.IntSlider(min=20, max=1000, step=10, description="samples",
                                                continuous_update=False, style=_WIDE, layout=widgets.Layout(**_SLIDER)),
                              lambda value: self.make("n", value))

    def _classes(self) -> widgets.Widget:
        return self._observed(widgets.IntSlider(min=2, max=5, description="classes", continuous_update=False,
                                                style=_WIDE, layout=widgets.Layout(**_SLIDER)),
                              lambda value: self.make(self._change_name("classes"), value))

    def _validation(self) -> widgets.Widget:
        return self._observed(widgets.FloatSlider(min=0, max=0.5, step=0.05, description="validation share",
                                                  continuous_update=False, style=_WIDE, layout=widgets.Layout(**_SLIDER)),
                              lambda value: self.make("validation_split", round(value, 2)))

    def _show_validation(self) -> widgets.Widget:
        return self._observed(widgets.Checkbox(description="show validation points", indent=False,
                                               layout=widgets.Layout(**_BUTTON)),
                              lambda value: self._boundary(lambda plot: plot.show_validation(value)))

    def _discretize(self) -> widgets.Widget:
        def discretize(plot: Any, value: bool) -> None:
            plot.discretize = value

        return self._observed(widgets.Checkbox(description="discretize", indent=False,
                                               layout=widgets.Layout(**_BUTTON)),
                              lambda value: self._boundary(lambda plot: discretize(plot, value)))

    def _layers(self) -> widgets.Widget:
        return self._stepper("hidden layers", lambda hidden, by: hidden + [hidden[-1] if hidden else 4] if by > 0
                             else hidden[:-1])

    def _neurons(self) -> widgets.Widget:
        return self._stepper("neurons", lambda hidden, by: [max(1, width + by) for width in hidden])

    def _stepper(self, label: str, changed: Callable[[list[int], int], list[int]]) -> widgets.Widget:
        """−, a count and + (as Playground's): the hidden layers, or the neurons of every hidden layer."""
        minus, plus = (widgets.Button(description=sign, layout=widgets.Layout(width="32px", flex="0 0 auto"))
                       for sign in ("−", "+"))
        count = widgets.HTML()
        box = widgets.HBox([widgets.HTML(f"{label}&nbsp;"), minus, count, plus], layout=widgets.Layout(
            align_items="center", width="auto", flex="0 0 auto"))
        box.minus, box.plus, box.count = minus, plus, count
        minus.on_click(lambda _: self.make("hidden", changed(self._hidden(), -1)))
        plus.on_click(lambda _: self.make("hidden", changed(self._hidden(), +1)))
        return box

    def _hidden(self) -> list[int]:
        return list((recipe.made(self.loop).model or {}).get("hidden", []))

    def _activation(self) -> widgets.Widget:
        return self._observed(widgets.Dropdown(options=list(ACTIVATIONS), description="activation", style=_WIDE,
                                               layout=widgets.Layout(width="190px")),
                              lambda value: self.make("activation", value))

    def _dropout(self) -> widgets.Widget:
        return self._observed(widgets.FloatSlider(min=0, max=0.8, step=0.05, description="dropout",
                                                  continuous_update=False, style=_WIDE, layout=widgets.Layout(**_SLIDER),
                                                  tooltip="the share of values zeroed in training; live"),
                              lambda value: self.make("dropout", round(value, 2)))

    def _momentum(self) -> widgets.Widget:
        return self._observed(widgets.FloatSlider(min=0, max=0.99, step=0.01, description="momentum",
                                                  continuous_update=False, style=_WIDE, layout=widgets.Layout(**_SLIDER),
                                                  tooltip="how much of the last update each update keeps; live"),
                              lambda value: self.make("momentum", round(value, 2)))

    # --- time travel and Share ------------------------------------------------------------------------

    def _timeline(self) -> widgets.Widget:
        slider = self._observed(widgets.IntSlider(min=0, max=0, description="step", continuous_update=False,
                                                  style=_WIDE, layout=widgets.Layout(flex="1 1 400px", min_width="300px"),
                                                  tooltip="drag back to any earlier step (exact)"),
                                lambda value: self.act(lambda: playground.travel(self.loop, value)))
        self.reach = widgets.HTML()
        self.nearest = widgets.Button(layout=widgets.Layout(**_BUTTON),
                                      tooltip="the nearest step the keyframes still reach")
        self.nearest.on_click(lambda _: self.act(lambda: playground.travel(self.loop, self.nearest.target)))
        self.timeline = slider
        self.timeline_row = widgets.HBox([slider, self.reach], layout=wrapping_row())  # + nearest, when offered
        return self.timeline_row

    def _snapshots(self) -> widgets.Widget:
        self.snapshot_name = widgets.Text(placeholder="name", layout=widgets.Layout(width="110px"))
        self.snapshot_button = widgets.Button(description="Snapshot", icon="camera", layout=widgets.Layout(**_BUTTON))
        self.snapshot_list = widgets.Dropdown(options=[], layout=widgets.Layout(width="170px"))
        self.restore_button = widgets.Button(description="Restore", layout=widgets.Layout(**_BUTTON))
        self.snapshot_button.on_click(lambda _: self.act(self._take_snapshot))
        self.restore_button.on_click(lambda _: self.act(self._restore_snapshot))
        return widgets.HBox([self.snapshot_name, self.snapshot_button, self.snapshot_list, self.restore_button],
                            layout=wrapping_row())

    def _take_snapshot(self) -> None:
        name = self.snapshot_name.value.strip() or f"snapshot {len(self.snapshots) + 1}"
        label = f"{name} (step {self.loop.state.step})"
        self.snapshots[label] = self.loop.snapshot(name)
        self.snapshot_name.value = ""

    def _restore_snapshot(self) -> None:
        label = self.snapshot_list.value
        if label not in self.snapshots:
            raise ValueError("no snapshot chosen: take one with Snapshot first")
        self.loop.restore(self.snapshots[label])

    def _branches(self) -> widgets.Widget:
        self.branch_list = widgets.Dropdown(options=[], description="branch", style=_WIDE,
                                            layout=widgets.Layout(width="260px"))
        self.ghost_button = widgets.Button(description="Show as ghost", layout=widgets.Layout(**_BUTTON),
                                           tooltip="draw this run faintly on the loss plot again")
        self.resume_button = widgets.Button(description="Restore its end", layout=widgets.Layout(**_BUTTON),
                                            tooltip="go to where it forked, then run its steps and changes again")
        self.ghost_button.on_click(lambda _: self.act(self._show_branch))
        self.resume_button.on_click(lambda _: self.act(lambda: playground.resume_branch(self.loop, self._branch())))
        return widgets.HBox([self.branch_list, self.ghost_button, self.resume_button], layout=wrapping_row())

    def _branch(self) -> Any:
        branches = self.loop.history.branches
        index = self.branch_list.value
        if index is None or index >= len(branches):
            raise ValueError("no branch chosen: a restore, rewind, reset or rebuild leaves one")
        return branches[index]

    def _show_branch(self) -> None:
        branch = self._branch()
        branches = self.loop.history.branches
        branches[:] = [b for b in branches if b is not branch] + [branch]  # the last ones are the ghosts drawn

    def _share(self) -> widgets.Widget:
        self.share_button = widgets.Button(description="Share", icon="share-alt", layout=widgets.Layout(**_BUTTON),
                                           tooltip=f"write this run to {recipe.SHARED_FILE} next to the notebook, "
                                                   "and show a link that opens it")
        self.share_output = widgets.HTML()
        self.share_button.on_click(lambda _: self.act(self.share, redraw=False))
        return widgets.HBox([self.share_button, self.share_output], layout=wrapping_row())

    def share(self) -> Path:
        """Write the run's recipe next to the notebook and show the link that opens it; returns the file."""
        path = recipe.write(self.loop.recipe(), self.share_dir / recipe.SHARED_FILE)
        link = share_link(path.name)
        self.share_output.value = (f"<a href='{html.escape(link)}' target='_blank' class='trainlab-share-link'>"
                                   f"open this run (step {self.loop.state.step})</a> · {html.escape(path.name)}")
        return path

    # --- acting -------------------------------------------------------------------------------------

    def make(self, name: str, value: Any) -> None:
        """Make a playground change (``trainlab.playground.change``), pausing a playing loop for it."""
        self.act(lambda: playground.change(self.loop, name, value))

    def act(self, fn: Callable[[], Any], redraw: bool = True) -> None:
        """Run ``fn`` on the loop between batches (a playing loop pauses at its batch's end, then plays on);
        an error is shown, and the plots are made again if the data or the model changed."""
        dash, loop = self.dash, self.loop
        playing = dash.playing
        if playing:
            dash.pause(finish_batch=True)
        built = (loop.model, loop.train_data[0])
        self._acting = True
        self.alert.value = ""
        if hasattr(self, "nearest"):
            self.timeline_row.children = [self.timeline, self.reach]
        try:
            fn()
        except (ValueError, LoopBusyError) as error:
            self._show_error(error)
        finally:
            self._acting = False
            if (loop.model, loop.train_data[0]) != built:
                dash.remake_plots()
                dash.batch_size_slider.max = loop.n_train  # another number of samples
            if playing:
                dash.play()
            elif redraw:
                dash.redraw()
            self.refresh(dash.playing)

    def _show_error(self, error: Exception) -> None:
        self.alert.value = (f"<div style='color:var(--jp-error-color0, #a40000)'>{html.escape(type(error).__name__)}: "
                            f"{html.escape(str(error))}</div>")
        if isinstance(error, playground.TravelError) and hasattr(self, "nearest"):
            self.nearest.target = error.nearest
            self.nearest.description = f"Go to step {error.nearest}"
            self.timeline_row.children = [self.timeline, self.reach, self.nearest]

    def _boundary(self, fn: Callable[[Any], None]) -> None:
        plot = self.dash.plots.get("decision_boundary")
        if plot is not None:
            fn(plot)
            if not self.dash.playing:
                self.dash.redraw()

    def _on_change(self, loop: Any) -> None:
        """A change made from code: a rebuild needs new plots (a button's change remakes them itself)."""
        changes = loop.history.changes
        if not self._acting and changes and recipe.is_rebuild(changes[-1][1]) and changes[-1][0] == 0:
            self.dash.remake_plots()

    # --- showing the loop -------------------------------------------------------------------------------

    def refresh(self, playing: bool) -> None:
        """Show the loop's settings, step and branches on the controls (without sending them back)."""
        loop, record = self.loop, recipe.made(self.loop)
        data, model = record.data or {}, record.model or {}
        if data:  # every argument of the maker, its defaults too
            data = arguments_of(DATA_MAKERS[data["name"]], (), {k: v for k, v in data.items() if k != "name"})
            data["name"] = record.data["name"]
        values = {"dataset": data.get("name"), "noise": data.get(self._change_name("noise")),
                  "samples": data.get("n"), "classes": data.get(self._change_name("classes")),
                  "validation": record.loop.get("validation_split", 0.0), "activation": model.get("activation"),
                  "dropout": playground.dropout(loop), "momentum": playground.momentum(loop)}
        self._local.syncing = True
        try:
            for name, value in values.items():
                control = self.controls.get(name)
                if control is not None:
                    control.disabled = value is None
                    if isinstance(control, widgets.Dropdown) and value not in control.options:
                        control.options = (*control.options, value)  # digits (for the CNN), a maker of one's own
                    if value is not None:
                        control.value = value
            for name, show in (("layers", len), ("neurons", lambda hidden: ", ".join(map(str, hidden)) or "–")):
                if name in self.controls:
                    self.controls[name].count.value = f"&nbsp;<b>{show(self._hidden())}</b>&nbsp;"
            self._refresh_time()
        finally:
            self._local.syncing = False

    def _refresh_time(self) -> None:
        loop = self.loop
        if "timeline" in self.controls:
            first, current = playground.reachable(loop)
            with self.timeline.hold_sync():
                self.timeline.max = max(current, self.timeline.min)
                self.timeline.value = current
            self.reach.value = f"&nbsp;reachable: steps {first}–{current}"
        # Only when they change: new options are sent to the page whole, and the choice starts again.
        if "snapshots" in self.controls and tuple(self.snapshot_list.options) != tuple(self.snapshots):
            self.snapshot_list.options = list(self.snapshots)
        branches = tuple((f"{i}: {b.name}", i) for i, b in enumerate(loop.history.branches))
        if "branches" in self.controls and tuple(self.branch_list.options) != branches:
            self.branch_list.options = branches


def _tree(widget: widgets.Widget) -> list[widgets.Widget]:
    return [widget] + [w for child in getattr(widget, "children", ()) for w in _tree(child)]
