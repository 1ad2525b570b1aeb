"""Issue 29 in real JupyterLab, on the digits CNN: the confusion matrix, the mistakes as digit pictures and the
weights, gradients and activations over time, drawn while playing; a click on a confusion cell (paused, with
plotly.js; playing, on the light renderer's canvas) narrows the mistakes to that cell; no console errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lab_page import FIGURES, button, one_cell_notebook, screenshot_whole, status_text, wait_until
from test_lab import assert_no_console_errors, open_notebook, wait_idle

PLOTS = ("loss", "confusion", "mistakes", "weight_distributions", "grad_distributions", "activations", "summary")

# Each live figure as the page holds it, by title prefix: its renderer, its frame on screen, the length
# of its traces' y, and for a heatmap its z's shape and sum (what changes as the model learns).
_FIGURES_JS = f"""() => Object.fromEntries({FIGURES}.map(el => {{
    const figure = el.trainlabFigure;
    const heatmap = figure.data.find(t => t && t.type === 'heatmap' && t.visible !== false);
    let sum = null, shape = null;
    if (heatmap && heatmap.z && heatmap.z.length) {{
        sum = 0;
        for (const row of heatmap.z) for (const v of row) if (Number.isFinite(v)) sum += v;
        shape = [heatmap.z.length, heatmap.z[0].length];
    }}
    return [el.dataset.title || '', {{renderer: el.dataset.renderer || null, frame: Number(el.dataset.frame || 0),
        lengths: figure.data.map(t => t && t.y ? t.y.length : 0), sum, shape,
        texts: heatmap && heatmap.text ? heatmap.text.map(row => Array.from(row, Number)) : null,
        notes: ((figure.layout || {{}}).annotations || []).map(a => String(a.text))}}];
}}))"""

# The rectangle of a figure's plotting area on screen (plotly's drag layer, or the light renderer's overlay).
_PLOT_AREA_JS = f"""(prefix) => {{
    const el = {FIGURES}.find(el => (el.dataset.title || '').startsWith(prefix));
    const area = el.querySelector(el.dataset.renderer === 'light' ? '.u-over' : '.nsewdrag');
    const r = area.getBoundingClientRect();
    return {{left: r.left, top: r.top, width: r.width, height: r.height}};
}}"""


def figures(page) -> dict:
    return page.evaluate(_FIGURES_JS)


def figure(page, prefix: str) -> dict | None:
    return next((value for title, value in figures(page).items() if title.startswith(prefix)), None)


def digits_notebook(folder: Path) -> str:
    code = ("import trainlab as tl\n"
            "X, y = tl.datasets.digits(seed=0)\n"
            "loop = tl.Loop(tl.models.cnn(seed=0), (X, y), 'cross_entropy', lr=0.1, batch_size=32,\n"
            "               validation_split=0.2, seed=0)\n"
            "loop.fit(epochs=1)\n"
            f"dash = tl.Dashboard(loop, plots={PLOTS!r}, speed=100)\n"
            "dash")
    return one_cell_notebook(folder, "errors_and_inside.ipynb", code)


def most_common_mistake(counts: list[list[float]], but: tuple[int, int] | None = None) -> tuple[int, int]:
    """The off-diagonal cell (true, predicted) with the most samples (other than ``but``)."""
    cells = [(n, t, p) for t, row in enumerate(counts) for p, n in enumerate(row) if t != p and (t, p) != but]
    _, t, p = max(cells)
    return t, p


def click_cell(page, t: int, p: int, classes: int) -> None:
    """Click the confusion matrix's cell (true t, predicted p): row t counted from the bottom, column p."""
    area = page.evaluate(_PLOT_AREA_JS, "Confusion")
    x = area["left"] + (p + 0.5) / classes * area["width"]
    y = area["top"] + (1 - (t + 0.5) / classes) * area["height"]
    page.mouse.click(x, y)


def test_the_errors_and_the_inside_while_playing_on_the_digits(page, lab_server, output_dir):
    page.set_viewport_size({"width": 1500, "height": 2600})  # every figure in view: out of sight, none is drawn
    open_notebook(page, lab_server, digits_notebook(output_dir))
    wait_idle(page, lab_server)
    wait_until(lambda: (figure(page, "Confusion") or {}).get("texts"), 60, "the confusion matrix")
    wait_until(lambda: (figure(page, "The 9 worst") or {}).get("shape"), 60, "the gallery of mistakes")
    gallery = figure(page, "The 9 worst")
    assert gallery["shape"] == [3 * (8 + 3), 3 * 9 - 1]  # nine 8x8 digits, in three rows under their labels
    assert len(gallery["notes"]) == 9 and all("→" in note for note in gallery["notes"])
    before = figures(page)

    button(page, "Play").click()
    wait_until(lambda: figure(page, "Confusion")["renderer"] == "light", 30, "the light renderer while playing")
    time.sleep(5)
    playing = figures(page)
    changed = lambda prefix, key: next(v for t, v in playing.items() if t.startswith(prefix))[key] != \
        next(v for t, v in before.items() if t.startswith(prefix))[key]  # noqa: E731
    assert changed("Confusion", "sum") or changed("Confusion", "texts"), "the confusion matrix did not change"
    assert changed("Weights over time", "lengths") and changed("Gradients over time", "lengths")
    assert changed("Activations over time", "lengths")
    screenshot_whole(page, page.locator(".widget-vbox", has=page.locator(".trainlab-live-figure")).first,
                     output_dir / "errors-and-inside-playing.png")

    # Playing: a click on the light renderer's canvas picks a cell; the player draws the gallery in its turn.
    counts = figure(page, "Confusion")["texts"]
    first = most_common_mistake(counts)
    click_cell(page, *first, len(counts))
    wait_until(lambda: figure(page, f"true {first[0]}, predicted {first[1]}"), 30,
               f"the gallery of cell {first} while playing")

    button(page, "Pause").click()
    wait_until(lambda: "paused" in status_text(page), 30, "the dashboard to pause")
    wait_until(lambda: figure(page, "Confusion")["renderer"] == "plotly", 30, "plotly.js when paused")
    counts = figure(page, "Confusion")["texts"]
    second = most_common_mistake(counts, but=first)
    click_cell(page, *second, len(counts))  # plotly.js's plotly_click
    title = wait_until(lambda: next((t for t in figures(page) if t.startswith(f"true {second[0]}, predicted "
                                                                                f"{second[1]}")), None),
                       30, f"the gallery of cell {second} when paused")
    shown = figure(page, title)
    assert all(note.startswith(f"{second[0]} → {second[1]} ·") for note in shown["notes"]), shown["notes"]
    assert len(shown["notes"]) == min(9, int(counts[second[0]][second[1]]))
    screenshot_whole(page, page.locator(".widget-vbox", has=page.locator(".trainlab-live-figure")).first,
                     output_dir / "errors-and-inside-picked.png")
    click_cell(page, *second, len(counts))  # again: let go
    wait_until(lambda: figure(page, "The 9 worst"), 30, "the whole gallery again")

    # The stage view shows the batch's digits as pictures.
    if "next: forward()" not in status_text(page):
        button(page, "Step").click()
        wait_until(lambda: "next: forward()" in status_text(page), 15, "forward() to be due")
    button(page, "Forward").click()
    stage = page.locator(".widget-html", has_text="Forward: the outputs").first
    wait_until(lambda: stage.locator("img").count() == 5, 15, "five digits in the stage view")
    assert all(stage.locator("img").nth(i).evaluate("img => img.complete && img.naturalWidth === 8")
               for i in range(5))
    stage.screenshot(path=str(output_dir / "errors-and-inside-stage-view.png"))
    assert_no_console_errors(page)
    (output_dir / "errors-and-inside.json").write_text(json.dumps(
        {"picked_while_playing": first, "picked_paused": second, "status": status_text(page)}, indent=2))


def test_on_a_plane_the_worst_points_are_ringed_in_jupyterlab(page, lab_server, output_dir):
    code = ("import trainlab as tl\n"
            "X, y = tl.datasets.spiral(n=300, classes=3, noise=0.1, seed=0)\n"
            "loop = tl.Loop(tl.models.mlp(2, [32, 32], 3, activation='tanh', seed=0), (X, y), 'cross_entropy',\n"
            "               lr=0.3, batch_size=16, validation_split=0.3, seed=0)\n"
            "loop.fit(epochs=3)\n"
            "dash = tl.Dashboard(loop, plots=('loss', 'confusion', 'mistakes'), speed=100)\n"
            "dash")
    page.set_viewport_size({"width": 1500, "height": 1800})  # every figure in view: out of sight, none is drawn
    open_notebook(page, lab_server, one_cell_notebook(output_dir, "ringed.ipynb", code))
    wait_idle(page, lab_server)
    rings = wait_until(lambda: page.evaluate(f"""() => {{
        const el = {FIGURES}.find(el => (el.dataset.title || '').startsWith('The 9 worst'));
        const rings = el && el.trainlabFigure.data[2];
        return rings && rings.x && rings.x.length;
    }}"""), 60, "the worst points ringed on the boundary")
    assert rings == 9
    button(page, "Play").click()
    time.sleep(3)
    assert figure(page, "The 9 worst")["renderer"] == "light"
    screenshot_whole(page, page.locator(".widget-vbox", has=page.locator(".trainlab-live-figure")).first,
                     output_dir / "errors-on-a-plane.png")
    button(page, "Pause").click()
    wait_until(lambda: "paused" in status_text(page), 30, "the dashboard to pause")
    assert_no_console_errors(page)
