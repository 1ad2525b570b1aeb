"""The neuron view in real JupyterLab: it redraws while the dashboard plays, and the browser keeps up."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path


from lab_page import FIGURES, button, one_cell_notebook, screenshot_whole, status_text, step_count, wait_until
from test_lab import assert_no_console_errors, open_notebook, wait_idle

# The sum of the neuron mosaic's colours as the page holds it (None until drawn).
_NEURONS_JS = f"""() => {{
    for (const el of {FIGURES}) {{
        const figure = el.trainlabFigure;
        const heatmap = (el.dataset.title || '').startsWith('Neurons') && figure.data.find(t => t && t.type === 'heatmap');
        if (heatmap && heatmap.z) {{
            let sum = 0;
            for (const row of heatmap.z) for (const v of row) if (Number.isFinite(v)) sum += v;
            return sum;
        }}
    }}
    return null;
}}"""
_LANDSCAPE_POINTS_JS = f"""() => {{
    for (const el of {FIGURES}) {{
        if ((el.dataset.title || '').startsWith('Where this step lands')) return ((el.trainlabFigure.data[0] || {{}}).y || []).length;
    }}
    return -1;
}}"""

# How many steps the loss plot's smoothed curve shows (-1 until drawn).
_LOSS_POINTS_JS = f"""() => {{
    for (const el of {FIGURES}) {{
        if (el.dataset.title === 'Loss') {{
            const smoothed = el.trainlabFigure.data.find(t => t && t.name === 'loss');
            return smoothed && smoothed.y ? smoothed.y.length : 0;
        }}
    }}
    return -1;
}}"""

# Count the ticks of the timer the figures share (live_figure.js's everyTwoSeconds).
_COUNT_TICKS_JS = """() => {
    window.__trainlabTicks = 0;
    globalThis[Symbol.for('trainlab.heartbeat')].add(() => { window.__trainlabTicks += 1; });
}"""


def neurons_sum(page) -> float | None:
    return page.evaluate(_NEURONS_JS)


def inside_notebook(folder: Path) -> str:
    """The spiral lab with the neuron view and the step's landscape on the dashboard, untrained.

    Untrained, the loss plot starts empty and its first frame holds one step: the raw and
    smoothed loss must be the same number there, or plotly.js logs SVG errors (series.Ema).
    """
    code = ("import trainlab as tl\n"
            "X, y = tl.datasets.spiral(n=400, noise=0.1, seed=0)\n"
            "loop = tl.Loop(tl.models.mlp(2, [32, 32], 2, activation='tanh', seed=0), (X, y), 'cross_entropy',\n"
            "               lr=0.3, batch_size=16, validation_split=0.2, seed=0)\n"
            "dash = tl.Dashboard(loop, plots=('loss', 'network', 'step_landscape'), speed=300)\n"
            "dash")
    return one_cell_notebook(folder, "inside.ipynb", code)


def test_the_neuron_view_redraws_while_playing_in_jupyterlab(page, lab_server, output_dir):
    page.set_viewport_size({"width": 1600, "height": 1800})  # the whole dashboard in view: figures draw in view
    open_notebook(page, lab_server, inside_notebook(output_dir))
    wait_idle(page, lab_server)
    view = page.locator(".widget-vbox", has=page.locator(".widget-dropdown", has_text="neuron")).last
    view.scroll_into_view_if_needed()  # JupyterLab draws only what is in view
    first = wait_until(lambda: neurons_sum(page), 30, "the neuron view to be drawn")
    for label, due in (("Forward", "loss"), ("Loss", "backward"), ("Backward", "update")):
        button(page, label).click()
        wait_until(lambda: f"next: {due}()" in status_text(page), 15, f"{due}() to be due")
    wait_until(lambda: page.evaluate(_LANDSCAPE_POINTS_JS) == 25, 15, "the step's landscape after Backward")
    button(page, "Update").click()  # the loss plot's first point, on its own (it once logged plotly errors)
    wait_until(lambda: page.evaluate(_LOSS_POINTS_JS) == 1, 15, "the loss plot's first step")
    assert_no_console_errors(page)
    updated = wait_until(lambda: neurons_sum(page) != first and neurons_sum(page), 15, "the neurons after Update")

    # Paused, the figures keep quiet (every message would keep the kernel from looking idle):
    # two ticks of the page's 2-second timer pass without an "alive".
    quiet = page.traffic.alive_sent
    page.evaluate(_COUNT_TICKS_JS)
    wait_until(lambda: page.evaluate("() => window.__trainlabTicks") >= 2, 15, "two ticks of the figures' timer")
    assert page.traffic.alive_sent == quiet, "a paused dashboard's figures still say 'alive'"

    button(page, "Play").click()
    changes, seen, start = 0, updated, time.monotonic()
    while time.monotonic() - start < 5:  # the neurons' pictures change as the network learns
        now = neurons_sum(page)
        changes += now is not None and abs(now - seen) > 1e-9
        seen = now
        time.sleep(0.05)
    assert page.traffic.alive_sent >= quiet + 2, "while playing, the figures say 'alive' every 2 s"
    rate = changes / (time.monotonic() - start)
    assert rate > 0.2, f"the neuron view redrew only {rate:.2f} times a second while playing"
    ui = status_text(page)
    share = int(re.search(r"UI: (\d+)% of a core", ui).group(1))
    assert share <= 5, f"all the dashboard's redraws together must stay under max_ui_fraction (5%): {ui}"
    screenshot_whole(page, view, output_dir / "network.png")
    button(page, "Pause").click()
    wait_until(lambda: "paused" in status_text(page), 15, "the dashboard to pause")
    assert step_count(page) > 100
    (output_dir / "network-metrics.json").write_text(json.dumps(
        {"neuron_view_redraws_per_second": round(rate, 2), "status_while_playing": ui}, indent=2))
    assert_no_console_errors(page)
