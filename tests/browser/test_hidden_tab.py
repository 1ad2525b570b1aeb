"""A learner who switches to another browser tab while the dashboard plays is not paused; a frozen page is.

The watchdog (trainlab/widgets/watchdog.py) pauses a dashboard when no page has spoken to its
figures for 10 s. A hidden tab draws nothing (no animation frames, so no "drawn" answers) and
has its timers throttled; only the figures' "alive" heartbeat (live_figure.js, every 2 s, from a
worker) speaks for it. Chrome's harsher throttling of tabs hidden for over 5 minutes (main-thread
timers once a minute, which the worker escapes) is not reached in a test this short.

A real hidden tab needs a Chromium of our own: Playwright's launch turns background throttling
off (--disable-background-timer-throttling, --disable-renderer-backgrounding, ...), and while
Playwright is attached to a page it keeps it "visible" whatever tab is in front. So the test
starts Chromium with a DevTools port, drives JupyterLab through Playwright, lets go of the page,
puts a second tab in front over the DevTools HTTP API, and attaches again afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, Iterator

import pytest
from conftest import CHROMIUM, CHROMIUM_FLAGS, ConsoleLog, free_port, stop_process
from lab_page import button, one_cell_notebook, status_text, step_count, wait_until
from test_lab import assert_no_console_errors, open_notebook, wait_idle

from trainlab.widgets.watchdog import NOBODY_WATCHING

HIDDEN_SECONDS = 15  # longer than the watchdog's 10 s, with room for a heartbeat or two

# In the page: every change of visibility, when, and how many animation frames had run by then.
RECORD_VISIBILITY_JS = """() => {
    const record = (window.__trainlabVisibility = { changes: [], frames: 0 });
    const count = () => { record.frames += 1; requestAnimationFrame(count); };
    requestAnimationFrame(count);
    document.addEventListener('visibilitychange', () => record.changes.push(
        { state: document.visibilityState, at: performance.now(), frames: record.frames }));
}"""


class DevToolsChromium:
    """Debian's Chromium, headless, with background throttling as a user's browser has it, and a DevTools port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._profile = tempfile.mkdtemp(prefix="trainlab-chromium-")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", *CHROMIUM_FLAGS, f"--remote-debugging-port={self.port}",
             f"--user-data-dir={self._profile}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 30, "Chromium's DevTools port")
        self._connection: Any = None

    def _answers(self) -> bool:
        try:
            self._json("/version")
            return True
        except OSError:
            return False

    def _json(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"{self.url}/json{path}", method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def attach(self, browser_type: Any, url_part: str = "") -> Any:
        """Attach Playwright, and return the first tab whose address holds ``url_part``, with its console log."""
        self._connection = browser_type.connect_over_cdp(self.url)
        page = next(page for page in self._connection.contexts[0].pages if url_part in page.url)
        page.console_log = ConsoleLog(page)
        return page

    def detach(self) -> None:
        """Let go of every page (Chromium and its tabs stay)."""
        self._connection.close()
        self._connection = None

    def open_tab(self) -> str:
        """A new tab, in front of the others; its id."""
        return self._json("/new?about:blank", method="PUT")["id"]

    def close_tab(self, tab: str) -> None:
        """Close a tab: the one behind it comes to the front."""
        urllib.request.urlopen(f"{self.url}/json/close/{tab}", timeout=5).close()

    def set_lifecycle(self, url_part: str, state: str) -> None:
        """Freeze ("frozen") or wake ("active") the tab whose address holds ``url_part``.

        Over a DevTools connection of its own: a page Playwright is attached to stays awake.
        """
        import websocket  # websocket-client: jupyter_server depends on it

        tab = next(tab for tab in self._json("/list") if tab["type"] == "page" and url_part in tab["url"])
        connection = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=10, suppress_origin=True)
        try:
            connection.send(json.dumps({"id": 1, "method": "Page.setWebLifecycleState", "params": {"state": state}}))
            while json.loads(connection.recv()).get("id") != 1:  # events may come first
                pass
        finally:
            connection.close()

    def stop(self) -> None:
        """Detach, stop Chromium, and remove its profile."""
        if self._connection is not None:
            self.detach()
        stop_process(self.process)
        shutil.rmtree(self._profile, ignore_errors=True)


@pytest.fixture
def devtools_chromium() -> Iterator[DevToolsChromium]:
    chromium = DevToolsChromium()
    yield chromium
    chromium.stop()


def playing_notebook(folder) -> str:
    """A light dashboard (the loss plot only) at 30 steps a second."""
    code = ("import trainlab as tl\n"
            "X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)\n"
            "loop = tl.Loop(tl.models.mlp(2, [16], 2, seed=0), (X, y), 'cross_entropy', lr=0.1, batch_size=32)\n"
            "tl.Dashboard(loop, plots=('loss',), speed=30)")
    return one_cell_notebook(folder, "hidden_tab.ipynb", code)


def watchdog_notice(page) -> bool:
    """Whether the dashboard says it paused because nobody was watching."""
    return page.locator(".widget-html", has_text=NOBODY_WATCHING[:30]).count() > 0


def in_the_background(chromium: DevToolsChromium, browser_type: Any, notebook: str, frozen: bool = False) -> Any:
    """Put another tab in front of the notebook for HIDDEN_SECONDS (its page frozen meanwhile, if asked);
    the notebook's page, attached again."""
    chromium.detach()
    other = chromium.open_tab()
    if frozen:
        chromium.set_lifecycle(notebook, "frozen")
    time.sleep(HIDDEN_SECONDS)
    if frozen:
        chromium.set_lifecycle(notebook, "active")
    chromium.close_tab(other)
    return chromium.attach(browser_type, notebook)


def test_a_hidden_tab_keeps_playing_and_a_frozen_page_pauses(browser, lab_server, output_dir, devtools_chromium):
    notebook = playing_notebook(output_dir)
    page = devtools_chromium.attach(browser.browser_type)
    open_notebook(page, lab_server, notebook)
    wait_idle(page, lab_server)
    button(page, "Play").click()
    wait_until(lambda: "playing" in status_text(page), 15, "playing")
    page.evaluate(RECORD_VISIBILITY_JS)
    steps_before = step_count(page)
    assert_no_console_errors(page)

    # The learner switches to another tab for 15 s.
    page = in_the_background(devtools_chromium, browser.browser_type, notebook)
    # It really was a hidden tab: hidden all that time, and it drew nothing (no animation frames).
    changes = page.evaluate("() => window.__trainlabVisibility.changes")
    assert [change["state"] for change in changes] == ["hidden", "visible"], changes
    hidden, shown = changes
    assert (shown["at"] - hidden["at"]) / 1000 > HIDDEN_SECONDS - 2
    assert shown["frames"] - hidden["frames"] <= 1, "the hidden tab still ran animation frames"
    # And the dashboard played on: the watchdog heard the heartbeat.
    assert "playing" in status_text(page) and not watchdog_notice(page)
    steps_back = step_count(page)
    assert steps_back > steps_before + 5 * HIDDEN_SECONDS, f"only {steps_back - steps_before} steps while hidden"
    wait_until(lambda: step_count(page) > steps_back, 15, "the steps to go on")
    assert_no_console_errors(page)

    # Left in the background long enough, Chrome freezes a tab: then nothing speaks for it, and the dashboard pauses.
    page = in_the_background(devtools_chromium, browser.browser_type, notebook, frozen=True)
    wait_until(lambda: "paused" in status_text(page) and watchdog_notice(page), 15,
               "the watchdog to pause the frozen page's dashboard")
    page.screenshot(path=str(output_dir / "hidden-tab-then-frozen.png"))
    assert_no_console_errors(page)
