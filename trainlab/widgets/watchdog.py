"""The watchdog: is anybody still watching the dashboard play?

A closed Voila tab, or a closed notebook, leaves its kernel training forever, a core busy and its
memory growing. While a dashboard plays, every page that shows one of its figures speaks to the
kernel at least every 2 s (a drawn frame, or "alive" from a timer that a hidden tab does not
throttle: a learner in another tab is still watching). When none has for ``timeout`` seconds,
the dashboard pauses itself. A dashboard no page has ever shown (a script, a test, nbval) is
never paused: it was not meant to be watched. While a notebook cell runs, the kernel reads no
messages from the page at all, so that time does not count.
"""

from __future__ import annotations

import time
from typing import Callable

from trainlab.arguments import positive_number

__all__ = ["Watchdog", "NOBODY_WATCHING"]

#: Why the dashboard paused itself, as shown in its alert line.
NOBODY_WATCHING = ("no page has shown the dashboard for {timeout:g} s (was the tab closed?), so it paused "
                   "to free the machine; press Play to go on")


class Watchdog:
    """Says when playing should stop because no view has spoken for ``timeout`` seconds.

    Example::

        watchdog = Watchdog(timeout=10)
        watchdog.start()                        # Play was pressed
        watchdog.abandoned(last_heard=t)        # True once t (a view's last word) is 10 s old
    """

    def __init__(self, timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = positive_number(timeout, "watch_timeout", "10")  # seconds
        self._clock = clock
        self._since = clock()  # no silence before this counts
        self._cell_running = False

    def start(self) -> None:
        """Playing starts now: silence before it does not count."""
        self._since = self._clock()

    def cell_running(self, running: bool) -> None:
        """A notebook cell started (True) or ended (False): while one runs, views cannot be heard."""
        self._cell_running = running
        if not running:
            self._since = self._clock()

    def abandoned(self, last_heard: float | None) -> bool:
        """Whether views have been silent for ``timeout`` seconds (``last_heard``: None if none ever spoke)."""
        if last_heard is None or self._cell_running:
            return False
        return self._clock() - max(last_heard, self._since) > self.timeout

    def reason(self) -> str:
        """Why playing stopped, in words for the learner."""
        return NOBODY_WATCHING.format(timeout=self.timeout)
