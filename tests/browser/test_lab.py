"""A workshop participant's session, in real JupyterLab and Voila, in headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psutil

from benchmarks.live_page import FIGURES
from lab_page import (ANNOTATIONS_JS, button, dark_theme, dismiss_dialogs, in_sight, one_cell_notebook, revisions,
                      screenshot_whole, set_slider, show_cell, status_text, step_count, wait_until)
from play_metrics import assert_live, kernel_client, measure_play, record, show_whole_dashboard

ROOT = Path(__file__).resolve().parents[2]
WORKSHOP = "notebooks/04_live_lab.ipynb"
STAGES = ["Forward", "Loss", "Backward", "Update"]


def open_notebook(page, server, path: str, dashboard: bool = True) -> None:
    """Open a notebook in JupyterLab, run all its cells and wait for the dashboard (``dashboard=False``: only
    start the run; wait_idle waits for its end)."""
    workspace = Path(path).stem  # a fresh workspace per notebook: no tabs left from other tests
    page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{path}?token={server.token}&reset")
    wait_until(lambda: page.evaluate("() => !!(window.jupyterapp && window.jupyterapp.shell)"), 60,
               "JupyterLab to start")
    wait_until(lambda: page.evaluate(
        "(path) => { const w = window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.context && w.context.path === path); }", path), 60, f"{path} to open")
    wait_until(lambda: (dismiss_dialogs(page), page.evaluate(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel); }"))[1],
        60, "the kernel to start")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    if dashboard:
        wait_until(lambda: (dismiss_dialogs(page), button(page, "Forward").is_visible())[1], 90, "the dashboard")


def wait_idle(page, server, timeout: float = 60) -> None:
    """Wait until the notebook's kernel has finished every cell."""
    wait_until(lambda: page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'"),
        timeout, "the kernel to be idle")


def assert_no_console_errors(page) -> None:
    ours = page.console_log.ours()
    assert not ours, "errors in the browser console:\n" + "\n".join(ours)


def run_cell(page, containing: str) -> None:
    """Run the notebook's first code cell whose source contains ``containing``."""
    page.evaluate("""(text) => {
        const panel = window.jupyterapp.shell.currentWidget;
        const index = panel.content.widgets.findIndex(cell => cell.model.sharedModel.getSource().includes(text));
        panel.content.activeCellIndex = index;
        return window.jupyterapp.commands.execute('notebook:run-cell');
    }""", containing)


# A `1+1` cell sent to the notebook's kernel: seconds until its answer.
CELL_LATENCY_JS = """async () => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const start = performance.now();
  await kernel.requestExecute({ code: '1+1', store_history: false, silent: true }).done;
  return (performance.now() - start) / 1000;
}"""

SIX_MB = 6 * 1024 * 1024


def dashboard_revisions(page) -> dict:
    """The dashboard's plots' frames. Notebook 04's neuron view stands alone, outside the dashboard:
    it draws a burst's last update once the loop is free, by design, which may be after Pause."""
    return {title: frame for title, frame in revisions(page).items() if not title.startswith("Neurons")}


def all_plots_drawn(page) -> bool:
    """Every plot in sight is drawn (out of sight, a plot waits until it is seen)."""
    drawn = revisions(page)
    return len(drawn) >= 6 and all(drawn.get(title) is not None for title in in_sight(page))


def test_the_workshop_notebook_in_jupyterlab(page, lab_server, output_dir):
    open_notebook(page, lab_server, WORKSHOP)
    wait_idle(page, lab_server)  # the notebook plays 50 steps and pauses by itself
    show_cell(page, 1)  # Run All leaves the last cell in view; JupyterLab drops cells out of view from the page
    wait_until(lambda: "paused" in status_text(page), 30, "the dashboard to show it is paused")
    wait_until(lambda: all_plots_drawn(page), 30, "every plot to be drawn")
    # What it took to show the dashboard: the kernel's messages over the websocket (plotly.js once).
    page_bytes = page.traffic.websocket_bytes
    assert page_bytes <= SIX_MB, f"the page received {page_bytes / 1e6:.1f} MB from the kernel to show the dashboard"
    page.screenshot(path=str(output_dir / "1-opened.png"))

    # One step, stage by stage: the stage indicator moves, and the stage view changes.
    dashboard = page.locator(".widget-vbox", has=button(page, "Forward")).first
    first = STAGES.index(re.search(r"next: (\w+)\(\)", status_text(page)).group(1).capitalize())
    for i in range(first, first + 4):  # Pause stops at a stage boundary, maybe mid-batch
        stage, due = STAGES[i % 4], STAGES[(i + 1) % 4].lower()
        before = dashboard.inner_text()
        assert button(page, stage).is_enabled()
        assert all(not button(page, other).is_enabled() for other in STAGES if other != stage)
        button(page, stage).click()
        wait_until(lambda: f"next: {due}()" in status_text(page), 15, f"{due}() to be due")
        wait_until(lambda: dashboard.inner_text() != before, 10, f"the dashboard to change after {stage}")
    page.screenshot(path=str(output_dir / "2-after-stages.png"))

    # Play at full speed: the plots move at the speed of the eye, and training keeps its core.
    steps_before = step_count(page)
    kernel = notebook_kernel(page, lab_server)
    client = kernel_client(kernel)
    try:
        metrics = measure_play(page, client, kernel)
        metrics["page_mb"] = round(page_bytes / 2**20, 2)
        record(output_dir, "jupyterlab", metrics)
        cell_seconds = sorted(page.evaluate(CELL_LATENCY_JS) for _ in range(3))[1]
        assert step_count(page) > steps_before
        assert_live(metrics)
        record_frames(page, output_dir / "playing")
    finally:
        client.stop_channels()

    # Turn the learning rate while it plays: the change is marked on the plots.
    set_slider(page, "learning rate", "0.05")
    wait_until(lambda: any(re.search(r"lr\s*=\s*0\.05", t) for t in page.evaluate(ANNOTATIONS_JS)), 15,
               "the lr change to be marked on a plot")
    page.screenshot(path=str(output_dir / "3-playing.png"))
    # The dashboard alone: `make screenshot` copies it to docs/ as the README's picture (tests never write there).
    screenshot_whole(page, dashboard, output_dir / "dashboard.png")

    # Pause: the counter stops, and within a second so do the plots (nothing was queued).
    button(page, "Pause").click()
    paused = time.monotonic()
    wait_until(lambda: "paused" in status_text(page), 15, "the dashboard to pause")
    stopped_at = step_count(page)
    time.sleep(max(0.0, paused + 1.0 - time.monotonic()))
    settled = dashboard_revisions(page)
    time.sleep(1.0)
    assert step_count(page) == stopped_at
    assert dashboard_revisions(page) == settled, "the plots still changed more than a second after Pause"
    # Paused, plotly.js draws again: hovering the loss curve reads a value off it.
    assert hover_reading(page, "Loss"), "no value shown when hovering the loss plot while paused"

    # Reset: back to step 0.
    button(page, "Reset").click()
    wait_until(lambda: step_count(page) == 0, 15, "the reset to step 0")

    # Re-running the dashboard's cell while it plays replaces it, cleanly.
    button(page, "Play").click()
    wait_until(lambda: "playing" in status_text(page), 15, "playing again")
    run_cell(page, "tl.Dashboard(")
    wait_until(lambda: "paused" in status_text(page) and all_plots_drawn(page), 30, "the new dashboard")
    time.sleep(1.0)
    assert_no_console_errors(page)

    # Shutting the kernel down leaves no errors behind either.
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.shutdown()")
    time.sleep(2.0)
    assert_no_console_errors(page)
    (output_dir / "lab-metrics.json").write_text(json.dumps({
        "seconds_for_a_1+1_cell_while_playing": round(cell_seconds, 3)}, indent=2))


def figure_element(page, title: str):
    """The live figure with this title."""
    return page.locator(f".trainlab-live-figure[data-title='{title}']").first


def hover_reading(page, title: str) -> str:
    """Hover the middle of a plot's data area and return the hover label plotly.js shows ('' if none)."""
    figure = figure_element(page, title)
    wait_until(lambda: figure.get_attribute("data-renderer") == "plotly", 15, f"plotly.js to draw {title}")
    figure.scroll_into_view_if_needed()
    area = figure.locator(".nsewdrag").first.bounding_box()
    hover = figure.locator(".hoverlayer").first
    for across in (0.5, 0.8):  # sweep down the plot until the pointer is near the curve
        for down in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97):
            page.mouse.move(area["x"] + across * area["width"], area["y"] + down * area["height"], steps=3)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                text = hover.text_content() or ""
                if text.strip():
                    return text
                time.sleep(0.05)
    return ""


def record_frames(page, folder: Path, frames: int = 8, every: float = 0.25) -> None:
    """A short recording of the dashboard playing, as a sequence of screenshots (test-output only)."""
    folder.mkdir(parents=True, exist_ok=True)
    dashboard = page.locator(".widget-vbox", has=button(page, "Forward")).first
    for i in range(frames):
        dashboard.screenshot(path=str(folder / f"frame-{i:02d}.png"))
        time.sleep(every)


def test_the_dashboard_follows_jupyterlabs_dark_theme(page, lab_server, output_dir):
    open_notebook(page, lab_server, WORKSHOP)
    with dark_theme(page):
        wait_idle(page, lab_server)
        show_whole_dashboard(page)
        wait_until(lambda: all_plots_drawn(page), 30, "every plot to be drawn")
        wait_until(lambda: set(page.evaluate(PLOT_BACKGROUNDS_JS)) == {"rgb(17, 17, 17)"}, 15, "dark plots")
        button(page, "Step").click()
        wait_until(lambda: "just ran" in page.locator(".trainlab-stages").first.inner_text(), 15, "a stage that just ran")
        # The stage that just ran reads well: text and background far apart in brightness.
        contrast = page.evaluate(CONTRAST_JS, ".trainlab-just-ran")
        assert contrast >= 4.5, f"the 'just ran' stage has a contrast of {contrast:.1f} (below 4.5: hard to read)"
        dashboard = page.locator(".widget-vbox", has=button(page, "Forward")).first
        screenshot_whole(page, dashboard, output_dir / "dashboard-dark.png")
        assert_no_console_errors(page)


# The background of every plot in sight (plotly.js draws them paused; a plot out of sight waits).
PLOT_BACKGROUNDS_JS = f"""() => {FIGURES}.filter(el => {{
    const r = el.getBoundingClientRect();
    return r.top < window.innerHeight && r.bottom > 0;
}}).map(el => getComputedStyle(el.querySelector('.js-plotly-plot .main-svg') || el).backgroundColor)"""

# The WCAG contrast ratio between an element's text colour and the background it is drawn on.
CONTRAST_JS = """(selector) => {
  const element = document.querySelector(selector);
  const rgb = text => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  let node = element, background = null;
  while (node && !background) {
    const color = rgb(getComputedStyle(node).backgroundColor);
    if (color.length < 4 || color[3] > 0) background = color;
    node = node.parentElement;
  }
  const [a, b] = [luminance(rgb(getComputedStyle(element).color)), luminance(background)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def exploding_notebook(folder: Path) -> str:
    """A notebook with the dashboard on seed 000's linear regression, which a huge lr blows up."""
    code = ("import torch, trainlab as tl\n"
            "torch.manual_seed(0)\n"
            "loop = tl.Loop(torch.nn.Linear(10, 1), (torch.randn(100, 10), torch.randn(100, 1)), 'mse',\n"
            "               lr=0.01, batch_size=100)\n"
            "tl.Dashboard(loop)")
    return one_cell_notebook(folder, "exploding.ipynb", code)


def test_a_huge_learning_rate_pauses_with_the_non_finite_message(page, lab_server, output_dir):
    open_notebook(page, lab_server, exploding_notebook(output_dir))
    wait_idle(page, lab_server)
    set_slider(page, "learning rate", "10")
    wait_until(lambda: "lr=10" in " ".join(page.evaluate(ANNOTATIONS_JS)).replace(" ", ""), 15,
               "the lr change to reach the loop")
    button(page, "Play").click()
    message = page.locator(".widget-html", has_text=re.compile("NonFiniteError"))
    wait_until(lambda: message.count() and message.first.is_visible(), 30, "the non-finite message")
    wait_until(lambda: "paused" in status_text(page), 15, "the runner to pause")
    page.screenshot(path=str(output_dir / "4-non-finite.png"))
    assert button(page, "Play").is_visible() and button(page, "Rewind").is_enabled()
    assert_no_console_errors(page)


def kernel_of(server, kernel_id: str | None = None) -> psutil.Process:
    """The kernel process the server started (the one with this id, when the server runs several)."""
    kernels = [p for p in psutil.Process(server.process.pid).children(recursive=True)
               if "ipykernel" in " ".join(p.cmdline()) and (kernel_id is None or kernel_id in " ".join(p.cmdline()))]
    assert len(kernels) == 1, f"expected one kernel under the server, found {len(kernels)}"
    return kernels[0]


def notebook_kernel(page, server) -> psutil.Process:
    """The kernel of the notebook open in JupyterLab."""
    kernel_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    return kernel_of(server, kernel_id)


def cpu_share(process: psutil.Process, seconds: float = 2.0) -> float:
    """The share of one core the process used over ``seconds``."""
    before = sum(process.cpu_times()[:2])
    time.sleep(seconds)
    return (sum(process.cpu_times()[:2]) - before) / seconds


def test_the_workshop_notebook_as_a_voila_app(page, voila_server, output_dir):
    page.goto(f"{voila_server.url}/voila/render/04_live_lab.ipynb?token={voila_server.token}")
    wait_until(lambda: button(page, "Forward").is_visible(), 120, "the dashboard in Voila")
    wait_until(lambda: "paused" in status_text(page) and step_count(page) >= 1, 60, "the first steps")
    show_whole_dashboard(page)
    wait_until(lambda: all_plots_drawn(page), 30, "every plot to be drawn")
    page_bytes = page.traffic.websocket_bytes
    assert page_bytes <= SIX_MB, f"Voila's page received {page_bytes / 1e6:.1f} MB from the kernel"
    assert page.locator(".jp-InputArea-editor").count() == 0  # an app: no code shown
    before = step_count(page)
    button(page, "Step").click()
    wait_until(lambda: step_count(page) == before + 1, 15, "one more step")
    # Every figure takes the kernel's updates (they all start at once in Voila), the neuron view's too.
    neurons = page.locator(".trainlab-live-figure[data-title^='Neurons']").first
    neurons.scroll_into_view_if_needed()
    wait_until(lambda: neurons.get_attribute("data-frame") is not None, 30, "the neuron view to be drawn")
    show_whole_dashboard(page)
    drawn = {title: frame for title, frame in revisions(page).items() if title in in_sight(page)}
    assert len(drawn) >= 6, drawn
    for _ in range(3):
        steps = step_count(page)
        button(page, "Epoch").click()
        wait_until(lambda: step_count(page) > steps, 30, "an epoch")
    wait_until(lambda: all(revisions(page)[title] != frame for title, frame in drawn.items()), 15,
               "every plot to redraw")
    page.screenshot(path=str(output_dir / "5-voila.png"))
    assert_no_console_errors(page)

    # Play at full speed: measured as in JupyterLab. Then close the tab: with nobody watching, the
    # kernel stops training by itself.
    kernel = kernel_of(voila_server)
    client = kernel_client(kernel)
    try:
        metrics = measure_play(page, client, kernel)
    finally:
        client.stop_channels()
    metrics["page_mb"] = round(page_bytes / 2**20, 2)
    record(output_dir, "voila", metrics)
    assert_live(metrics)
    wait_until(lambda: "playing" in status_text(page), 15, "playing")
    assert cpu_share(kernel) > 0.3, "the kernel should be busy training while it plays"
    neurons.scroll_into_view_if_needed()
    shown = neurons.get_attribute("data-frame")
    wait_until(lambda: neurons.get_attribute("data-frame") != shown, 15, "the neuron view to redraw while playing")
    page.close()
    wait_until(lambda: cpu_share(kernel) < 0.1, 40, "the kernel to stop training after the tab closed", every=0)
    assert kernel.is_running()  # it paused; nobody shut it down
