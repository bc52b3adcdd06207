"""A scripted :class:`Reply` as Cortex's Responses API would send it: a ``response`` or its events.

The event sequence is OpenAI's (the API Cortex's preview is documented as compatible with):
``response.created``, ``response.in_progress``, then per output item ``response.output_item.added``
… ``response.output_item.done`` (reasoning as a summary, text as an ``output_text`` part with
``output_text.delta``/``.done``, function calls with ``function_call_arguments.delta``/``.done``,
custom tool calls with ``custom_tool_call_input.delta``/``.done``), and ``response.completed``
(``response.incomplete`` when the reply was cut by the output limit). Every event carries a
``sequence_number`` counted from 0. A call to a tool the request offered as ``custom`` is rendered as
a ``custom_tool_call`` whose input is the reply's ``input`` string.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from .rendering import Frame, json_pieces, word_chunks
from .replies import Reply, TextBlock, ThinkingBlock, ToolUseBlock


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _custom_tools(request: dict[str, Any]) -> set[str]:
    return {
        tool.get("name")
        for tool in request.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "custom"
    }


def _items(reply: Reply, request: dict[str, Any]) -> list[dict[str, Any]]:
    custom = _custom_tools(request)
    items: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, ThinkingBlock):
            summary = [{"type": "summary_text", "text": block.thinking}]
            items.append({"id": _new_id("rs"), "type": "reasoning", "summary": summary})
        elif isinstance(block, TextBlock):
            items.append(
                {
                    "id": _new_id("msg"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": block.text, "annotations": []}],
                }
            )
        elif isinstance(block, ToolUseBlock) and block.name in custom:
            raw = block.input.get("input")
            items.append(
                {
                    "id": _new_id("ctc"),
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": block.id,
                    "name": block.name,
                    "input": raw if isinstance(raw, str) else json.dumps(block.input),
                }
            )
        else:
            items.append(
                {
                    "id": _new_id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": block.id,
                    "name": block.name,
                    "arguments": json.dumps(block.input, separators=(",", ":")),
                }
            )
    return items


def _usage(reply: Reply, input_tokens: int) -> dict[str, Any]:
    prompt = reply.input_tokens if reply.input_tokens is not None else input_tokens
    prompt += reply.cache_read_tokens
    output = reply.estimated_output_tokens()
    reasoning = sum(len(b.thinking) // 4 for b in reply.blocks if isinstance(b, ThinkingBlock))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": reply.cache_read_tokens},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }


def _response(
    reply: Reply, request: dict[str, Any], model: str, input_tokens: int
) -> dict[str, Any]:
    cut = reply.resolved_stop_reason == "max_tokens"
    return {
        "id": _new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if cut else "completed",
        "model": model,
        "output": _items(reply, request),
        "usage": _usage(reply, input_tokens),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": request.get("reasoning"),
        "store": False,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "text": request.get("text") or {"format": {"type": "text"}},
        "truncation": "disabled",
    }


def response_json(
    reply: Reply, request: dict[str, Any], model: str, input_tokens: int
) -> dict[str, Any]:
    return _response(reply, request, model, input_tokens)


class _Events:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def emit(self, kind: str, *, is_delta: bool = False, **payload: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.frames), **payload}
        text = json.dumps(data, separators=(",", ":"))
        self.frames.append(Frame(f"event: {kind}\ndata: {text}\n\n".encode(), is_delta))


def response_stream(
    reply: Reply, request: dict[str, Any], model: str, input_tokens: int
) -> list[Frame]:
    final = _response(reply, request, model, input_tokens)
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    events = _Events()
    events.emit("response.created", response=start)
    events.emit("response.in_progress", response=start)
    for index, item in enumerate(final["output"]):
        _item_events(events, index, item)
    ending = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    events.emit(ending, response=final)
    return events.frames


def _item_events(events: _Events, index: int, item: dict[str, Any]) -> None:
    where = {"item_id": item["id"], "output_index": index}
    kind = item["type"]
    if kind == "reasoning":
        text = item["summary"][0]["text"]
        events.emit("response.output_item.added", output_index=index, item={**item, "summary": []})
        part = {"type": "summary_text", "text": ""}
        events.emit("response.reasoning_summary_part.added", **where, summary_index=0, part=part)
        for piece in word_chunks(text):
            events.emit(
                "response.reasoning_summary_text.delta",
                is_delta=True,
                **where,
                summary_index=0,
                delta=piece,
            )
        events.emit("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
        part = {"type": "summary_text", "text": text}
        events.emit("response.reasoning_summary_part.done", **where, summary_index=0, part=part)
    elif kind == "message":
        text = item["content"][0]["text"]
        added = {**item, "status": "in_progress", "content": []}
        events.emit("response.output_item.added", output_index=index, item=added)
        part = {"type": "output_text", "text": "", "annotations": []}
        events.emit("response.content_part.added", **where, content_index=0, part=part)
        for piece in word_chunks(text):
            events.emit(
                "response.output_text.delta",
                is_delta=True,
                **where,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        events.emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
        part = {"type": "output_text", "text": text, "annotations": []}
        events.emit("response.content_part.done", **where, content_index=0, part=part)
    elif kind == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
        events.emit("response.output_item.added", output_index=index, item=added)
        for piece in json_pieces(item["arguments"]):
            events.emit(
                "response.function_call_arguments.delta", is_delta=True, **where, delta=piece
            )
        events.emit(
            "response.function_call_arguments.done",
            **where,
            name=item["name"],
            arguments=item["arguments"],
        )
    else:  # custom_tool_call
        added = {**item, "status": "in_progress", "input": ""}
        events.emit("response.output_item.added", output_index=index, item=added)
        for piece in word_chunks(item["input"]):
            events.emit(
                "response.custom_tool_call_input.delta", is_delta=True, **where, delta=piece
            )
        events.emit("response.custom_tool_call_input.done", **where, input=item["input"])
    events.emit("response.output_item.done", output_index=index, item=item)
