"""The Messages route's answer: Cortex's Anthropic message or SSE stream, passed on nearly untouched.

A whole answer must be an Anthropic message (:data:`MESSAGE`). A stream is relayed by
:class:`AnthropicStreamRelay`, the :class:`~.exchange.StreamConverter` of this route.

Three edits only, all cheap: the ``model`` in ``message_start`` shows the id the client asked for;
usage is read from ``message_start``/``message_delta`` for the ledger; and a stream that ends without
``message_stop`` (cut, stalled, malformed) gets an SSE ``error`` event, so a client never mistakes a
truncated answer for a complete one (Claude Code then retries the turn without streaming).
"""

from __future__ import annotations

from ..errors import GatewayError, incomplete_answer, malformed_stream
from .exchange import ExpectedAnswer
from .json_bodies import loads_finite
from .sse import SSESplitter, event_data, event_name, format_event
from .usage import UsageRecord

MESSAGE = ExpectedAnswer(
    fits=lambda answer: isinstance(answer, dict) and answer.get("type") == "message",
    missing="Cortex answered without a message (expected an Anthropic message).",
    add_usage=lambda record, message: record.add_anthropic_usage(message.get("usage")),
)


class AnthropicStreamRelay:
    """Feed upstream chunks in, write what comes out. Not thread-safe; one per response."""

    __slots__ = ("_client_model", "_splitter", "_usage", "completed", "failed", "saw_event")

    def __init__(self, client_model: str, usage: UsageRecord) -> None:
        self._client_model = client_model
        self._splitter = SSESplitter()
        self._usage = usage
        self.completed = False
        self.failed = False
        self.saw_event = False

    def feed(self, chunk: bytes) -> bytes:
        try:
            events = self._splitter.feed(chunk)
        except GatewayError as oversize:  # one event without an end: never a fake clean end
            return self.finish(oversize)
        if not events:
            return b""
        out = []
        for event in events:
            if self.failed:
                break
            name = event_name(event)
            if name is None:
                name = _type_from_data(event)
            if name is None or not _looks_like_json_event(event):
                out.append(self.finish(malformed_stream()))
                break
            if name == "message_start":
                event = self._rewrite_message_start(event)
            elif name == "message_delta":
                self._read_delta_usage(event)
            elif name == "message_stop":
                self.completed = True
            elif name == "error":
                self.failed = True
            self.saw_event = True
            out.append(event)
        return b"".join(out)

    def finish(self, failure: GatewayError | None = None) -> bytes:
        """Bytes to send after the upstream stream ended (normally nothing)."""
        if self.completed or self.failed:
            return b""
        self.failed = True
        if failure is None:
            failure = incomplete_answer(
                "message_stop", mid_event=bool(self._splitter.pending.strip())
            )
        return error_event(failure)

    def _rewrite_message_start(self, event: bytes) -> bytes:
        try:
            payload = loads_finite(event_data(event))
            message = payload["message"]
        except (ValueError, KeyError, TypeError):
            return event
        if isinstance(message, dict):
            self._usage.add_anthropic_usage(message.get("usage"))
            if message.get("model") != self._client_model:
                message["model"] = self._client_model
                return format_event("message_start", payload)
        return event

    def _read_delta_usage(self, event: bytes) -> None:
        try:
            payload = loads_finite(event_data(event))
        except ValueError:
            return
        if isinstance(payload, dict):
            self._usage.add_anthropic_usage(payload.get("usage"))


def error_event(error: GatewayError) -> bytes:
    """An Anthropic SSE ``error`` event, as Anthropic sends mid-stream."""
    return format_event("error", error.anthropic_body())


def _looks_like_json_event(event: bytes) -> bool:
    # A byte check, not a parse: every Anthropic event's data is one JSON object on one line.
    start = event.find(b"data:")
    return start >= 0 and event.rstrip().endswith(b"}") and b"{" in event[start : start + 8]


def _type_from_data(event: bytes) -> str | None:
    try:
        payload = loads_finite(event_data(event))
    except ValueError:
        return None
    return payload.get("type") if isinstance(payload, dict) else None
