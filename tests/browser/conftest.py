"""Fixtures for browser tests: a real JupyterLab / Voila server on loopback and Debian's Chromium.

Browser tests skip with a message when Chromium is missing, except when
TRAINLAB_REQUIRE_BROWSER=1 (set by CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# The project's own Jupyter setup, as `make lab`, `make app` and Binder load it (jupyter/).
PROJECT_SETUP = {"JUPYTER_CONFIG_PATH": str(ROOT / "jupyter"), "JUPYTER_PATH": str(ROOT / "jupyter")}
# Console messages from these sources are ours to answer for ("blob:": anywidget runs each widget's
# script, and ours runs plotly.js, from a blob URL).
OUR_SOURCES = ("trainlab", "plotly", "anywidget", "widget", "jupyter-widgets", "blob:")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder as a browser test, and skip them all when there is no browser."""
    have_browser = Path(CHROMIUM).exists()
    required = os.environ.get("TRAINLAB_REQUIRE_BROWSER") == "1"
    for item in items:
        if "tests/browser" not in str(item.fspath):
            continue
        item.add_marker(pytest.mark.browser)
        if not have_browser and not required:
            item.add_marker(pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: install it "
                                             "(apt-get install chromium) to run the browser tests"))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A Jupyter server process (lab or voila) with its URL, token and log file."""

    def __init__(self, command: list[str], port: int, token: str, log: Path, status_path: str) -> None:
        self.port, self.token, self.log_path = port, token, log
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log, "w")
        env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1", **PROJECT_SETUP)
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        _SERVERS.append(self)
        self._wait_ready(status_path)

    def _wait_ready(self, status_path: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}{status_path}", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the server did not answer within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server and close its log."""
        _SERVERS.remove(self)
        stop_process(self.process)
        self._log.close()

    def api(self, path: str, method: str = "GET") -> object:
        """Call the server's REST API (``/api/...``) with its token; the answer's JSON (None when empty)."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> int:
        """Shut down every kernel the server runs (a test that failed mid-Play leaves one training at full
        speed, which would slow every later test); how many there were. Voila has no kernel API: 0."""
        try:
            kernels = self.api("/api/kernels")
        except urllib.error.HTTPError:  # Voila: its kernels end with their pages
            return 0
        for kernel in kernels:
            self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        return len(kernels)


_SERVERS: list[Server] = []  # running, so a failed test's teardown can stop their kernels


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a process, killing it if it has not ended within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def lab_server(output_dir: Path) -> Iterator[Server]:
    """A real JupyterLab on a free loopback port, with a token, serving the repository."""
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--allow-root",
               f"--ServerApp.root_dir={ROOT}", "--LabApp.news_url=None",
               "--LabApp.expose_app_in_browser=True"]
    server = Server(command, port, token, output_dir / "jupyterlab.log", f"/api/status?token={token}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def voila_server(output_dir: Path) -> Iterator[Server]:
    """A real Voila serving the notebooks folder."""
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
               f"--token={token}", str(ROOT / "notebooks")]
    server = Server(command, port, token, output_dir / "voila.log", f"/?token={token}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


class ConsoleLog:
    """Console messages and page errors collected from a page."""

    def __init__(self, page: object) -> None:
        self.messages: list[str] = []
        self.errors: list[str] = []  # errors and warnings
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_page_error(self, error: object) -> None:
        text = f"pageerror: {error}"
        self.errors.append(text)
        self.messages.append(f"{text}\n{getattr(error, 'stack', '')}")  # where it was thrown, for the failure log

    def _on_console(self, message: object) -> None:
        text = f"{message.type}: {message.text} @ {message.location.get('url', '')}"
        self.messages.append(text)
        if message.type in ("error", "warning"):
            self.errors.append(text)

    def ours(self) -> list[str]:
        """The errors and warnings that come from our widgets or their libraries."""
        return [e for e in self.errors if any(source in e.lower() for source in OUR_SOURCES) or "pageerror" in e]


class Traffic:
    """Bytes the page receives (websocket frames: the kernel's messages; HTTP responses), and the
    live figures' "alive" and "drawn" messages it sends (either tells the kernel the page is there)."""

    def __init__(self, page: object) -> None:
        self.websocket_bytes = 0
        self.http_bytes = 0
        self.alive_sent = 0
        self.drawn_sent = 0
        self.said: list[str] = []  # what the figures said, in order
        page.on("websocket", self._on_websocket)
        page.on("requestfinished", self._on_request)

    def _on_websocket(self, websocket: object) -> None:
        websocket.on("framereceived", self._on_frame)
        websocket.on("framesent", self._on_sent)

    def _on_frame(self, payload: object) -> None:
        self.websocket_bytes += len(_bytes(payload))

    def _on_sent(self, payload: object) -> None:
        data = _bytes(payload)
        self.alive_sent += data.count(b'"kind":"alive"')
        self.drawn_sent += data.count(b'"kind":"drawn"')
        if b'"kind":"alive"' in data or b'"kind":"drawn"' in data:
            self.said.append(f"{time.monotonic():.2f} {data[-200:]!r}")

    def _on_request(self, request: object) -> None:
        try:
            self.http_bytes += request.sizes()["responseBodySize"]
        except Exception:  # a request whose response is gone (the page closed): nothing to count
            pass


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


@pytest.fixture
def page(browser: object, output_dir: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page; on failure, a screenshot and the console log are left in test-output/browser."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_log = ConsoleLog(page)
    page.traffic = Traffic(page)
    yield page
    failed = getattr(request.node, "failed", False)
    if failed:
        name = request.node.name.replace("/", "_")
        try:
            page.screenshot(path=str(output_dir / f"FAILED-{name}.png"), full_page=True)
        except Exception:  # the page may be gone; the log still helps
            pass
        (output_dir / f"FAILED-{name}.console.txt").write_text("\n".join(page.console_log.messages))
    context.close()
    if failed:  # the page may have stopped mid-Play: its kernel would train on, taking a core from the next tests
        for server in _SERVERS:
            server.shut_down_kernels()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Let fixtures see whether the test failed (for failure screenshots)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed = True
