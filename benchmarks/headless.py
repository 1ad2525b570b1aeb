"""Widgets without a browser, but with their messages serialised as a kernel would send them.

ipywidgets opens a comm per widget; outside a kernel there is nothing to send to, which
would make the dashboard look cheaper than it is. This comm turns every message into
JSON (binary buffers counted, not copied twice) and keeps count of the bytes.
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


def install() -> None:
    """Make every new widget use a SerializingComm."""
    comm.create_comm = lambda *args, **kwargs: SerializingComm(*args, **kwargs)


def reset_counters() -> None:
    """Start counting bytes and messages from zero."""
    SerializingComm.sent_bytes = 0
    SerializingComm.messages = 0
