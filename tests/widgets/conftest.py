"""Shared fixtures: a real loop on the moons data and a real dashboard around it (no browser, no mocks)."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest
import torch

import trainlab as tl


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run these tests with one intra-op thread.

    The models here are tiny: extra threads gain nothing, and on a shared 2-core machine
    their barriers stall for whole scheduler slices (measured: loop.fit 0.15 s with one
    thread, 4-8 s with two while other processes ran), which makes timing tests meaningless.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _make_loop(**options) -> tl.Loop:
    """The workshop's first loop: two moons, a small MLP, cross-entropy, SGD."""
    X, y = tl.datasets.moons(n=400, noise=0.2, seed=0)
    settings = dict(lr=0.1, batch_size=32, validation_split=0.2, seed=0)
    settings.update(options)
    return tl.Loop(tl.models.mlp(2, [16, 16], 2, seed=0), (X, y), "cross_entropy", **settings)


@pytest.fixture
def make_loop() -> Callable[..., tl.Loop]:
    """``make_loop(lr=..., ...)``: a fresh moons loop with these options changed."""
    return _make_loop


@pytest.fixture
def loop() -> tl.Loop:
    return _make_loop()


@pytest.fixture
def dashboards():
    """Make dashboards with ``dashboards(loop, **options)``; all are closed (runner stopped) afterwards."""
    made: list = []

    def make(loop, **options):
        dash = tl.Dashboard(loop, **options)
        made.append(dash)
        return dash

    yield make
    for dash in made:
        run_within(5, dash.close)


@pytest.fixture
def dash(loop, dashboards):
    return dashboards(loop)


@pytest.fixture
def within() -> Callable[[float, Callable[[], object]], None]:
    """``within(seconds, fn)``: call fn, failing instead of hanging if it deadlocks."""
    return run_within


@pytest.fixture
def until() -> Callable[..., bool]:
    """``until(condition, timeout=2.0)``: poll until condition() holds."""
    return wait_until


def run_within(seconds: float, fn: Callable[[], object]) -> None:
    """Call ``fn`` in a helper thread and fail (instead of hanging) if it takes longer than ``seconds``."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            fn()
        except BaseException as error:  # handed to the test thread below
            errors.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} did not return within {seconds} s (deadlock?)"
    if errors:
        raise errors[0]


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Page:
    """A browser page showing one live figure, as the kernel sees it: it says hello when it opens,
    receives frames (kept here, decoded as live_figure.js decodes them), and says when it has drawn.

    It talks through the figure's comm, the way a real page's messages arrive.
    """

    shown: dict[str, list["Page"]] = {}  # figure id -> the pages showing it (a message may carry others' frames)

    def __init__(self, figure) -> None:
        self.figure = figure
        self.frames: list[tuple[dict, list]] = []
        Page.shown.setdefault(figure.figure_id, []).append(self)
        self.data: list[dict] = []
        self.layout: dict = {}
        send = figure.send

        def record(content, buffers=None):
            if content.get("kind") == "frames":  # several figures' frames: each to its pages, as the page does
                for part in content["frames"]:
                    for page in Page.shown.get(part["figure"], []):
                        page.receive(dict(part, kind="frame"), list(buffers or [])[part["offset"]:])
            else:
                self.receive(content, list(buffers or []))
            send(content, buffers)

        figure.send = record
        self.say({"kind": "hello", "view": "page"})

    def receive(self, content: dict, buffers: list) -> None:
        """A frame for this page's figure."""
        self.frames.append((content, buffers))
        self._apply(content, buffers)

    def say(self, content: dict) -> None:
        """Send ``content`` to the kernel as the page's custom message."""
        self.figure.comm.handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

    def draw(self) -> None:
        """Tell the kernel the newest frame is on screen."""
        if self.frames:
            self.say({"kind": "drawn", "frame": self.frames[-1][0]["frame"]})

    def _apply(self, message: dict, buffers: list) -> None:
        if message.get("whole"):
            self.data = []
        for change in message["traces"]:
            while len(self.data) <= change["index"]:
                self.data.append({})
            trace = self.data[change["index"]]
            for name, value in change["set"].items():
                trace[name] = decode(value, buffers, trace.get(name))
        if message.get("layout") is not None:
            self.layout = decode(message["layout"], buffers)


def decode(value, buffers, old=None):
    """A frame's JSON with each buffer reference turned back into a numpy array (after ``old``'s first values)."""
    import numpy as np

    if isinstance(value, list):
        return [decode(item, buffers) for item in value]
    if not isinstance(value, dict):
        return value
    if "$buffer" not in value:
        return {key: decode(item, buffers) for key, item in value.items()}
    array = np.frombuffer(bytes(buffers[value["$buffer"]]), value["dtype"]).reshape(value["shape"])
    if "scale" in value:  # bytes for 0..254 over [low, high], 255 for NaN
        low, high = value["scale"]
        array = np.where(array == 255, np.nan, low + array * ((high - low) / 254))
    return np.concatenate([old[:value["keep"]], array]) if value.get("keep") else array


@pytest.fixture
def page():
    """``page(figure)``: a page that opens on ``figure`` (it says hello and takes the whole figure)."""
    return Page
