"""A user points the real anthropic SDK at the Jupyter server and talks to Cortex through it."""

from __future__ import annotations

import anthropic
import pytest

from jupyter_cortex_claude.testing import Reply

from .conftest import TEST_PAT, RunningGateway

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_streaming_answer_arrives_with_the_model_the_client_asked_for(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Hello from Cortex, streamed in pieces."))
    client = running_gateway.anthropic()
    async with client.messages.stream(
        model="claude-sonnet-4-5-20250929",
        max_tokens=64000,
        messages=[{"role": "user", "content": "Say hello"}],
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == "Hello from Cortex, streamed in pieces."
    assert len(pieces) > 1
    assert final.model == "claude-sonnet-4-5-20250929"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0

    sent = running_gateway.emulator.inference_requests()[-1]
    assert sent.body["model"] == "claude-sonnet-4-5"
    assert sent.body["max_tokens"] == 16384
    assert sent.headers["authorization"] == f"Bearer {TEST_PAT}"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert running_gateway.key not in str(sent.headers)


async def test_non_streaming_tool_round_trip(running_gateway: RunningGateway) -> None:
    running_gateway.emulator.script(
        Reply.tool_use("get_weather", {"city": "Oslo"}, text="Let me check."),
        Reply.text("It is sunny in Oslo."),
    )
    client = running_gateway.anthropic()
    messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=1024, messages=messages, tools=[WEATHER_TOOL]
    )
    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Oslo"}

    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}],
        },
    ]
    second = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=1024, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.content[0].text == "It is sunny in Oslo."
    assert second.model == "claude-haiku-4-5"


async def test_streamed_tool_calls_several_in_one_turn(running_gateway: RunningGateway) -> None:
    running_gateway.emulator.script(
        Reply.tools([("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen"})])
    )
    client = running_gateway.anthropic()
    async with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Weather in Oslo and Bergen?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = await stream.get_final_message()
    calls = [block for block in final.content if block.type == "tool_use"]
    assert [call.input["city"] for call in calls] == ["Oslo", "Bergen"]
    assert len({call.id for call in calls}) == 2
    assert final.stop_reason == "tool_use"


async def test_jupyter_token_works_as_api_key(running_gateway: RunningGateway) -> None:
    running_gateway.emulator.script(Reply.text("ok"))
    client = running_gateway.anthropic(api_key=running_gateway.jupyter_token)
    reply = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content[0].text == "ok"


async def test_wrong_key_is_refused_and_nothing_reaches_cortex(
    running_gateway: RunningGateway,
) -> None:
    client = running_gateway.anthropic(api_key="not-the-key")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 401
    assert "Not authenticated" in str(refused.value)
    assert running_gateway.emulator.inference_requests() == []
