"""What a participant does in the page, as small functions over a playwright page."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from benchmarks.live_page import FIGURES, REFRESH_TIMES_JS

# The texts of every annotation of every plot (hyperparameter changes are marked with one).
ANNOTATIONS_JS = f"""() => {FIGURES}.flatMap(el =>
    ((el.trainlabFigure.layout || {{}}).annotations || []).map(a => String(a.text)))"""


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def dismiss_dialogs(page: Any) -> None:
    """Accept a 'Select Kernel' dialog and close news notices if they cover the page."""
    for selector in (".jp-Dialog .jp-mod-accept", ".jp-Notification-Toast-Close", ".jp-toast-dismiss"):
        for element in page.query_selector_all(selector):
            try:
                element.click(timeout=1000)
            except Exception:  # it may vanish between query and click
                pass


@contextlib.contextmanager
def dark_theme(page: Any) -> Iterator[None]:
    """JupyterLab in its dark theme for the block; the light one back after (it is a user setting, kept
    for the other tests)."""
    def switch(theme: str, light: str) -> None:
        page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
        wait_until(lambda: page.evaluate(f"() => document.body.dataset.jpThemeLight === '{light}'"), 30, theme)
    switch("JupyterLab Dark", "false")
    try:
        yield
    finally:
        switch("JupyterLab Light", "true")


def show_cell(page: Any, index: int) -> None:
    """Scroll the notebook to its cell ``index`` (the dashboard's), as a person scrolling up would: Run All
    leaves the last cell in view, and JupyterLab drops cells far out of view from the page."""
    page.evaluate("""async (index) => {
      const notebook = window.jupyterapp.shell.currentWidget.content;
      notebook.activeCellIndex = index;
      await notebook.scrollToItem(index, 'start');
    }""", index)
    page.locator(".trainlab-dashboard").first.wait_for(timeout=15000)


def button(page: Any, label: str) -> Any:
    """The dashboard button with exactly this label."""
    return page.locator("button.widget-button", has_text=re.compile(f"^\\s*{label}\\s*$")).first


def status_text(page: Any) -> str:
    """The dashboard's status line (it holds 'step N' and 'next: stage()')."""
    locator = page.locator(".widget-html", has_text=re.compile(r"next: \w+\(\)")).first
    # In sight first: JupyterLab leaves cells far from the view unpainted (after Run All, the view is at the
    # notebook's end), and an unpainted line has no text to read.
    locator.scroll_into_view_if_needed(timeout=15000)
    return locator.inner_text(timeout=15000)  # a busy 2-core machine can take a while to paint


def step_count(page: Any) -> int:
    """The step counter shown in the status line."""
    return int(re.search(r"step (\d+)", status_text(page)).group(1))


def set_slider(page: Any, label: str, value: str) -> None:
    """Type a value into the readout of the slider whose label contains ``label`` (as a person can)."""
    slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).first
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+a")
    readout.type(value)
    readout.press("Enter")


# Each plot's frame on screen, by title (None until drawn).
REVISIONS_JS = f"""() => Object.fromEntries({FIGURES}.map(el =>
    [el.dataset.title || '', el.dataset.frame === undefined ? null : Number(el.dataset.frame)]))"""

# The titles of the plots in sight (a plot out of sight is not drawn: it waits until it is seen).
IN_SIGHT_JS = f"""() => {FIGURES}.filter(el => {{
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.top < window.innerHeight && r.bottom > 0;
}}).map(el => el.dataset.title || '')"""


def revisions(page: Any) -> dict[str, Any]:
    """Every plot's title -> the frame it shows."""
    return page.evaluate(REVISIONS_JS)


def in_sight(page: Any) -> list[str]:
    """The titles of the plots in sight."""
    return page.evaluate(IN_SIGHT_JS)


def refresh_times(page: Any, seconds: float) -> dict[str, list[float]]:
    """For each plot (by title), the times (ms from the start) it changed on screen during ``seconds``."""
    return page.evaluate(REFRESH_TIMES_JS, seconds)


def redraws_per_second(page: Any, seconds: float = 3.0) -> dict[str, float]:
    """How often each plot is redrawn, per second, measured in the page (also as "loss", "decision_boundary")."""
    rates = {title: len(changes) / seconds for title, changes in refresh_times(page, seconds).items()}
    return {"loss": rates.get("Loss", 0.0), "decision_boundary": rates.get("Decision boundary", 0.0), **rates}


def screenshot_whole(page: Any, element: Any, path: Any) -> None:
    """Screenshot ``element`` in full: grow the window to fit it, since JupyterLab draws only what is in view."""
    size = page.viewport_size
    height = int(element.bounding_box()["height"]) + 400
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    element.scroll_into_view_if_needed()
    time.sleep(0.5)  # let the newly visible part paint
    element.screenshot(path=str(path))
    page.set_viewport_size(size)


def one_cell_notebook(folder: Path, name: str, code: str) -> str:
    """Write a notebook of one code cell (a current kernelspec) into ``folder``; its path from the repository."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(notebook, path)
    return str(path.relative_to(Path(__file__).resolve().parents[2]))
