"""The room around the lesson, in real JupyterLab and Voila: a projector at 150% zoom, a phone,
keyboard shortcuts, and a kernel restarted under a playing dashboard."""

from __future__ import annotations

import urllib.request

import pytest
from conftest import ConsoleLog

from lab_page import button, screenshot_whole, show_cell, status_text, step_count, wait_until
from test_lab import WORKSHOP, assert_no_console_errors, open_notebook, wait_idle

MIN_TRACK_PX = 100  # a slider track narrower than this is a bare handle that cannot be dragged

# Everything that makes a control unusable on a small screen, measured in the page.
_LAYOUT_PROBLEMS_JS = """(minTrack) => {
  const dash = document.querySelector('.trainlab-dashboard');
  const problems = [];
  const right = Math.min(window.innerWidth, document.documentElement.clientWidth);
  if (dash.scrollWidth > dash.clientWidth + 1) problems.push(`the dashboard scrolls sideways: ${dash.scrollWidth} > ${dash.clientWidth}`);
  for (const b of dash.querySelectorAll('button.widget-button')) {
    const r = b.getBoundingClientRect();
    if (b.scrollWidth > b.clientWidth + 1) problems.push(`button "${b.innerText.trim()}" is clipped`);
    if (r.width < 10 || r.right > right + 1) problems.push(`button "${b.innerText.trim()}" is off screen`);
  }
  for (const s of dash.querySelectorAll('.widget-slider')) {
    const track = s.querySelector('.slider-container') || s.querySelector('.slider');
    const width = track ? track.getBoundingClientRect().width : 0;
    if (width < minTrack) problems.push(`slider "${s.innerText.trim()}" has a ${width}px track`);
    if (s.getBoundingClientRect().right > right + 1) problems.push(`slider "${s.innerText.trim()}" is off screen`);
  }
  for (const d of dash.querySelectorAll('.widget-dropdown')) {
    if (d.getBoundingClientRect().right > right + 1) problems.push(`dropdown "${d.innerText.trim()}" is off screen`);
  }
  for (const cell of dash.querySelectorAll('.trainlab-stages table:first-of-type td')) {
    if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`stage column "${cell.innerText.slice(0, 20)}" runs into the next`);
  }
  return problems;
}"""


# Every dashboard plot's right edge (its legend, last tick, toolbar) in the viewport, or reached by scrolling the
# boxes that hold it as far right as they go (as a thumb would); then the point just inside that edge
# must show the plot itself, not whatever clipped it.
_HIDDEN_PLOT_EDGES_JS = """async () => {
  const problems = [];
  const right = document.documentElement.clientWidth;
  for (const gd of document.querySelectorAll('.trainlab-dashboard .js-plotly-plot')) {
    gd.scrollIntoView({block: 'center'});
    // A figure out of sight draws nothing: in sight now, give it a moment to draw.
    for (let waited = 0; !gd.querySelector('svg.main-svg') && waited < 10000; waited += 100) {
      await new Promise(resolve => setTimeout(resolve, 100));
    }
    const title = ((gd.layout || {}).title || {}).text || 'a plot';
    if (!gd.querySelector('svg.main-svg')) { problems.push(`${title}: never drawn`); continue; }
    for (let box = gd.parentElement; box; box = box.parentElement) {
      // Only what a person can scroll: a box that hides its overflow scrolls from code alone.
      if (['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box.scrollLeft = box.scrollWidth;
    }
    const edge = gd.querySelector('svg.main-svg').getBoundingClientRect();
    const seen = document.elementFromPoint(edge.right - 3, edge.top + edge.height / 2);
    if (edge.right > right + 1) problems.push(`${title}: its right edge stays at ${Math.round(edge.right)}px, past the screen's ${right}px`);
    else if (!seen || !gd.contains(seen)) problems.push(`${title}: its right edge is hidden`);
  }
  return problems;
}"""


def hidden_plot_edges(page) -> list[str]:
    """The dashboard's plots whose right edge cannot be brought on screen (empty: all can be read to the edge)."""
    return page.evaluate(_HIDDEN_PLOT_EDGES_JS)


def layout_problems(page) -> list[str]:
    """What is clipped, too narrow or off screen in the dashboard (empty: every control is usable)."""
    return page.evaluate(_LAYOUT_PROBLEMS_JS, MIN_TRACK_PX)


def sized_page(browser, output_dir, request, **context_options):
    """A fresh page of the given size; on failure, a screenshot and the console log in test-output/browser."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.console_log = ConsoleLog(page)
    yield page
    if getattr(request.node, "failed", False):
        name = request.node.name
        page.screenshot(path=str(output_dir / f"FAILED-{name}.png"), full_page=True)
        (output_dir / f"FAILED-{name}.console.txt").write_text("\n".join(page.console_log.messages))
    context.close()


@pytest.fixture
def projector(browser, output_dir, request):
    """A 1280x720 projector at 150% zoom: 853x480 CSS pixels, 1.5 device pixels each."""
    yield from sized_page(browser, output_dir, request, viewport={"width": 853, "height": 480},
                          device_scale_factor=1.5)


@pytest.fixture
def phone(browser, output_dir, request):
    """A phone: 390 CSS pixels wide."""
    yield from sized_page(browser, output_dir, request, viewport={"width": 390, "height": 844},
                          device_scale_factor=3, is_mobile=True, has_touch=True)


def restart_kernel(page, server) -> None:
    """Restart the notebook's kernel through the server's REST API, as Kernel > Restart Kernel does."""
    kernel = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    request = urllib.request.Request(f"{server.url}/api/kernels/{kernel}/restart", data=b"{}", method="POST",
                                     headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200, response.read()


def test_at_a_projector_every_control_is_usable_the_keys_work_and_a_restart_is_shown(projector, lab_server,
                                                                                     output_dir):
    page = projector
    open_notebook(page, lab_server, WORKSHOP)
    wait_idle(page, lab_server)
    show_cell(page, 1)  # Run All leaves the last cell in view; JupyterLab drops cells out of view from the page
    wait_until(lambda: "paused" in status_text(page), 30, "the notebook's own pause")
    assert "next: forward()" in status_text(page)  # the notebook pauses between batches
    page.screenshot(path=str(output_dir / "projector-1280x720@150.png"))
    screenshot_whole(page, page.locator(".trainlab-dashboard").first, output_dir / "projector-dashboard.png")
    assert not layout_problems(page), layout_problems(page)

    # Keys, once the dashboard has focus: S steps, P plays, P pauses.
    page.locator(".trainlab-stages").first.click()
    before = step_count(page)
    page.keyboard.press("s")
    wait_until(lambda: step_count(page) == before + 1, 15, "the S key to run one step")
    page.keyboard.press("p")
    wait_until(lambda: "playing" in status_text(page), 15, "the P key to play")
    page.keyboard.press("p")
    wait_until(lambda: "paused" in status_text(page), 15, "the P key to pause")
    assert_no_console_errors(page)

    # A restart while playing: the page says the kernel is gone and what to do.
    button(page, "Play").click()
    wait_until(lambda: "playing" in status_text(page), 15, "playing")
    banner = page.locator(".trainlab-kernel-gone")
    assert not banner.is_visible()
    restart_kernel(page, lab_server)
    wait_until(lambda: banner.is_visible(), 40, "the kernel-gone banner")
    assert "Run All" in banner.inner_text() and "not responding" in banner.inner_text()
    page.screenshot(path=str(output_dir / "kernel-restarted.png"))


def test_on_a_phone_the_app_wraps_and_every_control_is_usable(phone, voila_server, output_dir):
    page = phone
    page.goto(f"{voila_server.url}/voila/render/04_live_lab.ipynb?token={voila_server.token}", timeout=120_000)
    wait_until(lambda: button(page, "Forward").is_visible(), 120, "the dashboard in Voila")
    wait_until(lambda: "paused" in status_text(page) and step_count(page) >= 1, 60, "the first steps")
    page.screenshot(path=str(output_dir / "phone-390.png"))
    screenshot_whole(page, page.locator(".trainlab-dashboard").first, output_dir / "phone-390-dashboard.png")
    assert not layout_problems(page), layout_problems(page)
    hidden = hidden_plot_edges(page)  # scrolls each plot's box to its right end
    page.screenshot(path=str(output_dir / "phone-390-plot-scrolled.png"))
    assert not hidden, hidden
    assert_no_console_errors(page)
