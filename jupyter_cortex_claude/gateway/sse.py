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

from ..errors import GatewayError
from .json_bodies import loads_finite

_BOUNDARY = b"\n\n"

# The largest event the gateway waits for the end of. The biggest a real answer makes is a Chat
# Completions chunk carrying a whole tool call: 128k output tokens at ~4 bytes each, JSON-escaped,
# stay under 4 MiB. Without a bound, an upstream that never sends a blank line grows the buffer
# until the server runs out of memory (issue 11, L3).
MAX_EVENT_BYTES = 8 * 1024 * 1024


class SSESplitter:
    """Feeds on arbitrary byte chunks; yields complete events (each ending with a blank line).

    Linear in the bytes fed: each chunk is searched once and the pieces of an unfinished event are
    joined once, when it completes (re-joining and re-searching the whole buffer on every chunk made
    one long event quadratic). An event that grows past ``max_event_bytes`` raises a 502
    :class:`GatewayError`, which the callers turn into their usual mid-stream error.
    """

    __slots__ = ("_cr_held", "_pieces", "_size", "max_event_bytes")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pieces: list[bytes] = []  # the unfinished event, never containing a boundary
        self._size = 0
        # A chunk's final CR, held back: it may be the first half of a CRLF split across two
        # TCP reads, and read as a line end on its own it would end the event early (issue 11, L2).
        self._cr_held = False
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr_held:
            chunk = b"\r" + chunk
            self._cr_held = False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk = chunk[:-1]
                self._cr_held = True
            # The SSE spec allows CRLF and CR line ends; normalize so one boundary search suffices.
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not chunk:
            return []
        end = chunk.rfind(_BOUNDARY)
        joins = chunk.startswith(b"\n") and bool(self._pieces) and self._pieces[-1].endswith(b"\n")
        if end < 0 and not joins:
            self._pieces.append(chunk)
            self._size += len(chunk)
            if self._size > self.max_event_bytes:
                self._pieces, self._size = [], 0
                raise GatewayError(
                    502,
                    f"Cortex sent an event larger than {self.max_event_bytes // (1024 * 1024)} MiB "
                    "without ending it; the answer was cut. Retry the request.",
                )
            return []
        if end < 0:  # the only boundary is the pending event's last newline and this first one
            complete, rest = b"".join(self._pieces)[:-1], chunk[1:]
        else:
            complete = b"".join([*self._pieces, chunk[:end]])
            rest = chunk[end + 2 :]
        self._pieces = [rest] if rest else []
        self._size = len(rest)
        return [event + _BOUNDARY for event in complete.split(_BOUNDARY) if event.strip()]

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not been completed yet."""
        return b"".join(self._pieces) + (b"\n" if self._cr_held else b"")


def event_name(event: bytes) -> str | None:
    """The ``event:`` field of a raw event, if its first line names one."""
    if event.startswith(b"event:"):
        line_end = event.find(b"\n")
        return event[6:line_end].strip().decode("ascii", "replace")
    return None


def event_data(event: bytes) -> bytes:
    """The joined ``data:`` lines of a raw event."""
    first_line_end = event.find(b"\n")
    if first_line_end == len(event) - 2 and event.startswith(b"data:"):  # one line: the usual
        value = event[5:first_line_end]
        return value[1:] if value.startswith(b" ") else value
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts)


def event_json(event: bytes) -> Any:
    """The JSON payload of a raw event (raises ValueError when it is not JSON)."""
    return loads_finite(event_data(event))


def iter_data_payloads(events: list[bytes]) -> Iterator[bytes]:
    for event in events:
        yield event_data(event)


def format_event(event: str | None, data: Mapping[str, Any] | str) -> bytes:
    """One SSE frame: ``event: X`` (optional) and a compact JSON ``data:`` line."""
    payload = (
        data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), allow_nan=False)
    )
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
