"""An OpenAI client calls our chat completions endpoint; Cortex gets a request it accepts.

Every shaping rule, the finish_reason Cortex leaves out for Claude (streamed and not), and the real
openai SDK reading the fixed stream from a local server.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import openai
import pytest

from jupyter_cortex_claude.errors import GatewayError
from jupyter_cortex_claude.gateway.cortex_chat import is_conversation_complete_error
from jupyter_cortex_claude.gateway.model_ids import resolve_model
from jupyter_cortex_claude.gateway.openai_chat_answer import (
    FinishReasonFixer,
    empty_stop_chunks,
    empty_stop_completion,
    fill_in_chat_completion,
)
from jupyter_cortex_claude.gateway.openai_chat_request import (
    ChatShapingPolicy,
    ShapedChatRequest,
    answer_for_prefill,
    shape_chat_request,
)
from jupyter_cortex_claude.snowflake.models import ModelCatalogue

from .canned_server import CannedServer
from .conftest import SdkClients

CATALOGUE = ModelCatalogue()
MODEL_MAP = {"house-model": "openai-gpt-4.1"}
FAMILY_MODELS = {"sonnet": "claude-sonnet-4-5"}
POLICY = ChatShapingPolicy(
    catalogue=CATALOGUE,
    model_map=MODEL_MAP,
    family_models=FAMILY_MODELS,
    default_model="claude-sonnet-4-5",
    resolve=functools.partial(
        resolve_model,
        model_map=MODEL_MAP,
        family_models=FAMILY_MODELS,
        default_model="claude-sonnet-4-5",
        catalogue=CATALOGUE,
    ),
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
HELLO = [{"role": "user", "content": "hi"}]


def shape(**body: Any) -> ShapedChatRequest:
    body.setdefault("model", "openai-gpt-4.1")
    body.setdefault("messages", HELLO)
    return shape_chat_request(body, POLICY)


def refused(body: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        shape_chat_request(body, POLICY)
    assert caught.value.status == 400
    return caught.value


# --- shaping --------------------------------------------------------------------------------------


def test_the_client_model_is_resolved_and_remembered() -> None:
    shaped = shape(model="house-model")
    assert shaped.body["model"] == "openai-gpt-4.1"
    assert (shaped.client_model, shaped.cortex_model) == ("house-model", "openai-gpt-4.1")
    assert "model house-model -> openai-gpt-4.1" in shaped.changes
    assert shape(model="claude-sonnet-4-5-20250929").cortex_model == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("body", "sent", "effective"),
    [
        ({"max_tokens": 500}, 500, 500),
        ({"max_tokens": 100000}, 16384, 16384),
        ({"max_completion_tokens": 700, "max_tokens": 9}, 700, 700),
        ({"max_completion_tokens": 50000}, 16384, 16384),
        ({}, None, 4096),  # neither asked: Cortex's default applies, nothing is sent
    ],
)
def test_max_tokens_becomes_a_clamped_max_completion_tokens(
    body: dict[str, Any], sent: int | None, effective: int
) -> None:
    shaped = shape(**body)
    assert "max_tokens" not in shaped.body
    assert shaped.body.get("max_completion_tokens") == sent
    assert shaped.max_completion_tokens == effective


def test_openai_platform_fields_cortex_refuses_are_removed() -> None:
    dropped = {
        "store": True,
        "service_tier": "flex",
        "logprobs": True,
        "top_logprobs": 3,
        "parallel_tool_calls": False,
        "user": "u-1",
        "metadata": {"a": "b"},
        "prediction": {"type": "content", "content": "x"},
        "modalities": ["text"],
        "audio": {"voice": "alloy"},
        "n": 1,
    }
    shaped = shape(temperature=0.3, **dropped)
    for name in dropped:
        assert name not in shaped.body
    assert shaped.body["temperature"] == 0.3
    assert "removed store" in shaped.changes


def test_more_than_one_choice_is_refused() -> None:
    error = refused({"model": "openai-gpt-4.1", "messages": HELLO, "n": 2})
    assert "Cortex returns a single choice" in error.message


def test_tools_for_a_model_that_cannot_call_them_are_refused_before_cortex() -> None:
    error = refused({"model": "llama3.1-70b", "messages": HELLO, "tools": [WEATHER_TOOL]})
    assert "llama3.1-70b cannot call tools on Cortex" in error.message
    assert "pick a model that can" in error.message
    assert error.openai_body()["error"]["param"] == "tools"
    assert shape(tools=[WEATHER_TOOL]).body["tools"] == [WEATHER_TOOL]


def test_images_for_a_model_that_cannot_see_are_refused() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    content = [{"type": "text", "text": "what?"}, image]
    error = refused({"model": "mistral-large2", "messages": [{"role": "user", "content": content}]})
    assert "cannot read images" in error.message
    assert (
        shape(messages=[{"role": "user", "content": content}]).body["messages"][0]["content"]
        == content
    )


def test_cache_control_is_kept_for_claude_and_removed_for_others() -> None:
    part = {"type": "text", "text": "big context", "cache_control": {"type": "ephemeral"}}
    messages = [{"role": "user", "content": [part]}]
    assert shape(model="claude-sonnet-4-5", messages=messages).body["messages"][0]["content"] == [
        part
    ]
    assert shape(messages=messages).body["messages"][0]["content"] == [
        {"type": "text", "text": "big context"}
    ]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai-gpt-5", {"reasoning_effort": "high"}),
        ("claude-sonnet-4-5", {"reasoning": {"effort": "high"}}),
        ("llama4-maverick", {}),
    ],
)
def test_reasoning_effort_takes_each_familys_form(model: str, expected: dict[str, Any]) -> None:
    body = shape(model=model, reasoning_effort="high").body
    assert {key: body[key] for key in ("reasoning", "reasoning_effort") if key in body} == expected


@pytest.mark.parametrize(
    ("stream_options", "wants_usage"),
    [(None, False), ({"include_usage": False}, False), ({"include_usage": True}, True)],
)
def test_a_stream_always_asks_cortex_for_usage(stream_options: Any, wants_usage: bool) -> None:
    body: dict[str, Any] = {"stream": True}
    if stream_options is not None:
        body["stream_options"] = stream_options
    shaped = shape(**body)
    assert shaped.stream is True
    assert shaped.body["stream_options"] == {"include_usage": True}
    assert shaped.client_wants_usage is wants_usage


def test_a_non_streaming_request_sends_no_stream_options() -> None:
    shaped = shape(stream_options={"include_usage": True})
    assert shaped.stream is False and shaped.client_wants_usage is False
    assert "stream_options" not in shaped.body


def test_the_developer_role_becomes_system() -> None:
    shaped = shape(messages=[{"role": "developer", "content": "Be terse."}, *HELLO])
    assert shaped.body["messages"][0] == {"role": "system", "content": "Be terse."}


def call(call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }


def test_a_complete_tool_round_trip_passes() -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call("c1"), call("c2")]},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "user", "content": "thanks"},
    ]
    assert shape(tools=[WEATHER_TOOL], messages=messages).body["messages"] == messages


def test_a_tool_result_for_an_unknown_call_is_refused_naming_it() -> None:
    error = refused(
        {"messages": [*HELLO, {"role": "tool", "tool_call_id": "ghost-7", "content": "x"}]}
    )
    assert "'ghost-7'" in error.message


@pytest.mark.parametrize(
    "after",
    [
        [{"role": "user", "content": "and?"}],
        [],  # the request ends on the unanswered call
    ],
)
def test_a_tool_call_left_without_its_result_is_refused_naming_it(after: list[Any]) -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "tool_calls": [call("c1"), call("c2")]},
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        *after,
    ]
    error = refused({"model": "openai-gpt-4.1", "messages": messages})
    assert "tool call c2 has no tool message" in error.message


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"model": "openai-gpt-4.1"},
        {"messages": []},
        {"messages": "hi"},
        {"messages": ["hi"]},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user", "content": 42}]},
        {"messages": [{"role": "user", "content": [3]}]},
        {"messages": HELLO, "model": 7},
        {"messages": HELLO, "max_tokens": "lots"},
        {"messages": HELLO, "max_tokens": 0},
        {"messages": HELLO, "max_completion_tokens": True},
        {"messages": HELLO, "stream": "yes"},
        {"messages": HELLO, "stream": True, "stream_options": "usage"},
        {"messages": HELLO, "tools": {"a": 1}},
        {"messages": [*HELLO, {"role": "assistant", "tool_calls": "c1"}]},
        {"messages": [*HELLO, {"role": "assistant", "tool_calls": [{"type": "function"}]}]},
    ],
)
def test_malformed_requests_are_a_400_never_a_crash(body: Any) -> None:
    refused(body)


def test_a_prefill_is_answered_without_cortex_with_an_empty_stop() -> None:
    shaped = shape(
        model="house-model", messages=[*HELLO, {"role": "assistant", "content": "Sure, here"}]
    )
    answer = answer_for_prefill(shaped)
    assert answer is not None
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "house-model"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer_for_prefill(shape()) is None


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (400, '{"message": "Conversation complete", "code": "390400"}', True),
        (400, '{"message": "unknown model foo"}', False),
        (500, "conversation complete", False),
    ],
)
def test_conversation_complete_is_recognised(status: int, text: str, expected: bool) -> None:
    assert is_conversation_complete_error(status, text) is expected


def test_empty_stop_answers_exist_for_both_modes() -> None:
    assert empty_stop_completion("m")["choices"][0]["finish_reason"] == "stop"
    chunks = empty_stop_chunks("m", include_usage=True)
    assert [c["choices"][0]["finish_reason"] if c["choices"] else "usage" for c in chunks] == [
        None,
        "stop",
        "usage",
    ]
    assert len(empty_stop_chunks("m", include_usage=False)) == 2


# --- finish_reason --------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-cortex",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": choices,
        **extra,
    }


def usage_chunk(completion_tokens: int) -> dict[str, Any]:
    usage = {"prompt_tokens": 10, "completion_tokens": completion_tokens}
    return chunk(None, usage={**usage, "total_tokens": 10 + completion_tokens})


TOOL_CALL_DELTA = {
    "tool_calls": [
        {
            "index": 0,
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"},
        }
    ]
}


def fix(
    chunks: list[dict[str, Any]],
    *,
    model: str = "claude-sonnet-4-5",
    limit: int = 100,
    wants_usage: bool = True,
) -> list[dict[str, Any]]:
    fixer = FinishReasonFixer(
        model=CATALOGUE.get(model),
        max_completion_tokens=limit,
        client_model="my-model",
        client_wants_usage=wants_usage,
    )
    out = [fixed for item in chunks for fixed in fixer.process(item)]
    return out + fixer.finish()


def finish_reasons(chunks: list[dict[str, Any]]) -> list[Any]:
    return [c["choices"][0]["finish_reason"] if c["choices"] else "usage" for c in chunks]


@pytest.mark.parametrize(
    ("deltas", "completion_tokens", "expected"),
    [
        ([{"content": "Hello"}], 3, "stop"),
        ([{"content": "Calling."}, TOOL_CALL_DELTA], 20, "tool_calls"),
        ([{"content": "very long"}], 100, "length"),
    ],
)
def test_claude_streams_get_a_finish_reason_just_before_usage(
    deltas: list[dict[str, Any]], completion_tokens: int, expected: str
) -> None:
    out = fix([*(chunk(d) for d in deltas), usage_chunk(completion_tokens)])
    assert finish_reasons(out) == [None] * len(deltas) + [expected, "usage"]
    final = out[-2]
    assert final["choices"][0]["delta"] == {}
    assert final["id"] == "chatcmpl-cortex" and final["created"] == 1700000000
    assert all(c["model"] == "my-model" for c in out)


def test_the_usage_chunk_is_forwarded_only_when_the_client_asked() -> None:
    out = fix([chunk({"content": "Hi"}), usage_chunk(1)], wants_usage=False)
    assert finish_reasons(out) == [None, "stop"]
    assert all("usage" not in c for c in out)


def test_a_finish_reason_cortex_did_send_is_kept() -> None:
    out = fix(
        [chunk({"content": "Hi"}), chunk({}, finish="stop"), usage_chunk(100)],
        model="mistral-large2",
    )
    assert finish_reasons(out) == [None, "stop", "usage"]


def test_without_a_usage_chunk_finish_supplies_the_finish_reason() -> None:
    assert finish_reasons(fix([chunk(TOOL_CALL_DELTA)])) == [None, "tool_calls"]


@pytest.mark.parametrize(
    ("message", "completion_tokens", "model", "cortex_finish", "expected"),
    [
        ({"role": "assistant", "content": "Hi"}, 3, "claude-sonnet-4-5", None, "stop"),
        (
            {"role": "assistant", "tool_calls": [call("c1")]},
            9,
            "claude-sonnet-4-5",
            None,
            "tool_calls",
        ),
        ({"role": "assistant", "content": "..."}, 100, "claude-sonnet-4-5", None, "length"),
        ({"role": "assistant", "content": "Hi"}, 100, "openai-gpt-4.1", "stop", "stop"),
    ],
)
def test_a_non_streaming_answer_is_completed(
    message: dict[str, Any],
    completion_tokens: int,
    model: str,
    cortex_finish: str | None,
    expected: str,
) -> None:
    choice: dict[str, Any] = {"index": 0, "message": message}
    if cortex_finish:
        choice["finish_reason"] = cortex_finish
    resp = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens},
    }
    completed = fill_in_chat_completion(
        resp, model=CATALOGUE.get(model), max_completion_tokens=100, client_model="my-model"
    )
    assert completed["model"] == "my-model"
    assert completed["choices"][0]["finish_reason"] == expected
    assert "content" in completed["choices"][0]["message"]
    assert resp["model"] == model  # the upstream answer is not edited in place


# --- the real openai SDK reads what we produce ----------------------------------------------------


def client_for(clients: SdkClients, server: CannedServer) -> openai.AsyncOpenAI:
    return clients.openai(f"{server.url}/v1", "unused")


async def test_the_openai_sdk_reads_a_fixed_claude_stream(
    sdk_clients: SdkClients, canned_server: CannedServer
) -> None:
    shaped = shape(model="sonnet", stream=True, stream_options={"include_usage": True})
    assert shaped.cortex_model == "claude-sonnet-4-5"
    tool_pieces = [
        {
            "index": 0,
            "id": "tooluse_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": '"Oslo"}'}},
    ]
    upstream = [
        chunk({"role": "assistant", "content": "Let me "}),
        chunk({"content": "check."}),
        *(chunk({"tool_calls": [piece]}) for piece in tool_pieces),
        usage_chunk(12),
    ]
    fixer = FinishReasonFixer(
        model=CATALOGUE.get(shaped.cortex_model),
        max_completion_tokens=shaped.max_completion_tokens,
        client_model=shaped.client_model,
        client_wants_usage=shaped.client_wants_usage,
    )
    fixed = [out for item in upstream for out in fixer.process(item)] + fixer.finish()
    canned_server.content_type = "text/event-stream"
    canned_server.payload = (
        b"".join(f"data: {json.dumps(item)}\n\n".encode() for item in fixed) + b"data: [DONE]\n\n"
    )

    stream = await client_for(sdk_clients, canned_server).chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, arguments, finish, usage = "", "", None, None
    async for event in stream:
        assert event.model == "sonnet"
        if event.usage:
            usage = event.usage
        for choice in event.choices:
            text += choice.delta.content or ""
            for tool_call in choice.delta.tool_calls or []:
                arguments += tool_call.function.arguments or ""  # type: ignore[union-attr]
            finish = choice.finish_reason or finish
    assert text == "Let me check."
    assert json.loads(arguments) == {"city": "Oslo"}
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens == 12


async def test_the_openai_sdk_reads_a_completed_answer(
    sdk_clients: SdkClients, canned_server: CannedServer
) -> None:
    resp = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    completed = fill_in_chat_completion(
        resp,
        model=CATALOGUE.get("claude-sonnet-4-5"),
        max_completion_tokens=4096,
        client_model="sonnet",
    )
    canned_server.payload = json.dumps(completed).encode()
    answer = await client_for(sdk_clients, canned_server).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.model == "sonnet"
    assert answer.choices[0].message.content == "Hi there"
    assert answer.choices[0].finish_reason == "stop"
