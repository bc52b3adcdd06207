"""Property tests: Anthropic ⇄ Chat Completions translation never loses a tool id, argument or text.

Hypothesis builds conversations (texts, tool calls with nested JSON inputs, tool results as strings
or blocks, failed tools) and answers (texts and tool calls, streamed in arbitrary pieces); the
translation both ways must keep every id, every argument and every piece of text.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_cortex_claude.gateway.anthropic_chat_answer import (
    ChatStreamTranslator,
    chat_completion_to_anthropic,
    sse_frame,
    text_delta_frame,
)
from jupyter_cortex_claude.gateway.anthropic_chat_request import anthropic_to_chat_request
from jupyter_cortex_claude.gateway.sse import SSESplitter, event_json, event_name
from jupyter_cortex_claude.snowflake.models import ModelCatalogue

CATALOGUE = ModelCatalogue()
TOOL_MODELS = ["openai-gpt-4.1", "claude-sonnet-4-5"]

texts = st.text(min_size=1, max_size=40).filter(lambda text: text.strip() != "")
names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,15}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
tool_inputs = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=5)


@st.composite
def tool_calls(draw: st.DrawFn, prefix: str) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 3))
    ids = draw(
        st.lists(
            st.from_regex(rf"{prefix}[A-Za-z0-9]{{6,16}}", fullmatch=True),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    return [{"id": id_, "name": draw(names), "input": draw(tool_inputs)} for id_ in ids]


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(texts)}]
    for turn in range(draw(st.integers(0, 3))):
        calls = draw(tool_calls(f"tooluse_{turn}_"))
        assistant: list[dict[str, Any]] = []
        if draw(st.booleans()) or not calls:
            assistant.append({"type": "text", "text": draw(texts)})
        assistant += [{"type": "tool_use", **call} for call in calls]
        messages.append({"role": "assistant", "content": assistant})
        user: list[dict[str, Any]] = []
        for call in calls:
            result = draw(texts)
            content: Any = result if draw(st.booleans()) else [{"type": "text", "text": result}]
            block = {"type": "tool_result", "tool_use_id": call["id"], "content": content}
            if draw(st.booleans()):
                block["is_error"] = True
            user.append(block)
        if draw(st.booleans()) or not user:
            user.append({"type": "text", "text": draw(texts)})
        messages.append({"role": "user", "content": user})
    return messages


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [])


@settings(max_examples=80, deadline=None)
@given(messages=conversations(), model=st.sampled_from(TOOL_MODELS), stream=st.booleans())
def test_a_translated_request_keeps_every_tool_id_argument_and_text(
    messages: list[dict[str, Any]], model: str, stream: bool
) -> None:
    body = {"model": model, "max_tokens": 1000, "messages": messages, "stream": stream}
    request = anthropic_to_chat_request(body, cortex_model=model, model=CATALOGUE.get(model))
    sent = request["messages"]
    all_text = "\n".join(_text_of(message.get("content")) for message in sent)

    calls = {
        call["id"]: call
        for message in sent
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    }
    results = {message["tool_call_id"]: message for message in sent if message["role"] == "tool"}
    for message in messages:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block["type"] == "tool_use":
                call = calls[block["id"]]
                assert call["function"]["name"] == block["name"]
                assert json.loads(call["function"]["arguments"]) == block["input"]
            elif block["type"] == "tool_result":
                result = _text_of(results[block["tool_use_id"]]["content"])
                assert _text_of(block["content"]) in result
                assert result.startswith("Error: ") == bool(block.get("is_error"))
            else:
                assert block["text"] in all_text
        if isinstance(message["content"], str):
            assert message["content"] in all_text
    # Chat Completions order: every tool message right after the calls it answers.
    for index, message in enumerate(sent):
        if message["role"] == "tool":
            before = sent[index - 1]
            assert before["role"] == "tool" or message["tool_call_id"] in {
                call["id"] for call in before.get("tool_calls") or []
            }


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    text = draw(st.text(max_size=60))
    return text, draw(tool_calls("call_"))


def _completion(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["input"])},
            }
            for call in calls
        ]
    return {"choices": [{"index": 0, "message": message}], "usage": {"prompt_tokens": 7}}


@settings(max_examples=80, deadline=None)
@given(answer=answers())
def test_a_translated_answer_keeps_every_tool_id_argument_and_text(
    answer: tuple[str, list[dict[str, Any]]],
) -> None:
    text, calls = answer
    message = chat_completion_to_anthropic(_completion(text, calls), client_model="m")
    assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == text
    uses = [b for b in message["content"] if b["type"] == "tool_use"]
    assert [(u["id"], u["name"], u["input"]) for u in uses] == [
        (c["id"], c["name"], c["input"]) for c in calls
    ]
    assert message["stop_reason"] == ("tool_use" if calls else "end_turn")


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _read_anthropic_stream(frames: list[bytes]) -> tuple[list[dict[str, Any]], str | None]:
    """Rebuild the content blocks from SSE frames, checking Anthropic's block discipline."""
    splitter = SSESplitter()
    events = splitter.feed(b"".join(frames))
    assert splitter.pending == b""
    names_seen = [event_name(event) for event in events]
    assert names_seen[:2] == ["message_start", "ping"]
    assert names_seen[-2:] == ["message_delta", "message_stop"]
    blocks: list[dict[str, Any]] = []
    open_index: int | None = None
    stop_reason = None
    for event in events:
        payload = event_json(event)
        kind = payload["type"]
        if kind == "content_block_start":
            assert open_index is None and payload["index"] == len(blocks)
            open_index = payload["index"]
            blocks.append({**payload["content_block"], "json": ""})
        elif kind == "content_block_delta":
            assert payload["index"] == open_index
            delta = payload["delta"]
            block = blocks[payload["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                block["json"] += delta["partial_json"]
        elif kind == "content_block_stop":
            assert payload["index"] == open_index
            open_index = None
        elif kind == "message_delta":
            stop_reason = payload["delta"]["stop_reason"]
    assert open_index is None
    return blocks, stop_reason


@settings(max_examples=80, deadline=None)
@given(answer=answers(), data=st.data())
def test_a_translated_stream_keeps_every_tool_id_argument_and_text(
    answer: tuple[str, list[dict[str, Any]]], data: st.DataObject
) -> None:
    text, calls = answer
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    for piece in _pieces(data.draw, text):
        chunks.append({"choices": [{"index": 0, "delta": {"content": piece}}]})
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "function": {"name": call["name"]}}
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]})
        for piece in _pieces(data.draw, json.dumps(call["input"])):
            delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            chunks.append({"choices": [{"index": 0, "delta": delta}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

    translator = ChatStreamTranslator(client_model="m")
    frames = [frame for chunk in chunks for frame in translator.feed(chunk)]
    blocks, stop_reason = _read_anthropic_stream([*frames, *translator.finish()])

    assert "".join(b["text"] for b in blocks if b["type"] == "text") == text
    uses = [b for b in blocks if b["type"] == "tool_use"]
    assert [(u["id"], u["name"], json.loads(u["json"] or "{}")) for u in uses] == [
        (c["id"], c["name"], c["input"]) for c in calls
    ]
    assert stop_reason == ("tool_use" if calls else "end_turn")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(["text", "thinking"]), st.text())
def test_the_fast_text_delta_frame_is_byte_for_byte_the_general_one(
    index: int, kind: str, text: str
) -> None:
    delta = {"type": f"{kind}_delta", kind: text}
    general = sse_frame(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )
    assert text_delta_frame(index, kind, text) == general
