"""Cortex's preview Responses API as the opt-in upstream for OpenAI models (``responses_upstream``).

Every request goes through a real Jupyter server to the strict Cortex emulator, which serves
``/api/v2/cortex/v1/responses`` as strictly as Snowflake documents it (OpenAI models only,
stateless) and refuses what it has to guess Cortex refuses (see
``jupyter_cortex_claude/testing/responses_validation.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from jupyter_cortex_claude.gateway.cortex_responses_answer import ResponsesEventRelay
from jupyter_cortex_claude.gateway.openai_responses_request import ToolNames
from jupyter_cortex_claude.gateway.sse import SSESplitter, event_json, format_event
from jupyter_cortex_claude.gateway.usage import UsageRecord
from jupyter_cortex_claude.testing import (
    CHAT_PATH,
    RESPONSES_PATH,
    CortexEmulator,
    Fault,
    Reply,
    TextBlock,
    ThinkingBlock,
    responses_rendering,
)

from .conftest import RunningGateway, emulator_config

FIXTURES = Path(__file__).parent / "fixtures" / "codex"
CODEX_BODIES = sorted(FIXTURES.glob("*-body.json"))
TEST_PAT = "test-pat-0123456789"

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator, tmp_path: Path) -> dict[str, Any]:
    return emulator_config(
        cortex_emulator,
        responses_upstream="responses",
        usage_db_path=str(tmp_path / "ledger" / "usage.sqlite"),
    )


def sent(gateway: RunningGateway, path: str) -> list[dict[str, Any]]:
    return [r.body for r in gateway.emulator.inference_requests() if r.path == path]


def codex_body(name: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / name).read_text())
    if body["model"] == "gpt-5.5":
        body["model"] = "openai-gpt-5"  # a catalogue name Cortex does not have; same request
    return body


async def post_events(
    gateway: RunningGateway, body: dict[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """POST a Responses body with streaming, as Codex does; the status and the events."""
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            gateway.url("cortex-claude/openai/v1/responses"),
            json=body,
            headers={"Authorization": f"Bearer {gateway.key}", "accept": "text/event-stream"},
        )
    if response.status_code != 200:
        return response.status_code, [response.json()]
    return 200, [event_json(event) for event in SSESplitter().feed(response.content)]


# --- the openai SDK ------------------------------------------------------------------------------


async def test_responses_create_is_answered_by_cortex_responses_api(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Hello from Cortex's Responses API."))
    response = await running_gateway.openai().responses.create(
        model="openai-gpt-5",
        instructions="Be brief.",
        input="Say hello",
        max_output_tokens=200,
        store=False,
        reasoning={"effort": "xhigh", "summary": "auto"},
        prompt_cache_key="codex-session-1",
    )
    assert response.status == "completed"
    assert response.output_text == "Hello from Cortex's Responses API."
    assert response.model == "openai-gpt-5"
    assert response.usage is not None and response.usage.output_tokens > 0
    assert sent(running_gateway, CHAT_PATH) == []
    (upstream,) = sent(running_gateway, RESPONSES_PATH)
    assert upstream == {
        "model": "openai-gpt-5",
        "input": "Say hello",
        "instructions": "Be brief.",
        "stream": False,
        "max_output_tokens": 200,
        "reasoning": {"effort": "high", "summary": "auto"},
    }
    ledger = running_gateway.service.ledger
    assert ledger.flush()
    (row,) = ledger.rows()
    assert row["endpoint"] == "openai-responses" and row["status"] == 200
    assert row["output_tokens"] == response.usage.output_tokens


async def test_a_streamed_answer_is_relayed_event_by_event_with_cortex_sequence_numbers(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(
        Reply([ThinkingBlock("Paris is in France."), TextBlock("It is Paris, streamed.")])
    )
    stream = await running_gateway.openai().responses.create(
        model="openai-gpt-5",
        input="Capital of France?",
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
    )
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.reasoning_summary_text.delta" in types
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "It is Paris, streamed."
    output = events[-1].response.output
    assert [item.type for item in output] == ["reasoning", "message"]
    assert output[0].summary[0].text == "Paris is in France."
    (upstream,) = sent(running_gateway, RESPONSES_PATH)
    assert upstream["stream"] is True


async def test_a_namespaced_tool_call_goes_back_under_its_namespace_and_round_trips(
    running_gateway: RunningGateway,
) -> None:
    body = codex_body("0.171.0-openai-gpt-5-request1-body.json")
    spawn = {"message": "look around", "agent_type": "explorer"}
    running_gateway.emulator.script(
        Reply.tool_use("multi_agent_v1__spawn_agent", spawn), Reply.text("Spawned.")
    )
    status, events = await post_events(running_gateway, body)
    assert status == 200, events
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    (call,) = [item for item in done if item["type"] == "function_call"]
    assert (call["namespace"], call["name"]) == ("multi_agent_v1", "spawn_agent")
    (args_done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert args_done["name"] == "spawn_agent"
    assert events[-1]["response"]["output"][-1]["namespace"] == "multi_agent_v1"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))

    # Codex's next turn sends the call back as it received it, plus the tool's output.
    body["input"] += [
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"},
    ]
    status, events = await post_events(running_gateway, body)
    assert status == 200, events
    assert events[-1]["type"] == "response.completed"
    upstream = sent(running_gateway, RESPONSES_PATH)[1]
    assert upstream["input"][-2] == {
        "type": "function_call",
        "call_id": call["call_id"],
        "name": "multi_agent_v1__spawn_agent",
        "arguments": call["arguments"],
    }
    assert upstream["input"][-1] == {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": "ok",
    }


async def test_claude_models_still_go_through_chat_completions(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("Claude, via Chat."))
    response = await running_gateway.openai().responses.create(
        model="claude-sonnet-4-6", input="Say hello"
    )
    assert response.output_text == "Claude, via Chat."
    assert sent(running_gateway, RESPONSES_PATH) == []
    assert len(sent(running_gateway, CHAT_PATH)) == 1


async def test_stored_conversations_are_refused_before_cortex_is_called(
    running_gateway: RunningGateway,
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await running_gateway.openai().responses.create(
            model="openai-gpt-5", input="and then?", previous_response_id="resp_123"
        )
    assert "send the whole conversation" in str(refused.value)
    assert running_gateway.emulator.inference_requests() == []


async def test_a_broken_stream_ends_with_response_failed_numbered_after_the_last_event(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.script(Reply.text("This answer will be cut off halfway through."))
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=4))
    status, events = await post_events(
        running_gateway, {"model": "openai-gpt-5", "input": "hi", "stream": True}
    )
    assert status == 200
    types = [event["type"] for event in events]
    assert types[-1] == "response.failed" and "response.completed" not in types
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert events[-1]["response"]["model"] == "openai-gpt-5"


async def test_a_malformed_stream_ends_with_response_failed(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.fail_next(Fault.malformed_sse())
    status, events = await post_events(
        running_gateway, {"model": "openai-gpt-5", "input": "hi", "stream": True}
    )
    assert status == 200
    assert [event["type"] for event in events] == ["response.failed"]


async def test_without_a_responses_api_cortex_falls_back_to_chat_and_says_so_once(
    running_gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    running_gateway.emulator.missing_paths.add(RESPONSES_PATH)
    running_gateway.emulator.script(Reply.text("one"), Reply.text("two"))
    client = running_gateway.openai()
    with caplog.at_level(logging.WARNING, logger="jupyter_cortex_claude.gateway"):
        first = await client.responses.create(model="openai-gpt-5", input="hi")
        second = await client.responses.create(model="openai-gpt-5", input="hi again")
    assert (first.output_text, second.output_text) == ("one", "two")
    paths = [r.path for r in running_gateway.emulator.inference_requests()]
    assert paths == [RESPONSES_PATH, CHAT_PATH, CHAT_PATH]  # probed once, then never again
    warnings = [r.getMessage() for r in caplog.records if "404 on" in r.getMessage()]
    assert len(warnings) == 1
    assert "c.CortexClaude.responses_upstream = 'chat'" in warnings[0]
    ledger = running_gateway.service.ledger
    assert ledger.flush()
    assert [row["status"] for row in ledger.rows()] == [200, 200]  # the probe is no failure


# --- what Codex sends ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", CODEX_BODIES, ids=lambda path: path.name)
async def test_every_codex_request_is_refused_as_sent_and_accepted_after_shaping(
    running_gateway: RunningGateway, fixture: Path
) -> None:
    body = codex_body(fixture.name)
    emulator = running_gateway.emulator
    upstream_path = RESPONSES_PATH if body["model"].startswith("openai-") else CHAT_PATH
    if upstream_path == RESPONSES_PATH:
        # Codex's request as it is: the strict emulator refuses it (include, store, hosted tools).
        async with httpx.AsyncClient(timeout=30) as client:
            raw = await client.post(
                emulator.url + RESPONSES_PATH,
                json=body,
                headers={"Authorization": f"Bearer {TEST_PAT}"},
            )
        assert raw.status_code == 400, raw.text
        emulator.requests.clear()

    emulator.script(Reply.text("ok"))
    status, events = await post_events(running_gateway, body)
    assert status == 200, events
    assert events[-1]["type"] == "response.completed", events[-1]
    (upstream,) = sent(running_gateway, upstream_path)
    if upstream_path == CHAT_PATH:
        return  # the Chat upstream's shaping: tests/test_responses_endpoint.py
    tool_names = {tool["name"] for tool in upstream["tools"]}
    offered = {tool["name"] for tool in body["tools"] if tool["type"] == "function"}
    assert offered <= tool_names
    assert {tool["type"] for tool in upstream["tools"]} <= {"function", "custom"}
    if any(tool["type"] == "namespace" for tool in body["tools"]):
        assert "multi_agent_v1__spawn_agent" in tool_names
    if any(tool["type"] == "custom" for tool in body["tools"]):
        (patch,) = [tool for tool in upstream["tools"] if tool["name"] == "apply_patch"]
        assert patch["type"] == "custom" and patch["format"]["syntax"] == "lark"
    for name in ("include", "store", "prompt_cache_key", "client_metadata"):
        assert name not in upstream
    assert [item["role"] for item in upstream["input"][:2]] == ["developer", "developer"]
    assert all("id" not in item for item in upstream["input"])
    calls = [item for item in body["input"] if item.get("type") == "function_call"]
    if calls:
        assert upstream["input"][-2]["call_id"] == calls[0]["call_id"]
        assert upstream["input"][-1]["call_id"] == calls[0]["call_id"]


# --- the emulator's reading of Cortex's Responses API ---------------------------------------------


def test_the_emulator_refuses_what_a_stateless_openai_only_responses_api_cannot_take(
    cortex_emulator: CortexEmulator,
) -> None:
    base = {"model": "openai-gpt-5", "input": "hi"}
    refused = {
        "previous_response_id": {**base, "previous_response_id": "resp_1"},
        "background": {**base, "background": True},
        "store": {**base, "store": True},
        "not supported by the Responses API": {**base, "model": "claude-sonnet-4-6"},
        "hosted tool 'web_search'": {**base, "tools": [{"type": "web_search"}]},
        "unsupported request field(s): include": {
            **base,
            "include": ["reasoning.encrypted_content"],
        },
        "'reasoning' is not supported": {
            **base,
            "input": [{"type": "reasoning", "id": "rs_1", "summary": []}],
        },
        "does not match a call": {
            **base,
            "input": [{"type": "function_call_output", "call_id": "call_9", "output": "x"}],
        },
    }
    headers = {"Authorization": f"Bearer {TEST_PAT}"}
    for words, body in refused.items():
        answer = httpx.post(cortex_emulator.url + RESPONSES_PATH, json=body, headers=headers)
        assert answer.status_code == 400, (words, answer.text)
        assert words in answer.json()["message"], (words, answer.json())
    ok = httpx.post(
        cortex_emulator.url + RESPONSES_PATH,
        json={**base, "store": False, "tools": [WEATHER_TOOL]},
        headers=headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["object"] == "response"


# --- the relay, one function at a time --------------------------------------------------------------


def _relay(model: str = "openai-gpt-5") -> tuple[ResponsesEventRelay, UsageRecord]:
    record = UsageRecord("openai-responses", "test/1", model, model, True)
    return ResponsesEventRelay(model, ToolNames(), record), record


@pytest.mark.parametrize("cut", [1, 7, 64, 100_000])
def test_the_relay_passes_a_complete_answer_through_byte_for_byte_however_it_is_cut(
    cut: int,
) -> None:
    reply = Reply.tool_use("get_weather", {"city": "Oslo"}, text="Checking the weather.")
    frames = responses_rendering.response_stream(
        reply, {"tools": [WEATHER_TOOL]}, "openai-gpt-5", 9
    )
    raw = b"".join(frame.data for frame in frames)
    relay, record = _relay()
    out = b"".join(relay.feed(raw[i : i + cut]) for i in range(0, len(raw), cut))
    out += relay.finish(None)
    assert out == raw
    assert not relay.failed
    assert (record.input_tokens, record.output_tokens > 0) == (9, True)


def test_an_error_event_from_cortex_is_followed_by_response_failed() -> None:
    relay, _ = _relay()
    created = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1"}}
    error = {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 1}
    out = relay.feed(format_event("response.created", created) + format_event("error", error))
    events = [event_json(event) for event in SSESplitter().feed(out)]
    assert [e["type"] for e in events] == ["response.created", "error", "response.failed"]
    assert events[-1]["sequence_number"] == 2
    assert "boom" in events[-1]["response"]["error"]["message"]
    assert relay.failed and relay.finish(None) == b""
