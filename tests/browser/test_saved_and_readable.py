"""What a newcomer meets after the first run, in real JupyterLab and Voila: a notebook reopened after it was
saved, plots that read well in the dark theme (legends, log axes, the raw loss, a log scale, tooltips), and
an app whose console is clean and whose abandoned kernels are shut down."""

from __future__ import annotations

import json
import re
import runpy
import time
from pathlib import Path

from traitlets.config import Config

from lab_page import (button, dark_theme, dismiss_dialogs, one_cell_notebook, screenshot_whole, show_cell, status_text,
                      step_count, wait_until)
from test_lab import WORKSHOP, all_plots_drawn, assert_no_console_errors, open_notebook, wait_idle

ROOT = Path(__file__).resolve().parents[2]
# The note the project's server configuration saves where a widget was.
WIDGET_NOTE = runpy.run_path(str(ROOT / "jupyter" / "jupyter_server_config.py"),
                             init_globals={"get_config": Config})["WIDGET_NOTE"]

DASHBOARD_CODE = ("import trainlab as tl\n"
                  "X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)\n"
                  "loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), 'cross_entropy', lr=0.1)\n"
                  "tl.Dashboard(loop)")

OUTPUT_TEXT_JS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output'), o => o.innerText).join('\\n')"""


def test_a_notebook_reopened_after_saving_shows_a_note_where_its_dashboard_was(page, lab_server, output_dir):
    path = one_cell_notebook(output_dir / "reopened", "saved.ipynb", DASHBOARD_CODE)
    open_notebook(page, lab_server, path)
    wait_idle(page, lab_server)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(lambda: WIDGET_NOTE in (ROOT / path).read_text(), 30, "the save to write the note")
    saved = json.loads((ROOT / path).read_text())["cells"][0]["outputs"]
    assert ["".join(output["data"]["text/plain"]) for output in saved] == [WIDGET_NOTE], saved
    assert [list(output["data"]) for output in saved] == [["text/plain"]], saved

    # Later: the kernel is gone (JupyterLab closed, the machine restarted), and the notebook is opened again.
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    page.goto(f"{lab_server.url}/lab/workspaces/reopened/tree/{path}?token={lab_server.token}&reset")
    wait_until(lambda: (dismiss_dialogs(page), page.evaluate(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel); }"))[1],
        90, "the notebook to open with a new kernel")
    wait_idle(page, lab_server)
    time.sleep(3)  # the widget manager restores from the new kernel: an old widget output fails only then
    shown = page.evaluate(OUTPUT_TEXT_JS)
    page.screenshot(path=str(output_dir / "reopened-after-save.png"))
    assert "Error displaying widget" not in shown and WIDGET_NOTE in shown, shown
    assert not [e for e in page.console_log.errors if "model not found" in e], page.console_log.errors
    assert_no_console_errors(page)


# Everything the dark-theme checks read from the page, in one call.
READABILITY_JS = """() => {
  const plots = Array.from(document.querySelectorAll('.trainlab-dashboard .js-plotly-plot'));
  const title = gd => ((gd.layout || {}).title || {}).text || '';
  const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const loss = plots.find(gd => title(gd) === 'Loss');
  if (!loss || !loss._fullData) return null;  // plotly.js has not drawn it yet (the light renderer may have)
  const raw = loss._fullData.find(t => t.name === 'loss per batch');
  const legendsOverData = [], crowdedLogAxes = [];
  for (const gd of plots) {
    const legend = gd.querySelector('.legend'), area = gd.querySelector('.nsewdrag');
    if (legend && area && overlap(legend.getBoundingClientRect(), area.getBoundingClientRect())) legendsOverData.push(title(gd));
    if (gd._fullLayout.yaxis.type !== 'log') continue;
    const labels = Array.from(gd.querySelectorAll('.ytick text'), t => t.getBoundingClientRect()).filter(r => r.height > 0);
    if (labels.some((a, i) => labels.slice(i + 1).some(b => overlap(a, b)))) crowdedLogAxes.push(title(gd));
  }
  const nullTips = Array.from(document.querySelectorAll('.trainlab-dashboard .widget-label'))
    .filter(l => l.innerText.trim() && l.title === 'null').map(l => l.innerText);  // empty labels show nothing
  return {raw: {color: raw.line.color, opacity: raw.opacity, background: loss._fullLayout.plot_bgcolor},
          legendsOverData, crowdedLogAxes, nullTips};
}"""


def contrast(color: str, opacity: float, background: str) -> float:
    """The WCAG contrast ratio of a line of ``color`` (rgb() or #hex) at ``opacity`` on ``background``."""
    def rgb(text: str) -> list[float]:
        if text.startswith("#"):
            return [int(text[i:i + 2], 16) for i in (1, 3, 5)]
        return [float(v) for v in re.findall(r"[\d.]+", text)[:3]]

    def luminance(c: list[float]) -> float:
        c = [v / 255 for v in c]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    back = rgb(background)
    seen = luminance([opacity * a + (1 - opacity) * b for a, b in zip(rgb(color), back)])
    return (max(seen, luminance(back)) + 0.05) / (min(seen, luminance(back)) + 0.05)


def test_the_plots_read_well_in_the_dark_theme_and_the_loss_has_a_log_scale(page, lab_server, output_dir):
    open_notebook(page, lab_server, WORKSHOP)
    with dark_theme(page):
        wait_idle(page, lab_server)
        # Figures out of sight draw nothing: a window tall enough for the whole dashboard, scrolled to it.
        page.set_viewport_size({"width": 1400, "height": 2600})
        show_cell(page, 1)
        wait_until(lambda: all_plots_drawn(page), 30, "every plot to be drawn")
        wait_until(lambda: ((page.evaluate(READABILITY_JS) or {}).get("raw", {}).get("background", "")
                            .replace(" ", "") == "rgb(17,17,17)"), 15, "dark plots drawn by plotly.js")
        dashboard = page.locator(".trainlab-dashboard").first
        screenshot_whole(page, dashboard, output_dir / "readable-plots-dark.png")
        found = page.evaluate(READABILITY_JS)
        raw = found["raw"]
        assert contrast(raw["color"], raw["opacity"], raw["background"]) >= 3, f"loss per batch is faint: {raw}"
        assert found["legendsOverData"] == [], f"legends over the data: {found['legendsOverData']}"
        assert found["crowdedLogAxes"] == [], f"log axes whose labels overlap: {found['crowdedLogAxes']}"
        assert found["nullTips"] == [], f"labels whose tooltip reads 'null': {found['nullTips']}"

        page.get_by_role("checkbox", name="log scale").first.check()
        wait_until(lambda: page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(gd =>
            ((gd.layout || {}).title || {}).text === 'Loss' && gd._fullLayout.yaxis.type === 'log')"""), 15,
            "the loss plot on a log axis")
        screenshot_whole(page, dashboard, output_dir / "loss-log-scale.png")
        assert_no_console_errors(page)


def test_the_app_loads_with_a_clean_console_and_culls_abandoned_kernels(page, voila_server, output_dir):
    page.goto(f"{voila_server.url}/voila/render/04_live_lab.ipynb?token={voila_server.token}")
    wait_until(lambda: button(page, "Forward").is_visible(), 120, "the dashboard in Voila")
    wait_until(lambda: "paused" in status_text(page) and step_count(page) >= 1, 60, "the first steps")
    time.sleep(3)  # late messages (a font, a figure drawing) have time to arrive
    page.screenshot(path=str(output_dir / "voila-clean-console.png"))
    # Warnings included, whatever their source: nothing fetched from a CDN (an offline room), no version noise.
    assert page.console_log.errors == [], "the app's console:\n" + "\n".join(page.console_log.errors)
    assert "Culling kernels with idle durations > 600 seconds" in voila_server.log_path.read_text()
