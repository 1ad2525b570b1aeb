"""The heartbeat: tells the page when the kernel behind a dashboard is gone.

After a kernel restart (or shut-down, or a dropped connection) the browser keeps showing
the dashboard as it last was, "▶ playing" with an orange Pause, and nothing answers. The
page cannot ask a widget whether its kernel lives (anywidget's ``model`` knows nothing of
kernels), so the kernel proves it: a thread bumps ``beat`` twice a second, and the browser
shows a banner when no beat has come for ``patience`` seconds (2.5), or at once when its
ping cannot be sent (the connection is closed). A kernel busy with a long cell still beats
(the thread needs the GIL only for a moment), so only a dead or unreachable one is reported.

It beats only while a page asks for it (each visible view pings every 2 s) or a cell is running:
every message from a kernel counts as activity, and a kernel that beat for nobody, after its
tab was closed, would never look idle to the server's kernel culler
(``--MappingKernelManager.cull_idle_timeout``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anywidget
import traitlets

from trainlab.widgets.cells import on_cells

__all__ = ["Heartbeat", "GONE_MESSAGE"]

#: What the banner says when the kernel stops answering.
GONE_MESSAGE = ("The kernel is not responding (it was restarted or shut down, or the connection dropped), so this "
                "dashboard is frozen. Run the notebook's cells again (Run All) to get a new one; in the app view, "
                "reload the page.")

_ESM = """
export default {
  render({ model, el }) {
    let last = Date.now(), checked = Date.now(), pinged = 0, gone = false;
    const banner = document.createElement("div");
    banner.className = "trainlab-kernel-gone";
    banner.style.cssText = "display:none;color:#a40000;background:#fde8e8;padding:6px 8px;" +
      "border-radius:4px;font-weight:bold;margin:2px 0";
    banner.textContent = model.get("message");
    el.appendChild(banner);
    const show = (dead) => { gone = dead; banner.style.display = dead ? "block" : "none"; };
    model.on("change:beat", () => { last = Date.now(); show(false); });
    const timer = setInterval(() => {
      if (!el.isConnected) { clearInterval(timer); return; }
      const now = Date.now(), late = now - checked > 1000;
      checked = now;
      // A hidden tab asks for nothing (so a forgotten one lets its kernel go idle) and judges
      // nothing (its timers are throttled); nor does a page that was itself frozen for a while
      // (loading a big script): the beats it missed may be queued, unread. The wait starts afresh.
      if (document.hidden || late) { last = now; return; }
      if (!gone && now - pinged >= 2000) {  // "someone is looking": keep beating
        pinged = now;
        try {
          model.send({ ping: 1 });
        } catch (error) {  // the connection is closed (a restart, a shut-down): the kernel is gone now
          show(true);
          return;
        }
      }
      show(now - last > 1000 * model.get("patience"));
    }, 250);
  }
};
"""


class Heartbeat(anywidget.AnyWidget):
    """A widget that is empty while its kernel beats, and says what to do once it stops.

    ``stop()`` ends the beating thread (the dashboard calls it when it closes).
    """

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    beat = traitlets.Int(0, help="bumped twice a second by the kernel while it lives").tag(sync=True)
    patience = traitlets.Float(2.5, help="seconds without a beat before the banner shows").tag(sync=True)
    message = traitlets.Unicode(GONE_MESSAGE, help="the banner's text").tag(sync=True)

    def __init__(self, interval: float = 0.5, linger: float = 30.0, **kwargs: object) -> None:
        """``interval``: seconds between beats; ``linger``: how long it beats on after the last ping."""
        super().__init__(**kwargs)
        self.linger = linger
        self._last_ping = time.monotonic()  # made by a cell whose output is about to be shown
        self._cell_running = False
        self._unregister = on_cells(started=self._cell_started, ended=self._cell_ended)
        self.on_msg(self._received)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="trainlab-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the banner will show in any page still displaying this widget)."""
        self._stopped.set()
        self._unregister()

    def close(self) -> None:
        """Stop beating and close the widget."""
        self.stop()
        super().close()

    @property
    def wanted(self) -> bool:
        """Whether it beats now: a page pinged lately, or a cell is running (the kernel is busy anyway)."""
        return self._cell_running or time.monotonic() - self._last_ping < self.linger

    def _received(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("ping"):
            self._last_ping = time.monotonic()

    def _cell_started(self, *args: Any) -> None:
        self._cell_running = True

    def _cell_ended(self, *args: Any) -> None:
        self._cell_running = False

    def _beat(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            if self.comm is None:  # closed elsewhere (the kernel is shutting down the widgets)
                return
            if self.wanted:
                self.beat += 1

