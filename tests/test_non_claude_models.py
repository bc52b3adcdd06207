"""Claude Code and the anthropic SDK on every Cortex model: non-Claude models through translation.

Cortex's Messages API serves Claude only; for ``openai-gpt-4.1`` or ``llama3.1-70b`` the gateway
speaks Chat Completions to Cortex and Anthropic to the client. The same path serves Claude when an
account has no ``/v1/messages`` (configured, or found out from a 404).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from jupyter_cortex_claude.testing import CHAT_PATH, MESSAGES_PATH, Fault, Reply

from .clients import HelloFileTask
from .conftest import RunningGateway, emulator_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def cortex_claude_config(cortex_emulator: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Tests parametrize this fixture indirectly with extra ``c.CortexClaude`` settings."""
    return emulator_config(cortex_emulator, **getattr(request, "param", {}))


def paths(gateway: RunningGateway) -> list[str]:
    return [request.path for request in gateway.emulator.inference_requests()]


def last_chat_request(gateway: RunningGateway) -> dict[str, Any]:
    return [r.body for r in gateway.emulator.inference_requests() if r.path == CHAT_PATH][-1]


@pytest.mark.parametrize("model", ["openai-gpt-4.1", "llama3.1-70b"])
async def test_streamed_text_from_a_non_claude_model_arrives_as_an_anthropic_stream(
    running_gateway: RunningGateway, model: str
) -> None:
    running_gateway.emulator.script(Reply.text(f"Hello from {model}, streamed in pieces."))
    async with running_gateway.anthropic().messages.stream(
        model=model,
        max_tokens=64000,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=HELLO,
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == f"Hello from {model}, streamed in pieces."
    assert len(pieces) > 1
    assert (final.model, final.stop_reason) == (model, "end_turn")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0

    assert paths(running_gateway) == [CHAT_PATH]
    sent = last_chat_request(running_gateway)
    assert sent["model"] == model
    assert sent["max_completion_tokens"] == 16384
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "max_tokens" not in sent


async def test_a_non_streamed_tool_round_trip_on_openai_gpt_4_1(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(
        Reply.tool_use("get_weather", {"city": "Oslo"}, text="Let me check."),
        Reply.text("It is sunny in Oslo."),
    )
    client = running_gateway.anthropic()
    messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.messages.create(
        model="openai-gpt-4.1", max_tokens=1024, messages=messages, tools=[WEATHER_TOOL]
    )
    assert first.stop_reason == "tool_use"
    assert first.content[0].type == "text" and first.content[0].text == "Let me check."
    tool_use = first.content[1]
    assert tool_use.type == "tool_use"
    assert (tool_use.name, tool_use.input) == ("get_weather", {"city": "Oslo"})

    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    second = await client.messages.create(
        model="openai-gpt-4.1", max_tokens=1024, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.content[0].text == "It is sunny in Oslo."
    sent = last_chat_request(running_gateway)
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assistant, tool, user = sent["messages"][-3:]
    assert assistant["tool_calls"][0]["id"] == tool_use.id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert tool == {"role": "tool", "tool_call_id": tool_use.id, "content": "sunny"}
    assert user == {"role": "user", "content": "And tomorrow?"}


async def test_several_streamed_tool_calls_in_one_turn_on_openai_gpt_4_1(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(
        Reply.tools(
            [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen"})],
            text="Checking both.",
        )
    )
    async with running_gateway.anthropic().messages.stream(
        model="openai-gpt-4.1",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Weather in Oslo and Bergen?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "Checking both."
    calls = [block for block in final.content if block.type == "tool_use"]
    assert [call.input for call in calls] == [{"city": "Oslo"}, {"city": "Bergen"}]
    assert len({call.id for call in calls}) == 2
    assert final.stop_reason == "tool_use"


async def test_tools_on_llama_are_refused_with_advice_before_cortex_is_called(
    running_gateway: RunningGateway,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await running_gateway.anthropic().messages.create(
            model="llama3.1-70b", max_tokens=100, messages=HELLO, tools=[WEATHER_TOOL]
        )
    assert "llama3.1-70b cannot call tools" in str(refused.value)
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("stream", [False, True])
async def test_conversation_complete_from_cortex_is_an_empty_end_turn(
    running_gateway: RunningGateway, stream: bool
) -> None:
    running_gateway.emulator.fail_next(Fault.status(400, message="conversation complete"))
    client = running_gateway.anthropic()
    if stream:
        async with client.messages.stream(
            model="openai-gpt-4.1", max_tokens=100, messages=HELLO
        ) as answer:
            final = await answer.get_final_message()
    else:
        final = await client.messages.create(model="openai-gpt-4.1", max_tokens=100, messages=HELLO)
    assert (final.content, final.stop_reason) == ([], "end_turn")


async def test_a_translated_stream_cut_mid_answer_ends_with_an_error_event(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("This answer will not arrive whole, sorry."))
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=3))
    async with httpx.AsyncClient() as http:
        response = await http.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers={"x-api-key": running_gateway.key, "anthropic-version": "2023-06-01"},
            json={"model": "openai-gpt-4.1", "max_tokens": 100, "messages": HELLO, "stream": True},
        )
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert events[-1] == "error"
    assert "message_stop" not in events


async def test_usage_of_a_translated_answer_is_recorded(running_gateway: RunningGateway) -> None:
    gateway = await running_gateway.service.get_gateway()
    records: list[Any] = []
    gateway.usage.on_usage = records.append
    running_gateway.emulator.script(Reply.text("Counted."))
    async with running_gateway.anthropic().messages.stream(
        model="openai-gpt-4.1", max_tokens=100, messages=HELLO
    ) as stream:
        await stream.get_final_message()
    (record,) = records
    assert (record.endpoint, record.cortex_model, record.status) == (
        "anthropic",
        "openai-gpt-4.1",
        200,
    )
    assert record.input_tokens > 0 and record.output_tokens > 0


# --- Claude through Chat Completions ---------------------------------------------------------------


@pytest.mark.parametrize("cortex_claude_config", [{"claude_upstream": "chat"}], indirect=True)
async def test_claude_upstream_chat_serves_claude_through_chat_completions(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.tool_use("get_weather", {"city": "Oslo"}))
    async with running_gateway.anthropic().messages.stream(
        model="claude-sonnet-4-5-20250929",
        max_tokens=32000,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = await stream.get_final_message()
    # Cortex sends no finish_reason for Claude on this API: the tool call makes it tool_use.
    assert final.stop_reason == "tool_use"
    assert final.model == "claude-sonnet-4-5-20250929"
    assert final.content[0].input == {"city": "Oslo"}
    assert paths(running_gateway) == [CHAT_PATH]
    assert last_chat_request(running_gateway)["model"] == "claude-sonnet-4-5"


@pytest.mark.parametrize("cortex_claude_config", [{"claude_upstream": "chat"}], indirect=True)
async def test_claude_thinks_on_chat_except_inside_a_tool_loop(
    running_gateway: RunningGateway,
) -> None:
    """Cortex's Chat API cannot take Claude's signed thinking back, and Bedrock refuses a tool loop
    whose assistant turn has lost it: thinking is on for a new turn, off inside the loop."""
    running_gateway.emulator.script(
        Reply.thinking_then_tool_use("Look it up.", "get_weather", {"city": "Oslo"}),
        Reply.text("Sunny in Oslo."),
    )
    client = running_gateway.anthropic()
    thinking = {"type": "enabled", "budget_tokens": 2048}
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=8000,
        messages=question,
        tools=[WEATHER_TOOL],
        thinking=thinking,
    )
    call = next(block for block in first.content if block.type == "tool_use")
    second = await client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=8000,
        messages=[
            *question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
        tools=[WEATHER_TOOL],
        thinking=thinking,
    )
    assert second.content[-1].text == "Sunny in Oslo."
    requests = [r.body for r in running_gateway.emulator.inference_requests()]
    assert requests[0]["reasoning"] == {"max_tokens": 2048}
    assert "reasoning" not in requests[1]


def test_the_emulator_refuses_claude_thinking_inside_a_tool_loop_on_chat(
    cortex_emulator: Any,
) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "reasoning": {"effort": "low"},
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning": "Look it up.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    }
    headers = {"Authorization": "Bearer test-pat-0123456789"}
    refused = httpx.post(cortex_emulator.url + CHAT_PATH, json=body, headers=headers)
    assert refused.status_code == 400
    assert "must start with a thinking block" in refused.json()["message"]
    del body["reasoning"]
    assert (
        httpx.post(cortex_emulator.url + CHAT_PATH, json=body, headers=headers).status_code == 200
    )


async def test_a_404_from_the_messages_api_switches_claude_to_chat_completions_for_good(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.missing_paths.add(MESSAGES_PATH)
    running_gateway.emulator.script(Reply.text("First, after the probe."), Reply.text("Second."))
    client = running_gateway.anthropic()
    first = await client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=HELLO)
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=HELLO
    ) as stream:
        second = await stream.get_final_message()
    assert first.content[0].text == "First, after the probe."
    assert second.content[0].text == "Second."
    assert (first.stop_reason, second.stop_reason) == ("end_turn", "end_turn")
    # The Messages API was asked once; the process remembers it is missing.
    assert paths(running_gateway) == [MESSAGES_PATH, CHAT_PATH, CHAT_PATH]


# --- Claude Code -------------------------------------------------------------------------------


async def test_claude_code_on_openai_gpt_4_1_writes_a_file_through_translation(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    task = HelloFileTask(tmp_path)
    running_gateway.emulator.script(*task.replies())

    await task.run(running_gateway.anthropic_url, running_gateway.key, "--model", "openai-gpt-4.1")

    requests = running_gateway.emulator.inference_requests()
    assert [request.path for request in requests] == [CHAT_PATH, CHAT_PATH]
    first, second = (request.body for request in requests)
    assert first["model"] == second["model"] == "openai-gpt-4.1"
    assert first["max_completion_tokens"] <= 16384
    assert any(tool["function"]["name"] == "Write" for tool in first["tools"])
    write_call = second["messages"][-2]["tool_calls"][0]
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["tool_call_id"] == write_call["id"]
