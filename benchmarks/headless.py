"""Widgets without a browser, but with their messages serialised as a kernel would send them.

ipywidgets opens a comm per widget; outside a kernel there is nothing to send to, which
would make the dashboard look cheaper than it is. This comm turns every message into
JSON (binary buffers counted, not copied twice) and keeps count of the bytes. And a live
figure sends nothing until a page opens it: ``show(dash)`` plays a page that opens every
figure and draws each frame at once (the most a kernel is ever asked to send).
"""

from __future__ import annotations

import json
from typing import Any

import comm
from comm.base_comm import BaseComm


class SerializingComm(BaseComm):
    """A comm that serialises what it would send and counts the bytes."""

    sent_bytes = 0
    messages = 0

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        """Serialise like a kernel's session would (JSON plus raw buffers)."""
        payload = json.dumps({"msg_type": msg_type, "data": data, "metadata": metadata}, default=str)
        size = len(payload) + sum(memoryview(b).nbytes for b in buffers or ())
        SerializingComm.sent_bytes += size
        SerializingComm.messages += 1
        content = data.get("content") if isinstance(data, dict) and data.get("method") == "custom" else None
        if isinstance(content, dict) and content.get("kind") == "frame":  # drawn at once
            _say(self, {"kind": "drawn", "frame": content["frame"]})
        if isinstance(content, dict) and content.get("kind") == "frames":  # several figures' frames, drawn at once
            _say(self, {"kind": "drawn", "frames": {part["figure"]: part["frame"] for part in content["frames"]}})


def _say(comm: BaseComm, content: dict) -> None:
    """What a page says to a widget, delivered as a kernel delivers it."""
    comm.handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def show(dash: Any) -> None:
    """Open a page on every live figure of ``dash``: from now on each one sends its frames."""
    for figure in dash.figures.values():
        _say(figure.comm, {"kind": "hello"})


def install() -> None:
    """Make every new widget use a SerializingComm."""
    comm.create_comm = lambda *args, **kwargs: SerializingComm(*args, **kwargs)


def reset_counters() -> None:
    """Start counting bytes and messages from zero."""
    SerializingComm.sent_bytes = 0
    SerializingComm.messages = 0
