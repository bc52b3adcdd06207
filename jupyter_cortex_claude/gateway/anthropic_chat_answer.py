"""The Anthropic → Chat route's answer: a Chat Completions answer as an Anthropic Message (JSON or SSE).

The other half of :mod:`.anthropic_chat_request`; :class:`ChatStreamTranslator` is this route's
:class:`~.cortex_chat.ChunkConverter`. Claude Code needs back the exact Anthropic stream:
``message_start``, ``ping``, per block ``content_block_start`` / deltas / ``content_block_stop``
with indices 0..n, then ``message_delta`` (stop_reason, usage) and ``message_stop`` (see
``clients.md``).

Thinking arrives from Cortex in OpenRouter format (``reasoning``) without a signature. We surface it
as a thinking block whose ``signature`` is empty and never emit a ``signature_delta``: inventing one
would make Claude refuse the history later. Such blocks cannot be sent back to Claude's Messages
API; the request translation drops them, and a Messages-API shaper must drop thinking blocks with an
empty signature.

Cortex omits ``finish_reason`` for Claude models, so the stop reason is derived from what was seen
(tool calls → ``tool_use``) and falls back to ``end_turn``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_string  # the C escaper, non-ASCII kept
from typing import Any

from ..errors import GatewayError
from .json_bodies import loads_finite
from .messages_answer import error_event
from .replies import GatewayReply, JsonReply, StreamReply, frames_of
from .streamed_json import StreamedJson

log = logging.getLogger(__name__)

_STOP_REASONS = {"length": "max_tokens", "content_filter": "refusal", "tool_calls": "tool_use"}


_FRAME_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sse_frame(event: str, data: Mapping[str, Any]) -> bytes:
    """One Anthropic SSE frame: ``event: X`` + compact JSON ``data:`` + blank line."""
    return f"event: {event}\ndata: {_FRAME_JSON.encode(data)}\n\n".encode()


def text_delta_frame(index: int, kind: str, text: str) -> bytes:
    """``sse_frame`` of a text or thinking delta, byte for byte, written without building the dicts:
    one per streamed token, so the one frame worth its own writer."""
    field = "thinking" if kind == "thinking" else "text"
    return (
        f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{index:d},'
        f'"delta":{{"type":"{field}_delta","{field}":{_json_string(text)}}}}}\n\n'
    ).encode()


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def new_tool_use_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


def anthropic_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Chat Completions usage → Anthropic usage.

    OpenAI's ``prompt_tokens`` includes the cached part, while Anthropic's ``input_tokens`` excludes
    cache reads; subtracting keeps ``input + cache_read`` equal to the prompt size, which is what
    Claude Code adds up for its context meter. Cortex reports Claude's cache reads and writes
    together as ``cached_tokens``; an OpenRouter-style ``cache_write_tokens`` is split out when
    present.
    """
    usage = usage or {}
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens"))
    written = min(_int(details.get("cache_write_tokens")), cached)
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_read_input_tokens": cached - written,
        "cache_creation_input_tokens": written,
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _stop_reason(finish_reason: Any, saw_tool_calls: bool) -> str:
    if saw_tool_calls:
        return "tool_use"
    return _STOP_REASONS.get(finish_reason, "end_turn") if finish_reason else "end_turn"


def _reasoning_text(holder: Mapping[str, Any]) -> str:
    # Cortex uses OpenRouter's `reasoning`; DeepSeek-style servers say `reasoning_content`.
    value = holder.get("reasoning") or holder.get("reasoning_content")
    return value if isinstance(value, str) else ""


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not arguments:
        return {}
    try:
        parsed = loads_finite(arguments)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    # Keep what the model wrote: the client's schema check then tells the model what went wrong.
    return {"_unparsed_arguments": arguments}


def chat_completion_to_anthropic(resp: Mapping[str, Any], *, client_model: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` as an Anthropic Message."""
    choices = resp.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = _reasoning_text(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # some servers answer with content parts
        text = "".join(part.get("text") or "" for part in text if isinstance(part, Mapping))
    if text:
        content.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls") or []
    for call in tool_calls:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_tool_use_id(),
                "name": function.get("name") or "",
                "input": _parse_arguments(function.get("arguments")),
            }
        )
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": _stop_reason(choice.get("finish_reason"), bool(tool_calls)),
        "stop_sequence": None,
        "usage": anthropic_usage(resp.get("usage")),
    }


def empty_anthropic_message(client_model: str) -> dict[str, Any]:
    """The answer for Cortex's 400 "conversation complete": the model had nothing to add."""
    return chat_completion_to_anthropic({"choices": [{"message": {}}]}, client_model=client_model)


def empty_answer_reply(client_model: str, *, stream: bool) -> GatewayReply:
    """An empty ``end_turn`` answer as the client asked for it: one message, or its stream."""
    if stream:
        return StreamReply(frames_of(ChatStreamTranslator(client_model=client_model).finish()))
    return JsonReply(200, empty_anthropic_message(client_model))


@dataclass
class _ToolCall:
    upstream_index: int
    id: str
    name: str = ""
    arguments: StreamedJson = field(default_factory=StreamedJson)
    block_index: int | None = None  # set once its content_block_start was sent
    closed: bool = False


@dataclass
class _OpenBlock:
    kind: str  # "text" | "thinking" | "tool_use"
    index: int
    tool: _ToolCall | None = None


class ChatStreamTranslator:
    """Feeds on parsed ``chat.completion.chunk`` dicts; yields Anthropic SSE frames in order.

    Anthropic blocks are strictly sequential while Chat Completions tool calls are addressed by
    ``index`` and may, in principle, interleave. A tool call is streamed live while it is the open
    block; a new index closes it when its arguments already form complete JSON (the usual,
    sequential case), and otherwise the newcomer is buffered and sent whole once the open block
    closes.
    """

    usage: dict[str, int]
    """Input, output and cache tokens seen, in Anthropic terms (for the usage ledger)."""
    stop_reason: str | None

    def __init__(self, *, client_model: str, input_tokens_hint: int = 0) -> None:
        self.client_model = client_model
        self.input_tokens_hint = input_tokens_hint
        self.usage = {}
        self.stop_reason = None
        self.message_id = new_message_id()
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open: _OpenBlock | None = None
        self._tools: dict[int, _ToolCall] = {}
        self._finish_reason: str | None = None

    # --- public -------------------------------------------------------------------------------

    def start(self) -> list[bytes]:
        """``message_start`` and ``ping`` now, before Cortex's first chunk (once; else nothing)."""
        return [] if self._started else self._message_start()

    def feed(self, chunk: Mapping[str, Any]) -> list[bytes]:
        if self._finished:
            return []
        frames: list[bytes] = []
        if chunk.get("usage"):
            self.usage = anthropic_usage(chunk["usage"])
        if not self._started:
            frames.extend(self._message_start())
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # Cortex returns a single choice; ignore anything else
            delta = choice.get("delta") or {}
            reasoning = _reasoning_text(delta)
            if reasoning:
                frames.extend(self._append_text("thinking", reasoning))
            text = delta.get("content")
            if isinstance(text, str) and text:
                frames.extend(self._append_text("text", text))
            for call_delta in delta.get("tool_calls") or []:
                frames.extend(self._append_tool_call(call_delta))
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return frames

    def finish(self) -> list[bytes]:
        """Close open blocks, then ``message_delta`` (stop_reason, usage) and ``message_stop``."""
        if self._finished:
            return []
        frames = [] if self._started else self._message_start()
        frames.extend(self._close_open())
        frames.extend(self._flush_buffered_tools())
        self._finished = True
        self.stop_reason = _stop_reason(self._finish_reason, bool(self._tools))
        usage = self.usage or anthropic_usage({"prompt_tokens": self.input_tokens_hint})
        self.usage = usage
        frames.append(
            sse_frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        frames.append(sse_frame("message_stop", {"type": "message_stop"}))
        return frames

    def error(self, failure: GatewayError) -> bytes:
        """The SSE ``error`` event that ends a broken stream: Claude Code then retries the turn."""
        return error_event(failure)

    # --- blocks -------------------------------------------------------------------------------

    def _message_start(self) -> list[bytes]:
        self._started = True
        known = self.usage or anthropic_usage({"prompt_tokens": self.input_tokens_hint})
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**known, "output_tokens": 0},
        }
        return [
            sse_frame("message_start", {"type": "message_start", "message": message}),
            sse_frame("ping", {"type": "ping"}),
        ]

    def _start_block(
        self, kind: str, content_block: dict[str, Any], tool: _ToolCall | None = None
    ) -> bytes:
        index = self._next_index
        self._next_index += 1
        self._open = _OpenBlock(kind, index, tool)
        return sse_frame(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": content_block},
        )

    def _close_open(self) -> list[bytes]:
        if self._open is None:
            return []
        index = self._open.index
        if self._open.tool is not None:
            self._open.tool.closed = True
        self._open = None
        return [sse_frame("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse_frame(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def _append_text(self, kind: str, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self._open is None or self._open.kind != kind:
            frames.extend(self._close_open())
            frames.extend(self._flush_buffered_tools())
            start = {"type": "text", "text": ""}
            if kind == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
            frames.append(self._start_block(kind, start))
        assert self._open is not None
        frames.append(text_delta_frame(self._open.index, kind, text))
        return frames

    def _append_tool_call(self, call_delta: Mapping[str, Any]) -> list[bytes]:
        upstream_index = call_delta.get("index")
        if not isinstance(upstream_index, int):
            upstream_index = (
                len(self._tools) if call_delta.get("id") else max(self._tools, default=0)
            )
        function = call_delta.get("function") or {}
        tool = self._tools.get(upstream_index)
        if tool is None:
            tool = _ToolCall(upstream_index, id=call_delta.get("id") or new_tool_use_id())
            self._tools[upstream_index] = tool
        if function.get("name") and not tool.name:
            tool.name = function["name"]
        piece = function.get("arguments")
        piece = piece if isinstance(piece, str) else ""

        frames: list[bytes] = []
        open_tool = self._open.tool if self._open else None
        if open_tool is tool:
            if piece:
                tool.arguments.append(piece)
                frames.append(self._json_delta(tool, piece))
            return frames
        if tool.closed:
            # Only possible after a new call closed this one on complete JSON; more would corrupt
            # it.
            log.debug("dropping late arguments for tool call index %s", upstream_index)
            return frames
        tool.arguments.append(piece)
        can_go_live = tool.block_index is None and tool.name
        if can_go_live and (open_tool is None or open_tool.arguments.is_complete()):
            frames.extend(self._close_open())
            frames.extend(self._start_tool_block(tool))
        return frames

    def _start_tool_block(self, tool: _ToolCall) -> list[bytes]:
        start = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
        frames = [self._start_block("tool_use", start, tool)]
        tool.block_index = self._next_index - 1
        if tool.arguments:
            frames.append(self._json_delta(tool, tool.arguments.text))
        return frames

    def _json_delta(self, tool: _ToolCall, piece: str) -> bytes:
        assert tool.block_index is not None
        return self._delta(tool.block_index, {"type": "input_json_delta", "partial_json": piece})

    def _flush_buffered_tools(self) -> list[bytes]:
        frames: list[bytes] = []
        for upstream_index in sorted(self._tools):
            tool = self._tools[upstream_index]
            if tool.block_index is None:
                tool.name = tool.name or "unknown_tool"
                frames.extend(self._start_tool_block(tool))
                frames.extend(self._close_open())
        return frames
