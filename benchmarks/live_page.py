"""Row 5': the workshop dashboard playing in a real kernel, drawn by a real page (Voila in headless Chromium).

Row 5 plays a dashboard with no browser: it counts what the kernel does, not what a page
drawing 12 frames a second costs the machine (on 2 cores, the page's CPU comes out of
training). Here the workshop notebook runs as the app, Debian's Chromium draws it, and the
kernel's steps per second while playing are compared with the same kernel's steps per second
playing the same loop with no dashboard (the runner alone, as Play runs it), alternately.

The browser tests (tests/browser/play_metrics.py) measure the same way and assert issue 23's
figures; this module holds what both use: the second kernel client, the bare run, the page's
refresh clock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]

# Every live figure in a page: its element carries the frame on screen (data-frame), its title
# (data-title), which renderer drew it (data-renderer) and the figure it holds (trainlabFigure).
FIGURES = "Array.from(document.querySelectorAll('.trainlab-live-figure'))"

# When each figure changed on screen over `seconds`: {title: [ms, ...]}. Heard from the figures
# themselves (they set data-frame as they draw), not polled at every animation frame, which would
# keep the page rendering 60 frames a second and cost the very CPU being measured.
REFRESH_TIMES_JS = f"""async (seconds) => {{
  const times = {{}}, start = performance.now();
  const watch = new MutationObserver((records) => {{
    const now = performance.now() - start;
    for (const record of records) times[record.target.dataset.title || ''].push(now);
  }});
  for (const el of {FIGURES}) {{
    times[el.dataset.title || ''] = [];
    watch.observe(el, {{ attributes: true, attributeFilter: ['data-frame'] }});
  }}
  await new Promise(resolve => setTimeout(resolve, 1000 * seconds));
  watch.disconnect();
  return times;
}}"""

# Playing the workshop's loop with no dashboard (the runner alone, as Play runs it): steps per second.
BARE_CODE = """
import time as _time
import trainlab as _tl
from trainlab.widgets.runner import Runner as _Runner
_bare = _tl.Loop(_tl.models.mlp(2, [32, 32], 2, activation="tanh", seed=0), (X, y), loss_fn="cross_entropy",
                 optimizer="sgd", lr=0.3, batch_size=16, validation_split=0.2, seed=0)
_runner = _Runner(_bare)
_runner.play(); _time.sleep(1.0)  # warm up
_start, _steps = _time.perf_counter(), _bare.state.step
_time.sleep({seconds})
_bare_rate = (_bare.state.step - _steps) / (_time.perf_counter() - _start)
_runner.pause()
del _bare, _runner
"""


def kernel_client(kernel: Any) -> Any:
    """A second client of a running kernel (a psutil.Process; its connection file is on its command line)."""
    from jupyter_client import BlockingKernelClient

    arguments = kernel.cmdline()
    client = BlockingKernelClient(connection_file=arguments[arguments.index("-f") + 1])
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def kernel_value(client: Any, code: str, expression: str, timeout: float = 60) -> Any:
    """Run ``code`` in the kernel, then evaluate ``expression`` there; its value (a Python literal)."""
    msg_id = client.execute(code, silent=True, store_history=False, user_expressions={"value": expression})
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    if content["status"] != "ok":
        raise RuntimeError(f"the kernel failed: {content}")
    result = content["user_expressions"]["value"]
    if result["status"] != "ok":
        raise RuntimeError(f"could not evaluate {expression}: {result}")
    return eval(result["data"]["text/plain"])  # a number or a tuple the kernel printed


def bare_steps_per_second(client: Any, seconds: float = 4.0) -> float:
    """The workshop's loop played by the runner alone, in the kernel ``client`` reaches (the dashboard paused)."""
    return kernel_value(client, BARE_CODE.format(seconds=seconds), "_bare_rate", timeout=60 + seconds)


def playing_window(page: Any, client: Any, seconds: float) -> tuple[float, dict[str, list[float]]]:
    """Over ``seconds`` of the notebook's dashboard playing: its loop's steps per second, and when each plot changed."""
    steps, start = kernel_value(client, "", "loop.state.step"), time.perf_counter()
    times = page.evaluate(REFRESH_TIMES_JS, seconds)
    return (kernel_value(client, "", "loop.state.step") - steps) / (time.perf_counter() - start), times


def playing_in_a_page(rounds: int = 3, seconds: float = 6.0) -> dict[str, Any]:
    """Row 5': the workshop app in Voila and Chromium, bare and playing alternately; the medians and refresh rates."""
    import psutil
    from playwright.sync_api import sync_playwright

    with _voila() as (url, server), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(url, timeout=120_000)
        page.locator(".trainlab-dashboard").first.wait_for(timeout=120_000)
        page.wait_for_function("() => /paused/.test(document.querySelector('.trainlab-dashboard').innerText)",
                               timeout=60_000)
        page.evaluate("() => document.querySelector('.trainlab-dashboard').scrollIntoView()")
        kernel = next(p for p in psutil.Process(server.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline()))
        client = kernel_client(kernel)
        bare, playing, loss = [], [], []
        try:
            for _ in range(rounds):
                bare.append(bare_steps_per_second(client, seconds))
                kernel_value(client, "dash.play()", "dash.playing")
                time.sleep(1.0)  # past Play's first frames
                rate, times = playing_window(page, client, seconds)
                playing.append(rate)
                loss.append(len(times.get("Loss", [])) / seconds)
                kernel_value(client, "dash.pause()", "dash.playing")
        finally:
            client.stop_channels()
            browser.close()
    middle = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {"bare_steps_per_s": middle(bare), "playing_steps_per_s": middle(playing),
            "training_share": middle([p / b for p, b in zip(playing, bare)]), "loss_refresh_per_s": middle(loss),
            "rounds": rounds, "seconds": seconds}


class _voila:
    """Voila serving the notebooks on a free loopback port, with the project's Jupyter setup, for a ``with`` block."""

    def __enter__(self) -> tuple[str, subprocess.Popen]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        token = secrets.token_hex(16)
        env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", JUPYTER_CONFIG_PATH=str(ROOT / "jupyter"),
                   JUPYTER_PATH=str(ROOT / "jupyter"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             f"--token={token}", str(ROOT / "notebooks")], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/?token={token}", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        return f"{base}/voila/render/04_live_lab.ipynb?token={token}", self.process

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
