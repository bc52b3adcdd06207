"""What the gateway hands a handler back.

A route answers with a :class:`JsonReply` or a :class:`StreamReply`; the handler (Jupyter's or the
standalone server's) writes it out without knowing which route made it. Bodies are parsed by
:func:`.json_bodies.parse_request_body`, so every endpoint refuses the same bad JSON with the same
400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JsonReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """SSE bytes to relay. Closing ``frames`` (or cancelling the task iterating it) closes upstream."""

    frames: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


GatewayReply = JsonReply | StreamReply


async def frames_of(frames: Iterable[bytes]) -> AsyncIterator[bytes]:
    """Frames already at hand, as the async iterator a :class:`StreamReply` relays."""
    for frame in frames:
        yield frame
