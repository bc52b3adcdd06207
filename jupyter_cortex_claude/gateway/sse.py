"""Server-sent events: split an upstream byte stream into whole events, cheaply.

The Claude path relays Cortex's Anthropic stream untouched. To do that fast we never decode the whole
stream: we only cut it at event boundaries and look at each event's first line, which names its type
(``event: message_delta``). Only the few events the gateway must read (``message_start`` to show the
client's model name, ``message_delta`` for usage, ``error``) are parsed as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

_BOUNDARY = b"\n\n"


class SSESplitter:
    """Feeds on arbitrary byte chunks; yields complete events (each ending with a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\r" in chunk:
            # The SSE spec allows CRLF and CR line ends; normalize so one boundary search suffices.
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = self._buffer + chunk if self._buffer else chunk
        end = data.rfind(_BOUNDARY)
        if end < 0:
            self._buffer = data
            return []
        self._buffer = data[end + 2 :]
        return [event + _BOUNDARY for event in data[:end].split(_BOUNDARY) if event.strip()]

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not been completed yet."""
        return self._buffer


def event_name(event: bytes) -> str | None:
    """The ``event:`` field of a raw event, if its first line names one."""
    if event.startswith(b"event:"):
        line_end = event.find(b"\n")
        return event[6:line_end].strip().decode("ascii", "replace")
    return None


def event_data(event: bytes) -> bytes:
    """The joined ``data:`` lines of a raw event."""
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts)


def event_json(event: bytes) -> Any:
    """The JSON payload of a raw event (raises ValueError when it is not JSON)."""
    return json.loads(event_data(event))


def iter_data_payloads(events: list[bytes]) -> Iterator[bytes]:
    for event in events:
        yield event_data(event)


def format_event(event: str | None, data: Mapping[str, Any] | str) -> bytes:
    """One SSE frame: ``event: X`` (optional) and a compact JSON ``data:`` line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
