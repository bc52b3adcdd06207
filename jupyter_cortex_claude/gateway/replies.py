"""What the gateway hands a handler back, and the one way a request body is read.

A route answers with a :class:`JsonReply` or a :class:`StreamReply`; the handler (Jupyter's or the
standalone server's) writes it out without knowing which route made it. Bodies are parsed by
:func:`parse_json_body`, so every endpoint refuses the same bad JSON with the same 400.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import invalid_request


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


def parse_json_body(raw_body: bytes) -> dict[str, Any]:
    if not raw_body:
        raise invalid_request("The request body is empty; expected a JSON object.")
    try:
        body = json.loads(raw_body)
    except RecursionError:
        raise invalid_request("The request body is nested too deeply.") from None
    except ValueError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


async def frames_of(frames: Iterable[bytes]) -> AsyncIterator[bytes]:
    """Frames already at hand, as the async iterator a :class:`StreamReply` relays."""
    for frame in frames:
        yield frame
