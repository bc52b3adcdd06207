"""A :class:`Reply` rendered as Cortex's older ``POST /api/v2/cortex/inference:complete`` sends it.

Streaming (the endpoint's default: ``stream`` defaults to true in Snowflake's OpenAPI spec) is SSE
with ``data:`` lines only, no ``event:`` names and no ``[DONE]``. Each chunk is
``{"id", "model", "choices": [{"delta": {...}}]}``:

- text: ``{"type": "text", "content": piece, "text": piece, "content_list": [{"type": "text",
  "text": piece}]}`` (the same piece three times, as Cortex sends it);
- a tool call: one declaration delta ``{"type": "tool_use", "tool_use_id", "name", ...}`` then
  partial-JSON deltas ``{"type": "tool_use", "input": "<piece>"}`` that carry no id nor index;
- usage (``prompt_tokens``, ``completion_tokens``, ``total_tokens`` and the cache counters of the
  SDK's ``Usage`` model) only on the last chunk; earlier chunks carry none.

Non-streaming (``stream: false``) is the spec's ``NonStreamingCompleteResponse``:
``{"choices": [{"message": {"content", "content_list"}}], "usage": {...}}``, with tool calls in
``content_list`` as ``{"type": "tool_use", "tool_use": {"tool_use_id", "name", "input"}}``.
The spec's generated model (snowflake.core 1.13) also has a top-level ``finish_reason`` whose values
are not documented; the emulator sends ``stop``, ``tool_use`` or ``length`` there (inferred).

Thinking blocks are not rendered: the endpoint only streams them when asked through its
``anthropic.thinking`` option, which the emulator does not model.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .rendering import Frame, json_pieces, word_chunks
from .replies import Reply, TextBlock, ToolUseBlock


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def complete_usage(reply: Reply, input_tokens: int) -> dict[str, int]:
    prompt = reply.input_tokens if reply.input_tokens is not None else input_tokens
    completion = reply.estimated_output_tokens()
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
    }


def finish_reason(reply: Reply) -> str:
    stop = reply.resolved_stop_reason
    return {"tool_use": "tool_use", "max_tokens": "length"}.get(stop, "stop")


def complete_json(reply: Reply, model: str, input_tokens: int) -> dict[str, Any]:
    texts: list[str] = []
    content_list: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
            content_list.append({"type": "text", "text": block.text})
        elif isinstance(block, ToolUseBlock):
            call = {"tool_use_id": block.id, "name": block.name, "input": block.input}
            content_list.append({"type": "tool_use", "tool_use": call})
    return {
        "id": str(uuid.uuid4()),
        "model": model,
        "choices": [{"message": {"content": "".join(texts), "content_list": content_list}}],
        "finish_reason": finish_reason(reply),
        "usage": complete_usage(reply, input_tokens),
    }


def complete_stream(reply: Reply, model: str, input_tokens: int) -> list[Frame]:
    completion_id = str(uuid.uuid4())
    deltas: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            deltas.extend(
                {
                    "type": "text",
                    "content": piece,
                    "text": piece,
                    "content_list": [{"type": "text", "text": piece}],
                }
                for piece in word_chunks(block.text)
            )
        elif isinstance(block, ToolUseBlock):
            declaration = {"tool_use_id": block.id, "name": block.name}
            deltas.append(
                {
                    "type": "tool_use",
                    **declaration,
                    "content_list": [{"type": "tool_use", **declaration}],
                    "text": "",
                }
            )
            deltas.extend(
                {
                    "type": "tool_use",
                    "input": piece,
                    "content_list": [{"type": "tool_use", "input": piece}],
                    "text": "",
                }
                for piece in json_pieces(_json(block.input))
            )
    if not deltas:  # an empty answer still sends one (empty) text chunk
        deltas.append({"type": "text", "content": "", "text": "", "content_list": []})
    frames = []
    for index, delta in enumerate(deltas):
        payload: dict[str, Any] = {
            "id": completion_id,
            "model": model,
            "choices": [{"delta": delta}],
        }
        if index == len(deltas) - 1:
            payload["usage"] = complete_usage(reply, input_tokens)
        frames.append(Frame(f"data: {_json(payload)}\n\n".encode(), is_delta=True))
    return frames
