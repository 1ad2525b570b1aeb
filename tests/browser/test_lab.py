"""A workshop participant's session, in real JupyterLab and Voila, in headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat

from lab_page import (ANNOTATIONS_JS, boundary_sum, button, dismiss_dialogs, loss_points, screenshot_whole, set_slider,
                      status_text, step_count, wait_until)

ROOT = Path(__file__).resolve().parents[2]
WORKSHOP = "notebooks/04_live_lab.ipynb"
STAGES = ["Forward", "Loss", "Backward", "Update"]


def open_notebook(page, server, path: str) -> None:
    """Open a notebook in JupyterLab, run all its cells and wait for the dashboard."""
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
    wait_until(lambda: (dismiss_dialogs(page), button(page, "Forward").is_visible())[1], 90, "the dashboard")


def wait_idle(page, server, timeout: float = 60) -> None:
    """Wait until the notebook's kernel has finished every cell."""
    wait_until(lambda: page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'"),
        timeout, "the kernel to be idle")


def assert_no_console_errors(page) -> None:
    ours = page.console_log.ours()
    assert not ours, "errors in the browser console:\n" + "\n".join(ours)


def test_the_workshop_notebook_in_jupyterlab(page, lab_server, output_dir):
    open_notebook(page, lab_server, WORKSHOP)
    wait_idle(page, lab_server)  # the notebook plays 50 steps and pauses by itself
    wait_until(lambda: "paused" in status_text(page), 30, "the dashboard to show it is paused")
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

    # Play: the counter rises and the loss plot grows, live. Time the first update, count refreshes.
    steps_before, points_before = step_count(page), loss_points(page)
    clicked = time.monotonic()
    button(page, "Play").click()
    wait_until(lambda: loss_points(page) > points_before, 15, "the loss plot to grow", every=0.02)
    first_update = time.monotonic() - clicked
    frames, seen, start = 0, loss_points(page), time.monotonic()
    while time.monotonic() - start < 3:
        now = loss_points(page)
        frames += now != seen
        seen = now
        time.sleep(0.02)
    refresh_rate = frames / (time.monotonic() - start)
    assert step_count(page) > steps_before
    assert refresh_rate > 0.5, f"the plots refreshed only {refresh_rate:.2f} times a second"
    (output_dir / "play-metrics.json").write_text(json.dumps(
        {"seconds_from_play_to_first_plot_update": round(first_update, 3),
         "plot_refreshes_per_second": round(refresh_rate, 2)}, indent=2))

    # Turn the learning rate while it plays: the change is marked on the plots.
    set_slider(page, "learning rate", "0.05")
    wait_until(lambda: any(re.search(r"lr\s*=\s*0\.05", t) for t in page.evaluate(ANNOTATIONS_JS)), 15,
               "the lr change to be marked on a plot")
    page.screenshot(path=str(output_dir / "3-playing.png"))
    # The dashboard alone: `make screenshot` copies it to docs/ as the README's picture (tests never write there).
    screenshot_whole(page, dashboard, output_dir / "dashboard.png")

    # Pause: the counter stops.
    button(page, "Pause").click()
    wait_until(lambda: "paused" in status_text(page), 15, "the dashboard to pause")
    stopped_at = step_count(page)
    time.sleep(1.0)
    assert step_count(page) == stopped_at

    # Reset: back to step 0.
    button(page, "Reset").click()
    wait_until(lambda: step_count(page) == 0, 15, "the reset to step 0")
    assert_no_console_errors(page)


def exploding_notebook(folder: Path) -> str:
    """A notebook with the dashboard on seed 000's linear regression, which a huge lr blows up."""
    folder.mkdir(parents=True, exist_ok=True)
    code = ("import torch, trainlab as tl\n"
            "torch.manual_seed(0)\n"
            "loop = tl.Loop(torch.nn.Linear(10, 1), (torch.randn(100, 10), torch.randn(100, 1)), 'mse',\n"
            "               lr=0.01, batch_size=100)\n"
            "tl.Dashboard(loop)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "exploding.ipynb"
    nbformat.write(notebook, path)
    return str(path.relative_to(ROOT))


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


def test_the_workshop_notebook_as_a_voila_app(page, voila_server, output_dir):
    page.goto(f"{voila_server.url}/voila/render/04_live_lab.ipynb?token={voila_server.token}")
    wait_until(lambda: button(page, "Forward").is_visible(), 120, "the dashboard in Voila")
    wait_until(lambda: "paused" in status_text(page) and step_count(page) >= 1, 60, "the first steps")
    assert page.locator(".jp-InputArea-editor").count() == 0  # an app: no code shown
    before = step_count(page)
    button(page, "Step").click()
    wait_until(lambda: step_count(page) == before + 1, 15, "one more step")
    # Every figure still takes the kernel's updates (anywidget drops them for good from a
    # figure that started late; the decision boundary, made last, used to freeze).
    boundary = wait_until(lambda: boundary_sum(page), 30, "the decision boundary")
    for _ in range(3):
        steps = step_count(page)
        button(page, "Epoch").click()
        wait_until(lambda: step_count(page) > steps, 30, "an epoch")
    wait_until(lambda: boundary_sum(page) != boundary, 15, "the decision boundary to redraw")
    page.screenshot(path=str(output_dir / "5-voila.png"))
    assert_no_console_errors(page)
