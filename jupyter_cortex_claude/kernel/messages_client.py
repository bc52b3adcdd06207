"""A small synchronous Anthropic Messages client for the kernel: plain httpx and our SSE splitter.

The anthropic SDK is not a runtime dependency, and the kernel only needs streamed text, usage and
the stop reason. A fresh connection per request means that closing the stream (a Stop button, a
KeyboardInterrupt) closes the socket, which makes the gateway close its upstream Cortex call.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from ..gateway.sse import SSESplitter, event_data

ANTHROPIC_VERSION = "2023-06-01"
USER_AGENT = "jupyter-cortex-claude-kernel"


class Endpoint(Protocol):
    anthropic_url: str
    key: str


class ChatRequestError(RuntimeError):
    """The gateway refused the request or the answer broke off; the message says why."""


class HangUp:
    """Lets another thread end a streamed answer at once, even while the reading thread waits for
    the next event (a stalled model): it shuts the connection's socket, which wakes the read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shut: Callable[[], None] | None = None
        self.requested = False

    def arm(self, shut: Callable[[], None]) -> None:
        with self._lock:
            self._shut = shut
            requested = self.requested
        if requested:
            shut()

    def __call__(self) -> None:
        with self._lock:
            self.requested = True
            shut = self._shut
        if shut is not None:
            shut()


def _socket_shutter(response: httpx.Response) -> Callable[[], None]:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None

    def shut() -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        else:  # no socket to reach (another transport): the next event ends it
            response.close()

    return shut


@dataclass
class StreamedAnswer:
    """What arrived so far: text, usage and the stop reason (filled in as events arrive)."""

    text: str = ""
    model: str | None = None
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    events: int = 0
    tool_uses: list[str] = field(default_factory=list)

    def apply(self, event: dict[str, Any]) -> str:
        """Take one SSE event into account; returns the text it added."""
        self.events += 1
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model")
            self._usage(message.get("usage"))
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.tool_uses.append(str(block.get("name")))
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = str(delta.get("text", ""))
                self.text += text
                return text
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._usage(event.get("usage"))
        elif kind == "error":
            error = event.get("error") or {}
            raise ChatRequestError(
                f"The answer broke off: {error.get('message') or error.get('type') or 'error'}"
            )
        return ""

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key, attribute in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_input_tokens", "cache_read_tokens"),
        ):
            value = usage.get(key)
            if isinstance(value, int) and value > getattr(self, attribute):
                setattr(self, attribute, value)


def _headers(endpoint: Endpoint) -> dict[str, str]:
    return {
        "authorization": f"Bearer {endpoint.key}",
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def _url(endpoint: Endpoint, path: str) -> str:
    return endpoint.anthropic_url.rstrip("/") + path


def stream_message(
    endpoint: Endpoint,
    body: dict[str, Any],
    *,
    timeout: float = 300.0,
    hang_up: HangUp | None = None,
) -> Iterator[dict[str, Any]]:
    """Yields the answer's SSE events as dicts. Closing the generator closes the connection;
    ``hang_up``, called from any thread, ends it even while no event arrives."""
    payload = json.dumps({**body, "stream": True}).encode()
    with (
        httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0)) as client,
        client.stream(
            "POST", _url(endpoint, "/v1/messages"), content=payload, headers=_headers(endpoint)
        ) as response,
    ):
        if response.status_code >= 400:
            response.read()
            raise ChatRequestError(_error_message(response))
        if hang_up is not None:
            hang_up.arm(_socket_shutter(response))
        splitter = SSESplitter()
        for chunk in response.iter_bytes():
            for event in splitter.feed(chunk):
                try:
                    parsed = json.loads(event_data(event))
                except ValueError:
                    continue
                if isinstance(parsed, dict):
                    yield parsed


def list_models(endpoint: Endpoint, *, timeout: float = 15.0) -> list[str]:
    response = httpx.get(_url(endpoint, "/v1/models"), headers=_headers(endpoint), timeout=timeout)
    if response.status_code >= 400:
        raise ChatRequestError(_error_message(response))
    return [str(model["id"]) for model in response.json().get("data", []) if "id" in model]


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        message = error.get("message") or response.text[:300]
    except ValueError:
        message = response.text[:300]
    return f"The cortex-claude gateway answered {response.status_code}: {message}"
