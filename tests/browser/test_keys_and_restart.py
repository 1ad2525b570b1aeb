"""Keys after any click, and a restarted kernel said at once, in real JupyterLab."""

from __future__ import annotations

import threading
import time
import urllib.request

from lab_page import button, show_cell, status_text, step_count, wait_until
from test_lab import WORKSHOP, assert_no_console_errors, open_notebook, wait_idle


def restart_in_background(server, kernel: str) -> threading.Thread:
    """Ask the server to restart ``kernel`` (as Kernel > Restart Kernel does), from another thread."""
    def restart() -> None:
        request = urllib.request.Request(f"{server.url}/api/kernels/{kernel}/restart", data=b"{}", method="POST",
                                         headers={"Authorization": f"token {server.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
    thread = threading.Thread(target=restart)
    thread.start()
    return thread


def test_the_keys_work_after_any_button_and_a_restart_is_shown_within_3_s(page, lab_server, output_dir):
    open_notebook(page, lab_server, WORKSHOP)
    wait_idle(page, lab_server)
    show_cell(page, 1)  # Run All leaves the last cell in view; JupyterLab drops cells out of view from the page
    wait_until(lambda: "paused" in status_text(page) and "next: forward()" in status_text(page), 30, "the pause")
    page.evaluate("() => document.querySelector('.trainlab-dashboard').scrollIntoView()")

    # Forward disables itself once it ran, while it has the focus: the keys must still reach the dashboard.
    button(page, "Forward").click()
    wait_until(lambda: "next: loss()" in status_text(page), 15, "loss() to be due")
    before = step_count(page)
    page.keyboard.press("s")  # the rest of the batch
    wait_until(lambda: step_count(page) == before + 1, 15, "the S key to finish the step")
    # Play disables every stage button; the Play button then says Pause: P pauses, P plays again.
    button(page, "Play").click()
    wait_until(lambda: "playing" in status_text(page), 15, "playing")
    page.keyboard.press("p")
    wait_until(lambda: "paused" in status_text(page), 15, "the P key to pause")
    page.keyboard.press("p")
    wait_until(lambda: "playing" in status_text(page), 15, "the P key to play again")

    # A plot scrolled out of sight is neither drawn nor sent anything; back in sight, it moves again.
    loss = page.locator(".trainlab-live-figure[data-title='Loss']").first
    below = page.locator(".trainlab-live-figure[data-title^='Gradient norm']").first
    loss.evaluate("el => { const scroller = el.closest('.jp-WindowedPanel-outer') || document.scrollingElement;"
                  " scroller.scrollTop += el.getBoundingClientRect().bottom + 20; }")  # just above the top
    time.sleep(0.5)
    hidden_frame, below_frame = loss.get_attribute("data-frame"), below.get_attribute("data-frame")
    time.sleep(1.5)
    assert below.get_attribute("data-frame") != below_frame, "the plot in sight should go on moving"
    assert loss.get_attribute("data-frame") == hidden_frame, "a plot out of sight was drawn"
    loss.scroll_into_view_if_needed()
    wait_until(lambda: loss.get_attribute("data-frame") != hidden_frame, 3, "the loss plot to move again in sight")

    # A restart while playing: the banner within 3 s, and the page does not go on failing to send.
    banner = page.locator(".trainlab-kernel-gone")
    assert not banner.is_visible()
    kernel = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    start = time.monotonic()
    restarting = restart_in_background(lab_server, kernel)
    wait_until(lambda: banner.is_visible(), 10, "the kernel-gone banner", every=0.05)
    seconds = time.monotonic() - start
    assert seconds <= 3.0, f"the banner took {seconds:.1f} s to appear after the restart"
    restarting.join(60)
    logged = len(page.console_log.messages)
    time.sleep(5)  # two heartbeat periods
    late = [m for m in page.console_log.messages[logged:] if "Cannot send" in m]
    assert not late, f"the page keeps failing to send to the gone kernel: {late}"
    page.screenshot(path=str(output_dir / "kernel-restarted-banner.png"))
    assert_no_console_errors(page)


def test_a_failed_tests_teardown_can_shut_down_the_kernels_it_left_running(lab_server):
    lab_server.api("/api/kernels", method="POST")  # as opening a notebook does
    assert len(lab_server.api("/api/kernels")) >= 1
    assert lab_server.shut_down_kernels() >= 1
    assert lab_server.api("/api/kernels") == []
