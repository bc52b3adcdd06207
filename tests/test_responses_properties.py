"""Property tests: Responses ⇄ Chat Completions translation never loses an item, id, argument or text.

Hypothesis builds Responses inputs as Codex sends them (developer and user messages, assistant text,
function calls to plain, namespaced and custom tools, their outputs as strings or parts) and runs
them through the request translation; each assistant turn is then answered back as Cortex would
(a chat completion, and the same answer streamed in arbitrary byte pieces) through the answer
conversion. Every item must come back with its call id, name, namespace, arguments and text.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_cortex_claude.gateway.cortex_chat import completion_as_chunks
from jupyter_cortex_claude.gateway.cortex_responses_request import shape_cortex_responses_request
from jupyter_cortex_claude.gateway.model_ids import resolve_model
from jupyter_cortex_claude.gateway.openai_chat_answer import data_line
from jupyter_cortex_claude.gateway.openai_chat_request import ChatShapingPolicy, shape_chat_request
from jupyter_cortex_claude.gateway.openai_responses_answer import ResponsesAnswer
from jupyter_cortex_claude.gateway.openai_responses_request import responses_to_chat
from jupyter_cortex_claude.gateway.sse import SSESplitter, event_json
from jupyter_cortex_claude.snowflake.models import ModelCatalogue
from jupyter_cortex_claude.testing.catalogue import ModelTable
from jupyter_cortex_claude.testing.responses_validation import validate_responses_request

texts = st.text(min_size=1, max_size=30).filter(lambda text: text.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4)

FUNCTIONS = ["exec_command", "write_stdin", "view_image"]
NAMESPACED = [("multi_agent_v1", "spawn_agent"), ("multi_agent_v1", "wait_agent")]
CUSTOM = ["apply_patch"]
TOOLS: list[dict[str, Any]] = [
    *({"type": "function", "name": name, "parameters": {"type": "object"}} for name in FUNCTIONS),
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "agents",
        "tools": [
            {"type": "function", "name": name, "parameters": {"type": "object"}}
            for _, name in NAMESPACED
        ],
    },
    {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark"}},
    {"type": "web_search"},
]


@st.composite
def calls(draw: st.DrawFn, turn: int) -> list[dict[str, Any]]:
    items = []
    for number in range(draw(st.integers(0, 3))):
        call_id = f"call_{turn}_{number}_" + draw(
            st.from_regex(r"[A-Za-z0-9]{4,10}", fullmatch=True)
        )
        kind = draw(st.sampled_from(["function", "namespaced", "custom"]))
        if kind == "custom":
            items.append(
                {
                    "type": "custom_tool_call",
                    "id": f"ctc_{turn}_{number}",
                    "call_id": call_id,
                    "name": "apply_patch",
                    "input": draw(st.text(max_size=60)),
                }
            )
            continue
        item = {
            "type": "function_call",
            "id": f"fc_{turn}_{number}",
            "call_id": call_id,
            "arguments": json.dumps(draw(arguments)),
            "status": "completed",
        }
        if kind == "namespaced":
            item["namespace"], item["name"] = draw(st.sampled_from(NAMESPACED))
        else:
            item["name"] = draw(st.sampled_from(FUNCTIONS))
        items.append(item)
    return items


def output_for(call: dict[str, Any], value: Any) -> dict[str, Any]:
    kind = (
        "custom_tool_call_output" if call["type"] == "custom_tool_call" else "function_call_output"
    )
    return {
        "type": kind,
        "id": "out_" + call["call_id"],
        "call_id": call["call_id"],
        "output": value,
    }


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Codex's input: developer messages, the user's request, then turns of text and tool calls."""
    items: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": draw(texts)}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": draw(texts)}],
        },
    ]
    for turn in range(draw(st.integers(0, 3))):
        answer: list[dict[str, Any]] = []
        made = draw(calls(turn))
        if draw(st.booleans()) or not made:
            answer.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": draw(texts)}],
                }
            )
        answer.extend(made)
        items.extend(answer)
        for call in made:
            output = draw(
                st.one_of(
                    texts,
                    st.lists(
                        texts.map(lambda t: {"type": "input_text", "text": t}),
                        min_size=1,
                        max_size=2,
                    ),
                )
            )
            items.append(output_for(call, output))
        if draw(st.booleans()) or not made:
            items.append({"type": "message", "role": "user", "content": draw(texts)})
    return items


def essence(item: dict[str, Any]) -> dict[str, Any]:
    """What must survive of an item (ids of Codex's own input items are not sent upstream)."""
    if item["type"] == "message":
        content = item["content"]
        text = content if isinstance(content, str) else "".join(p["text"] for p in content)
        return {"type": "message", "text": text}
    if item["type"] == "custom_tool_call":
        return {key: item[key] for key in ("type", "call_id", "name", "input")}
    kept = {key: item[key] for key in ("type", "call_id", "name", "arguments")}
    if item.get("namespace"):
        kept["namespace"] = item["namespace"]
    return kept


def answer_settings(translation: Any) -> dict[str, Any]:
    return {"client_model": "m", "tools": translation.tools, "max_completion_tokens": 4096}


def completion_of(message: dict[str, Any]) -> dict[str, Any]:
    """The chat completion Cortex would have sent for this assistant message."""
    answer = {key: message[key] for key in ("content", "tool_calls") if message.get(key)}
    return {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **answer}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def streamed_bytes(completion: dict[str, Any], pieces: int) -> bytes:
    """The completion as Cortex streams it: every argument string split into ``pieces``."""
    frames = []
    for chunk in completion_as_chunks(completion):
        for choice in chunk.get("choices", []):
            calls = choice["delta"].pop("tool_calls", None) or []
            frames.append(data_line(chunk))
            for call in calls:
                whole = call["function"]["arguments"]
                step = max(1, len(whole) // pieces)
                parts = [whole[i : i + step] for i in range(0, len(whole), step)] or [""]
                for number, part in enumerate(parts):
                    delta = {"index": call["index"], "function": {"arguments": part}}
                    if number == 0:
                        delta.update(id=call["id"], type="function")
                        delta["function"]["name"] = call["function"]["name"]
                    frames.append(
                        data_line(
                            {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}
                        )
                    )
        if not chunk.get("choices"):
            frames.append(data_line(chunk))
    return b"".join(frames) + b"data: [DONE]\n\n"


def assistant_runs(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The consecutive assistant items (text and calls) of the history: one answer each."""
    runs: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for item in items:
        if item.get("role") == "assistant" or item["type"] in ("function_call", "custom_tool_call"):
            if current and item.get("role") == "assistant":
                runs.append(current)
                current = []
            current.append(item)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(1, 7), st.data())
def test_responses_items_survive_the_trip_through_chat_completions(
    items: list[dict[str, Any]], pieces: int, data: st.DataObject
) -> None:
    translation = responses_to_chat({"model": "m", "input": items, "tools": TOOLS, "stream": True})
    messages = translation.chat_body["messages"]
    assert translation.dropped_tools == ["web_search"]

    # Non-assistant items: the same text, role and call ids, in the same order.
    others = [
        item
        for item in items
        if (item["type"] == "message" and item.get("role") != "assistant")
        or item["type"].endswith("_output")
    ]
    sent_others = [message for message in messages if message["role"] != "assistant"]
    assert len(others) == len(sent_others)
    for item, message in zip(others, sent_others, strict=True):
        if item["type"] == "message":
            assert message["role"] == ("system" if item["role"] == "developer" else item["role"])
            content = message["content"]
            text = content if isinstance(content, str) else "".join(p["text"] for p in content)
            assert text == essence(item)["text"]
        else:
            assert message["tool_call_id"] == item["call_id"]
            output = item["output"]
            expected = (
                output
                if isinstance(output, str)
                else [{"type": "text", "text": p["text"]} for p in output]
            )
            assert message["content"] == expected

    # Assistant items: answered back by the answer conversion, streamed and not, unchanged.
    assistants = [message for message in messages if message["role"] == "assistant"]
    runs = assistant_runs(items)
    assert len(assistants) == len(runs)
    for message, run in zip(assistants, runs, strict=True):
        completion = completion_of(message)
        whole, _ = ResponsesAnswer.from_completion(completion, **answer_settings(translation))
        assert [essence(item) for item in whole.response()["output"]] == [
            essence(item) for item in run
        ]

        streamed = ResponsesAnswer(**answer_settings(translation))
        raw = streamed_bytes(completion, pieces)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
        out = b""
        for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
            out += streamed.feed(raw[start:end])
        out += streamed.finish()
        events = [event_json(event) for event in SSESplitter().feed(out)]
        assert [event["sequence_number"] for event in events] == list(range(len(events)))
        assert events[-1]["type"] == "response.completed"
        final = events[-1]["response"]["output"]
        assert [essence(item) for item in final] == [essence(item) for item in run]
        done = [event["item"] for event in events if event["type"] == "response.output_item.done"]
        assert done == final


# --- the opt-in upstream: Cortex's own Responses API --------------------------------------------

CATALOGUE = ModelCatalogue()
CHAT_POLICY = ChatShapingPolicy(
    catalogue=CATALOGUE,
    model_map={},
    family_models={},
    default_model="openai-gpt-5",
    resolve=functools.partial(
        resolve_model,
        model_map={},
        family_models={},
        default_model="openai-gpt-5",
        catalogue=CATALOGUE,
    ),
)
EMULATED_MODELS = ModelTable(None, 16384, None)


@given(histories(), st.sampled_from([None, "minimal", "xhigh"]), st.integers(1, 200_000))
@settings(max_examples=60, deadline=None)
def test_random_codex_inputs_shaped_for_cortex_responses_are_accepted_and_keep_every_call(
    items: list[dict[str, Any]], effort: str | None, limit: int
) -> None:
    body: dict[str, Any] = {
        "model": "openai-gpt-5",
        "input": items,
        "tools": TOOLS,
        "stream": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "max_output_tokens": limit,
        "reasoning": {"summary": "auto", **({"effort": effort} if effort else {})},
    }
    translation = responses_to_chat(body)
    chat = shape_chat_request(translation.chat_body, CHAT_POLICY)
    shaped = shape_cortex_responses_request(body, translation, chat)
    validate_responses_request(shaped.body, EMULATED_MODELS)  # raises on a refusal
    sent_calls = [item for item in shaped.body["input"] if item["type"].endswith("call")]
    made = [item for item in items if item.get("type", "").endswith("call")]
    assert [call["call_id"] for call in sent_calls] == [call["call_id"] for call in made]
    for sent, original in zip(sent_calls, made, strict=True):
        name = original["name"]
        if original.get("namespace"):
            name = f"{original['namespace']}__{name}"
        assert sent["name"] == name
        assert sent.get("arguments", sent.get("input")) == original.get(
            "arguments", original.get("input")
        )
    texts_sent = json.dumps(shaped.body["input"])
    for item in items:
        for part in item.get("content") or []:
            if isinstance(part, dict):
                assert json.dumps(part["text"])[1:-1] in texts_sent
