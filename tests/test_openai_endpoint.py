"""A user points the real openai SDK (as Cursor, Continue and Aider do) at Jupyter's OpenAI endpoint.

Every request goes through a real Jupyter server to the strict Cortex emulator, which, like Cortex,
leaves ``finish_reason`` out for Claude models and refuses ``max_tokens``, tools for Llama, and a
conversation that ends with an assistant message.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from jupyter_cortex_claude.gateway.model_list import model_names
from jupyter_cortex_claude.testing import CHAT_PATH, MODELS_PATH, Fault, Reply
from jupyter_cortex_claude.testing.catalogue import ModelTable

from .conftest import RunningGateway, emulator_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def cortex_claude_config(cortex_emulator: Any) -> dict[str, Any]:
    return emulator_config(cortex_emulator, model_map={"house-model": "openai-gpt-4.1"})


def chat_requests(gateway: RunningGateway) -> list[dict[str, Any]]:
    return [r.body for r in gateway.emulator.inference_requests() if r.path == CHAT_PATH]


# --- answers, streamed and not -------------------------------------------------------------------


async def test_a_streamed_claude_answer_ends_with_the_finish_reason_cortex_left_out(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Hello from Claude, in pieces."))
    stream = await running_gateway.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish_reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text == "Hello from Claude, in pieces."
    assert finish_reasons[-1] == "stop"
    assert [reason for reason in finish_reasons if reason] == ["stop"]
    # include_usage honoured: the last chunk has no choices and the usage.
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {chunk.model for chunk in chunks} == {"claude-sonnet-4-5"}


async def test_without_include_usage_the_client_gets_no_usage_chunk_but_the_ledger_does(
    running_gateway: RunningGateway,
) -> None:
    gateway = await running_gateway.service.get_gateway()
    records: list[Any] = []
    gateway.usage.on_usage = records.append
    running_gateway.emulator.script(Reply.text("Counted anyway."))
    stream = await running_gateway.openai().chat.completions.create(
        model="claude-haiku-4-5", messages=HELLO, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Upstream always asks for usage: the ledger needs it.
    assert chat_requests(running_gateway)[-1]["stream_options"] == {"include_usage": True}
    (record,) = records
    assert (record.endpoint, record.client_model, record.cortex_model) == (
        "openai",
        "claude-haiku-4-5",
        "claude-haiku-4-5",
    )
    assert record.input_tokens > 0 and record.output_tokens > 0
    assert record.status == 200


async def test_a_non_streamed_claude_answer_has_finish_reason_and_usage(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Plain and whole."))
    completion = await running_gateway.openai().chat.completions.create(
        model="claude-sonnet-4-5", messages=HELLO
    )
    assert completion.choices[0].message.content == "Plain and whole."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "claude-sonnet-4-5"
    assert completion.usage is not None and completion.usage.total_tokens > 0


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "openai-gpt-4.1"])
async def test_a_tool_round_trip_without_streaming(
    running_gateway: RunningGateway, model: str
) -> None:
    running_gateway.emulator.script(
        Reply.tool_use("get_weather", {"city": "Oslo"}), Reply.text("It is sunny in Oslo.")
    )
    client = running_gateway.openai()
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "It is sunny in Oslo."
    assert second.choices[0].finish_reason == "stop"
    sent = chat_requests(running_gateway)[-1]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "openai-gpt-4.1"])
async def test_a_streamed_tool_round_trip(running_gateway: RunningGateway, model: str) -> None:
    running_gateway.emulator.script(
        Reply.tools([("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen"})]),
        Reply.text("Sunny in both."),
    )
    client = running_gateway.openai()
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo and Bergen?"}]
    stream = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish_reasons = []
    async for chunk in stream:
        for choice in chunk.choices:
            finish_reasons.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function and delta.function.name) or ""
                call["arguments"] += (delta.function and delta.function.arguments) or ""
    assert [reason for reason in finish_reasons if reason] == ["tool_calls"]
    assert [json.loads(c["arguments"]) for c in calls.values()] == [
        {"city": "Oslo"},
        {"city": "Bergen"},
    ]

    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls.values()
            ],
        }
    )
    messages += [
        {"role": "tool", "tool_call_id": c["id"], "content": "sunny"} for c in calls.values()
    ]
    stream = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Sunny in both."
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


# --- shaping Cortex needs --------------------------------------------------------------------------


async def test_max_tokens_becomes_max_completion_tokens_clamped_and_refused_fields_go(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("ok"))
    await running_gateway.openai().chat.completions.create(
        model="openai-gpt-4.1",
        messages=HELLO,
        max_tokens=100_000,
        store=True,
        service_tier="auto",
    )
    sent = chat_requests(running_gateway)[-1]
    assert sent["max_completion_tokens"] == 16384
    assert not {"max_tokens", "store", "service_tier"} & sent.keys()


async def test_a_model_alias_from_the_configuration_works_and_is_shown_back(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("aliased"))
    completion = await running_gateway.openai().chat.completions.create(
        model="house-model", messages=HELLO
    )
    assert completion.model == "house-model"
    assert chat_requests(running_gateway)[-1]["model"] == "openai-gpt-4.1"


async def test_tools_for_llama_are_refused_before_cortex_is_called(
    running_gateway: RunningGateway,
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await running_gateway.openai().chat.completions.create(
            model="llama3.1-70b", messages=HELLO, tools=[WEATHER_TOOL]
        )
    assert refused.value.status_code == 400
    assert "llama3.1-70b cannot call tools" in refused.value.message
    assert "openai-gpt-4.1" in refused.value.message  # it says what to pick instead
    assert running_gateway.emulator.inference_requests() == []


async def test_a_tool_call_left_without_its_result_is_named_before_cortex_is_called(
    running_gateway: RunningGateway,
) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_forgotten",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "user", "content": "Well?"},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        await running_gateway.openai().chat.completions.create(
            model="openai-gpt-4.1", messages=messages
        )
    assert "call_forgotten" in refused.value.message
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prefill_is_answered_with_an_empty_stop_without_calling_cortex(
    running_gateway: RunningGateway, stream: bool
) -> None:
    messages = [
        {"role": "user", "content": "Write a haiku"},
        {"role": "assistant", "content": "Autumn moon"},
    ]
    client = running_gateway.openai()
    if stream:
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model="claude-sonnet-4-5", messages=messages, stream=True
            )
        ]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
        assert chunks[-1].choices[0].finish_reason == "stop"
    else:
        completion = await client.chat.completions.create(
            model="claude-sonnet-4-5", messages=messages
        )
        assert completion.choices[0].message.content == ""
        assert completion.choices[0].finish_reason == "stop"
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("stream", [False, True])
async def test_cortex_conversation_complete_is_a_normal_empty_stop(
    running_gateway: RunningGateway, stream: bool
) -> None:
    running_gateway.emulator.fail_next(Fault.status(400, message="conversation complete"))
    client = running_gateway.openai()
    if stream:
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model="openai-gpt-4.1", messages=HELLO, stream=True
            )
        ]
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert {chunk.model for chunk in chunks} == {"openai-gpt-4.1"}
    else:
        completion = await client.chat.completions.create(model="openai-gpt-4.1", messages=HELLO)
        assert completion.choices[0].finish_reason == "stop"
        assert completion.choices[0].message.content == ""
    assert len(chat_requests(running_gateway)) == 1


# --- errors ------------------------------------------------------------------------------------------


async def test_cortex_errors_arrive_as_openai_error_json(running_gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await running_gateway.openai().chat.completions.create(
            model="no-such-model", messages=HELLO
        )
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert "unknown model no-such-model" in body["message"]
    assert "CORTEX_ENABLED_CROSS_REGION" in body["message"]


async def test_a_wrong_key_gets_an_openai_shaped_401(running_gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        await running_gateway.openai(api_key="not-the-key").chat.completions.create(
            model="openai-gpt-4.1", messages=HELLO
        )
    assert refused.value.status_code == 401
    assert "Not authenticated" in refused.value.message
    assert running_gateway.emulator.inference_requests() == []


async def test_the_jupyter_token_opens_the_openai_endpoint_too(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("ok"))
    client = running_gateway.openai(api_key=running_gateway.jupyter_token)
    completion = await client.chat.completions.create(model="openai-gpt-4.1", messages=HELLO)
    assert completion.choices[0].message.content == "ok"


async def test_a_stream_cut_mid_answer_ends_with_an_error_event_and_no_done(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("This answer will not arrive whole, sorry."))
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=3))
    async with httpx.AsyncClient() as http:
        response = await http.post(
            running_gateway.url("cortex-claude/openai/v1/chat/completions"),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
            json={"model": "claude-sonnet-4-5", "messages": HELLO, "stream": True},
        )
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.status_code == 200
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["type"] == "api_error"
    assert "broke off" in last["error"]["message"]
    # No finish_reason was invented for the partial answer.
    assert all(
        choice.get("finish_reason") is None
        for event in events[:-1]
        for choice in json.loads(event).get("choices", [])
    )

    running_gateway.emulator.script(Reply.text("This answer will not arrive whole either."))
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=3))
    stream = await running_gateway.openai().chat.completions.create(
        model="claude-sonnet-4-5", messages=HELLO, stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


# --- models ------------------------------------------------------------------------------------------


async def test_models_are_listed_in_openai_format_from_what_the_account_may_use(
    running_gateway: RunningGateway,
) -> None:
    emulator = running_gateway.emulator
    emulator.models = ModelTable(["claude-sonnet-4-5", "openai-gpt-4.1", "mistral-9x"], 16384, None)
    client = running_gateway.openai()
    page = await client.models.list()
    ids = [model.id for model in page.data]
    assert ids == ["claude-sonnet-4-5", "openai-gpt-4.1", "mistral-9x", "house-model"]
    assert all(model.object == "model" for model in page.data)

    again = await client.models.list()
    assert [model.id for model in again.data] == ids
    model_calls = [r for r in emulator.requests if r.path == MODELS_PATH]
    assert len(model_calls) == 1  # cached

    # The Anthropic list comes from the same refresh and shows non-Claude models too.
    anthropic_page = await running_gateway.anthropic().models.list(limit=1000)
    assert [model.id for model in anthropic_page.data] == ids


async def test_models_are_listed_from_the_catalogue_when_cortex_has_no_model_list(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.missing_paths.add(MODELS_PATH)
    page = await running_gateway.openai().models.list()
    ids = [model.id for model in page.data]
    assert {"claude-sonnet-4-6", "openai-gpt-4.1", "llama3.1-70b"} <= set(ids)


@pytest.mark.parametrize(
    ("answer", "names"),
    [
        ({"models": ["claude-sonnet-4-5", "llama3.1-8b"]}, ["claude-sonnet-4-5", "llama3.1-8b"]),
        (
            {"models": [{"name": "openai-gpt-5"}, {"id": "mistral-7b"}, {}]},
            ["openai-gpt-5", "mistral-7b"],
        ),
        ({"data": []}, None),
        (["claude-sonnet-4-5"], None),
    ],
)
def test_cortex_model_lists_are_read_in_both_documented_shapes(
    answer: Any, names: list[str] | None
) -> None:
    assert model_names(answer) == names
