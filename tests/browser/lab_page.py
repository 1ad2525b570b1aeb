"""What a participant does in the page, as small functions over a playwright page."""

from __future__ import annotations

import re
import time
from typing import Any, Callable

# The biggest number of points in any trace whose name mentions "loss", over all plotly plots.
LOSS_POINTS_JS = """() => {
  let most = -1;
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    for (const trace of (gd.data || [])) {
      if (trace.name && /loss/i.test(trace.name) && trace.y) most = Math.max(most, trace.y.length);
    }
  }
  return most;
}"""

# The texts of every annotation of every plot (hyperparameter changes are marked with one).
ANNOTATIONS_JS = """() => {
  const texts = [];
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    for (const a of ((gd.layout || {}).annotations || [])) texts.push(String(a.text));
  }
  return texts;
}"""


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


def button(page: Any, label: str) -> Any:
    """The dashboard button with exactly this label."""
    return page.locator("button.widget-button", has_text=re.compile(f"^\\s*{label}\\s*$")).first


def status_text(page: Any) -> str:
    """The dashboard's status line (it holds 'step N' and 'next: stage()')."""
    locator = page.locator(".widget-html", has_text=re.compile(r"next: \w+\(\)")).first
    return locator.inner_text(timeout=5000)


def step_count(page: Any) -> int:
    """The step counter shown in the status line."""
    return int(re.search(r"step (\d+)", status_text(page)).group(1))


def loss_points(page: Any) -> int:
    """The loss plot's number of points, read from the page's plotly data."""
    return page.evaluate(LOSS_POINTS_JS)


_BOUNDARY_SUM_JS = """() => {
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        const title = ((gd.layout || {}).title || {}).text || '';
        const heatmap = title.startsWith('Decision') && (gd.data || []).find(t => t.type === 'heatmap');
        if (heatmap && heatmap.z) {
            return Array.from(heatmap.z, row => Array.from(row).reduce((a, b) => a + b, 0)).reduce((a, b) => a + b, 0);
        }
    }
    return null;
}"""


def boundary_sum(page: Any) -> float | None:
    """The sum of the decision boundary's colours as the page holds them (None until it is drawn)."""
    return page.evaluate(_BOUNDARY_SUM_JS)


def set_slider(page: Any, label: str, value: str) -> None:
    """Type a value into the readout of the slider whose label contains ``label`` (as a person can)."""
    slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).first
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+a")
    readout.type(value)
    readout.press("Enter")


def screenshot_whole(page: Any, element: Any, path: Any) -> None:
    """Screenshot ``element`` in full: grow the window to fit it, since JupyterLab draws only what is in view."""
    size = page.viewport_size
    height = int(element.bounding_box()["height"]) + 400
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    element.scroll_into_view_if_needed()
    time.sleep(0.5)  # let the newly visible part paint
    element.screenshot(path=str(path))
    page.set_viewport_size(size)
