"""The openai SDK's ``responses.create`` and Codex's captured requests on Jupyter's Responses endpoint.

Every request goes through a real Jupyter server to the strict Cortex emulator's Chat Completions
API, which refuses what Cortex refuses (unknown fields, ``store``, hosted tools, ``developer`` roles).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from jupyter_cortex_claude.gateway.sse import SSESplitter, event_json
from jupyter_cortex_claude.testing import CHAT_PATH, Fault, Reply, TextBlock, ThinkingBlock

from .conftest import RunningGateway

FIXTURES = Path(__file__).parent / "fixtures" / "codex"
CODEX_BODIES = sorted(FIXTURES.glob("*-body.json"))

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def chat_requests(gateway: RunningGateway) -> list[dict[str, Any]]:
    return [r.body for r in gateway.emulator.inference_requests() if r.path == CHAT_PATH]


def responses_url(gateway: RunningGateway) -> str:
    return gateway.url("cortex-claude/openai/v1/responses")


async def post_events(
    gateway: RunningGateway, body: dict[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """POST a Responses body with streaming, as Codex does; the status and the events."""
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            responses_url(gateway),
            json=body,
            headers={"Authorization": f"Bearer {gateway.key}", "accept": "text/event-stream"},
        )
    if response.status_code != 200:
        return response.status_code, [response.json()]
    splitter = SSESplitter()
    return 200, [event_json(event) for event in splitter.feed(response.content)]


# --- the openai SDK ------------------------------------------------------------------------------


async def test_responses_create_answers_text_on_an_openai_model(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Hello from GPT on Cortex."))
    response = await running_gateway.openai().responses.create(
        model="openai-gpt-4.1",
        instructions="Be brief.",
        input="Say hello",
        max_output_tokens=200,
    )
    assert response.status == "completed"
    assert response.output_text == "Hello from GPT on Cortex."
    assert response.model == "openai-gpt-4.1"
    assert response.usage is not None and response.usage.output_tokens > 0
    (sent,) = chat_requests(running_gateway)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["max_completion_tokens"] == 200


async def test_responses_create_streams_a_claude_answer_event_by_event(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Streamed from Claude, in several pieces."))
    stream = await running_gateway.openai().responses.create(
        model="claude-sonnet-4-6", input="Say hello", stream=True
    )
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == "Streamed from Claude, in several pieces."
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1].response
    assert completed.output_text == "Streamed from Claude, in several pieces."
    assert completed.usage is not None and completed.usage.input_tokens > 0
    assert chat_requests(running_gateway)[0]["stream"] is True


async def test_a_tool_call_round_trips_with_its_call_id(running_gateway: RunningGateway) -> None:
    running_gateway.emulator.script(
        Reply.tool_use("get_weather", {"city": "Paris"}), Reply.text("Sunny in Paris.")
    )
    client = running_gateway.openai()
    first = await client.responses.create(
        model="claude-sonnet-4-6", input="Weather in Paris?", tools=[WEATHER_TOOL]
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = await client.responses.create(
        model="claude-sonnet-4-6",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "Sunny in Paris."
    sent = chat_requests(running_gateway)[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


async def test_claude_thinking_arrives_as_a_reasoning_summary(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(
        Reply([ThinkingBlock("Paris is in France."), TextBlock("It is Paris.")])
    )
    stream = await running_gateway.openai().responses.create(
        model="claude-sonnet-4-6",
        input="Capital of France?",
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
    )
    events = [event async for event in stream]
    output = events[-1].response.output
    assert [item.type for item in output] == ["reasoning", "message"]
    assert output[0].summary[0].text == "Paris is in France."
    assert chat_requests(running_gateway)[0]["reasoning"] == {"effort": "low"}


async def test_claude_with_reasoning_effort_thinks_except_inside_a_tool_loop(
    running_gateway: RunningGateway,
) -> None:
    """Codex on Claude with an effort set: thinking on the first request of a turn, off while the
    turn's tool calls are answered (Cortex's Chat API cannot take the signed thinking back, and
    the strict emulator refuses the loop with thinking on, as Bedrock does)."""
    running_gateway.emulator.script(
        Reply.thinking_then_tool_use("Look it up.", "get_weather", {"city": "Paris"}),
        Reply.text("Sunny in Paris."),
    )
    client = running_gateway.openai()
    settings = {
        "model": "claude-sonnet-4-6",
        "tools": [WEATHER_TOOL],
        "reasoning": {"effort": "high"},
    }
    first = await client.responses.create(input="Weather in Paris?", **settings)
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    history = [{"role": "user", "content": "Weather in Paris?"}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    call = first.output[1]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = await client.responses.create(input=history, **settings)
    assert second.output_text == "Sunny in Paris."
    first_sent, second_sent = chat_requests(running_gateway)
    assert first_sent["reasoning"] == {"effort": "high"}
    assert "reasoning" not in second_sent


async def test_stored_conversations_are_refused_with_a_clear_400(
    running_gateway: RunningGateway,
) -> None:
    client = running_gateway.openai()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(
            model="openai-gpt-4.1", input="and then?", previous_response_id="resp_123"
        )
    assert "send the whole conversation" in str(refused.value)
    with pytest.raises(openai.BadRequestError) as background:
        await client.responses.create(model="openai-gpt-4.1", input="hi", background=True)
    assert "background" in str(background.value)
    assert chat_requests(running_gateway) == []


async def test_a_broken_upstream_stream_ends_with_response_failed(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("This answer will be cut off halfway through."))
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=3))
    status, events = await post_events(
        running_gateway, {"model": "openai-gpt-5", "input": "hi", "stream": True}
    )
    assert status == 200
    types = [event["type"] for event in events]
    assert types[-1] == "response.failed"
    assert "response.completed" not in types
    assert events[-1]["response"]["error"]["code"] == "server_error"


async def test_a_throttled_request_answers_429_with_retry_after(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.fail_next(Fault.status(429), times=3)  # the gateway retries twice
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            responses_url(running_gateway),
            json={"model": "openai-gpt-5", "input": "hi", "stream": True},
            headers={"Authorization": f"Bearer {running_gateway.key}"},
        )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["type"] == "rate_limit_error"


async def test_the_endpoint_needs_the_gateway_key_or_a_jupyter_login(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            responses_url(running_gateway),
            json={"model": "openai-gpt-5", "input": "hi"},
            headers={"Authorization": "Bearer not-the-key"},
        )
    assert response.status_code in (401, 403)
    assert "error" in response.json()
    assert chat_requests(running_gateway) == []


# --- what Codex sends ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", CODEX_BODIES, ids=lambda path: path.name)
async def test_every_codex_request_is_accepted_by_cortex_after_shaping(
    running_gateway: RunningGateway, fixture: Path
) -> None:
    body = json.loads(fixture.read_text())
    if body["model"] == "gpt-5.5":
        body["model"] = "openai-gpt-5"  # a catalogue model Cortex does not have; same request
    running_gateway.emulator.script(Reply.text("ok"))
    status, events = await post_events(running_gateway, body)
    assert status == 200, events
    assert events[-1]["type"] == "response.completed", events[-1]
    (sent,) = chat_requests(running_gateway)
    tool_names = {tool["function"]["name"] for tool in sent["tools"]}
    offered = {tool.get("name") for tool in body["tools"] if tool["type"] == "function"}
    assert offered <= tool_names
    assert not any(tool.get("type") == "web_search" for tool in sent["tools"])
    if any(tool["type"] == "namespace" for tool in body["tools"]):
        assert "multi_agent_v1__spawn_agent" in tool_names
    if any(tool["type"] == "custom" for tool in body["tools"]):
        assert "apply_patch" in tool_names
    roles = [message["role"] for message in sent["messages"]]
    assert roles[:2] == ["system", "system"]
    calls = [item for item in body["input"] if item.get("type") == "function_call"]
    if calls:
        assert sent["messages"][-2]["tool_calls"][0]["id"] == calls[0]["call_id"]
        assert sent["messages"][-1]["tool_call_id"] == calls[0]["call_id"]


async def test_an_answer_cut_by_the_output_limit_is_incomplete_not_completed(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("The start of a long", stop_reason="max_tokens"))
    response = await running_gateway.openai().responses.create(
        model="openai-gpt-5", input="write a long essay", max_output_tokens=5
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "The start of a long"


async def test_hosted_tools_are_logged_once_per_session(
    running_gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.loads((FIXTURES / "0.171.0-openai-gpt-5-request1-body.json").read_text())
    body["client_metadata"]["session_id"] = f"session-of-{running_gateway.key[:8]}"  # a new one
    running_gateway.emulator.script(Reply.text("one"), Reply.text("two"))
    with caplog.at_level("INFO", logger="jupyter_cortex_claude.gateway"):
        for _ in range(2):
            status, _ = await post_events(running_gateway, body)
            assert status == 200
    notes = [r.getMessage() for r in caplog.records if "hosted tools" in r.getMessage()]
    assert notes == [
        "responses: Cortex cannot run the hosted tools web_search; they are left out of this "
        "session's requests"
    ]
