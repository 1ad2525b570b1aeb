"""Notebook 06 in real JupyterLab: a learner runs it as it comes, writes the step, and the check turns green;
the three patients' dashboards are drawn; the browser console stays free of errors."""

from __future__ import annotations

from pathlib import Path

import nbformat

from lab_page import dismiss_dialogs, wait_until
from test_lab import assert_no_console_errors, open_notebook, run_cell, wait_idle

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/06_write_the_loop_yourself.ipynb"
KEY = ROOT / "notebooks" / "solutions" / "06_write_the_loop_yourself.ipynb"

SET_SOURCE_JS = """(args) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cell = panel.content.widgets.find(c => c.model.sharedModel.getSource().startsWith(args.start));
    cell.model.sharedModel.setSource(args.source);
}"""


def answer(start: str) -> str:
    """The answer key's source of the exercise cell that starts with ``start``."""
    return next(c.source for c in nbformat.read(KEY, as_version=4).cells if c.source.startswith(start))


def check_panel(page, text: str):
    return page.locator(".trainlab-check", has_text=text).first


def test_notebook_06_runs_in_jupyterlab_and_the_check_turns_green(page, lab_server, output_dir):
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_notebook(page, lab_server, NOTEBOOK, dashboard=False)
    wait_idle(page, lab_server, timeout=180)

    # As it comes: the open exercise gets a report, the stages with the first difference highlighted.
    unfinished = check_panel(page, "the first difference is at")
    wait_until(lambda: unfinished.count(), 60, "the check's report")
    unfinished.scroll_into_view_if_needed()
    text = unfinished.text_content()
    assert "✗ forward" in text and "model(inputs)" in text
    unfinished.screenshot(path=str(output_dir / "check-unfinished.png"))
    # The three patients' dashboards, each with its plots drawn by plotly.js.
    plays = page.locator("button.widget-button", has_text="Play")
    wait_until(lambda: plays.count() == 3, 30, "three dashboards")
    for i in range(3):
        plays.nth(i).scroll_into_view_if_needed()
        wait_until(lambda: plays.nth(i).is_visible(), 30, f"dashboard {i + 1}")
    page.screenshot(path=str(output_dir / "clinic-patient-c.png"))
    assert "The planted fault was" in page.locator(".jp-OutputArea-output", has_text="Patient A:").first.text_content()

    # The learner writes the step, runs it and the check again: a green tick, and the verdict.
    page.evaluate(SET_SOURCE_JS, {"start": "def my_step", "source": answer("def my_step")})
    for cell in ("def my_step", "report = tl.check_step", "your loop is correct"):
        run_cell(page, cell)
        wait_idle(page, lab_server)
    dismiss_dialogs(page)
    green = check_panel(page, "your step is correct")
    wait_until(lambda: green.count() and "✓" in green.text_content(), 30, "the green tick")
    green.scroll_into_view_if_needed()
    green.screenshot(path=str(output_dir / "check-correct.png"))
    verdict = page.locator(".jp-OutputArea-output", has_text="your loop is correct").first
    assert verdict.text_content().strip() == "your loop is correct"
    assert_no_console_errors(page)
