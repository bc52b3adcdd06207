"""A :class:`Reply` rendered the way Cortex sends it: Anthropic Messages or OpenAI Chat Completions.

Streaming renders to a list of :class:`Frame` so the server can pace deltas, count events for
faults, and cut the stream between frames.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .replies import Reply, TextBlock, ThinkingBlock, ToolUseBlock


@dataclass(frozen=True)
class Frame:
    data: bytes
    is_delta: bool = False


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def word_chunks(text: str) -> list[str]:
    """Small word-sized pieces, as a model streams them; joined they give ``text`` back exactly."""
    pieces = re.findall(r"\s*\S+\s*|\s+", text)
    return pieces or [""]


def json_pieces(arguments: str, count: int = 4) -> list[str]:
    """Partial JSON strings, split mid-token on purpose: clients must concatenate before parsing."""
    if len(arguments) <= 2:
        return [arguments]
    size = max(1, -(-len(arguments) // count))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


# ---------------------------------------------------------------- Anthropic Messages


def anthropic_usage(reply: Reply, input_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": reply.input_tokens if reply.input_tokens is not None else input_tokens,
        "output_tokens": reply.estimated_output_tokens(),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": reply.cache_read_tokens,
    }


def anthropic_content(reply: Reply) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, ThinkingBlock):
            content.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            )
        else:
            content.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
    return content


def anthropic_message(reply: Reply, model: str, input_tokens: int) -> dict[str, Any]:
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": anthropic_content(reply),
        "stop_reason": reply.resolved_stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(reply, input_tokens),
    }


def _event(kind: str, payload: dict[str, Any], *, is_delta: bool = False) -> Frame:
    return Frame(f"event: {kind}\ndata: {_json(payload)}\n\n".encode(), is_delta)


def anthropic_stream(reply: Reply, model: str, input_tokens: int) -> list[Frame]:
    usage = anthropic_usage(reply, input_tokens)
    start_usage = {**usage, "output_tokens": 1}
    message = {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    frames = [
        _event("message_start", {"type": "message_start", "message": message}),
        _event("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(reply.blocks):
        if isinstance(block, TextBlock):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in word_chunks(block.text)]
        elif isinstance(block, ThinkingBlock):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": piece}
                for piece in word_chunks(block.thinking)
            ]
            deltas.append({"type": "signature_delta", "signature": block.signature})
        else:
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in json_pieces(_json(block.input))
            ]
        frames.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        frames.extend(
            _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
                is_delta=True,
            )
            for delta in deltas
        )
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    frames.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.resolved_stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    frames.append(_event("message_stop", {"type": "message_stop"}))
    return frames


# ---------------------------------------------------------------- OpenAI Chat Completions


def chat_finish_reason(reply: Reply, is_claude: bool) -> str | None:
    # Cortex quirk (documented compatibility chart): Claude models through Chat Completions return
    # no finish_reason at all; the caller has to derive it.
    if is_claude:
        return None
    stop = reply.resolved_stop_reason
    if stop == "tool_use":
        return "tool_calls"
    if stop == "max_tokens":
        return "length"
    return "stop"


def chat_usage(reply: Reply, input_tokens: int) -> dict[str, Any]:
    prompt = reply.input_tokens if reply.input_tokens is not None else input_tokens
    prompt += reply.cache_read_tokens
    completion = reply.estimated_output_tokens()
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens},
    }


def chat_completion(reply: Reply, model: str, input_tokens: int, is_claude: bool) -> dict[str, Any]:
    texts = [block.text for block in reply.blocks if isinstance(block, TextBlock)]
    thoughts = [block.thinking for block in reply.blocks if isinstance(block, ThinkingBlock)]
    calls = [block for block in reply.blocks if isinstance(block, ToolUseBlock)]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if thoughts:
        message["reasoning"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _json(call.input)},
            }
            for call in calls
        ]
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": chat_finish_reason(reply, is_claude),
                "logprobs": None,
            }
        ],
        "usage": chat_usage(reply, input_tokens),
    }


def chat_stream(
    reply: Reply, model: str, input_tokens: int, is_claude: bool, include_usage: bool
) -> list[Frame]:
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, *, is_delta: bool = True):
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }
        return Frame(f"data: {_json(payload)}\n\n".encode(), is_delta)

    frames = [chunk({"role": "assistant", "content": ""}, is_delta=False)]
    tool_index = 0
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            frames.extend(chunk({"content": piece}) for piece in word_chunks(block.text))
        elif isinstance(block, ThinkingBlock):
            frames.extend(chunk({"reasoning": piece}) for piece in word_chunks(block.thinking))
        else:
            head = {
                "index": tool_index,
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": ""},
            }
            frames.append(chunk({"tool_calls": [head]}))
            frames.extend(
                chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": piece}}]})
                for piece in json_pieces(_json(block.input))
            )
            tool_index += 1
    frames.append(chunk({}, chat_finish_reason(reply, is_claude), is_delta=False))
    if include_usage:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": chat_usage(reply, input_tokens),
        }
        frames.append(Frame(f"data: {_json(payload)}\n\n".encode()))
    frames.append(Frame(b"data: [DONE]\n\n"))
    return frames
