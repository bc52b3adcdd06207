"""The Cortex emulator is exact where clients parse it and strict where Cortex refuses."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import jwt
import openai
import pytest

from jupyter_cortex_claude.testing import (
    CortexEmulator,
    Fault,
    KeyPair,
    Reply,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)

from .conftest import SdkClients

PAT = "test-pat-0123456789"
MESSAGES = "/api/v2/cortex/v1/messages"
CHAT = "/api/v2/cortex/v1/chat/completions"
FIXTURES = Path(__file__).parent / "fixtures" / "claude-code"
HEADERS = {"Authorization": f"Bearer {PAT}", "anthropic-version": "2023-06-01"}


def messages_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "hello"}],
    }
    body.update(changes)
    return body


def chat_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_completion_tokens": 1024,
        "messages": [{"role": "user", "content": "hello"}],
    }
    body.update(changes)
    return body


def post(emu: CortexEmulator, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(emu.url + path, json=body, headers={**HEADERS, **headers}, timeout=10)


def anthropic_client(clients: SdkClients, emu: CortexEmulator) -> anthropic.AsyncAnthropic:
    # anthropic 2.x sends its own anthropic-version (2026-10-21), which Cortex does not document.
    return clients.anthropic(
        f"{emu.url}/api/v2/cortex", PAT, default_headers={"anthropic-version": "2023-06-01"}
    )


def openai_client(clients: SdkClients, emu: CortexEmulator) -> openai.AsyncOpenAI:
    return clients.openai(f"{emu.url}/api/v2/cortex/v1", PAT)


def assert_snowflake_error(response: httpx.Response, status: int, *phrases: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code", "error_code", "request_id"}
    assert body["code"] == body["error_code"]
    assert response.headers["X-Snowflake-Request-ID"] == body["request_id"]
    for phrase in phrases:
        assert phrase in body["message"]
    return body


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


# ------------------------------------------------------------------ the SDKs parse what it sends


async def test_anthropic_sdk_streams_text_and_sees_usage(
    sdk_clients: SdkClients, cortex_emulator: CortexEmulator
) -> None:
    cortex_emulator.script(Reply.text("The answer is forty-two, as always."))
    async with anthropic_client(sdk_clients, cortex_emulator).messages.stream(
        **messages_body()
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()
    assert text == "The answer is forty-two, as always."
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


async def test_anthropic_sdk_parses_several_tool_calls_in_one_turn(
    sdk_clients: SdkClients,
    cortex_emulator: CortexEmulator,
) -> None:
    calls = [("Read", {"file_path": "/tmp/a.txt"}), ("Bash", {"command": "ls -la", "n": [1, 2]})]
    cortex_emulator.script(Reply.tools(calls, text="Let me look."))
    async with anthropic_client(sdk_clients, cortex_emulator).messages.stream(
        **messages_body()
    ) as stream:
        message = await stream.get_final_message()
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert [(block.name, block.input) for block in tool_uses] == calls
    assert all(block.id.startswith("tooluse_") for block in tool_uses)
    assert message.content[0].type == "text" and message.stop_reason == "tool_use"


async def test_anthropic_sdk_gets_thinking_with_its_signature(
    sdk_clients: SdkClients,
    cortex_emulator: CortexEmulator,
) -> None:
    cortex_emulator.script(Reply.thinking_then_text("Consider the cases first.", "Done."))
    body = messages_body(thinking={"type": "enabled", "budget_tokens": 1024})
    async with anthropic_client(sdk_clients, cortex_emulator).messages.stream(**body) as stream:
        message = await stream.get_final_message()
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Consider the cases first."
    assert thinking.signature.startswith("emulator-sig-")
    assert text.type == "text" and text.text == "Done."


async def test_anthropic_sdk_reads_a_non_streaming_message(
    sdk_clients: SdkClients, cortex_emulator: CortexEmulator
) -> None:
    cortex_emulator.script(Reply.tool_use("Write", {"file_path": "hello.txt"}, id="tooluse_fixed"))
    message = await anthropic_client(sdk_clients, cortex_emulator).messages.create(
        **messages_body()
    )
    assert message.type == "message" and message.stop_reason == "tool_use"
    assert message.content[0].id == "tooluse_fixed"
    assert message.usage.cache_read_input_tokens == 0


def test_stream_has_anthropic_event_order_and_split_deltas(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.script(
        Reply(
            [
                ThinkingBlock("a b c", "sig-1"),
                TextBlock("one two three"),
                ToolUseBlock("Edit", {"path": "x.py", "old": "a", "new": "b"}),
            ]
        )
    )
    response = post(cortex_emulator, MESSAGES, messages_body(stream=True))
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    deltas = [data["delta"] for kind, data in events if kind == "content_block_delta"]
    assert [d["text"] for d in deltas if d["type"] == "text_delta"] == ["one ", "two ", "three"]
    assert [d for d in deltas if d["type"] == "signature_delta"] == [
        {"type": "signature_delta", "signature": "sig-1"}
    ]
    pieces = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == {"path": "x.py", "old": "a", "new": "b"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0


async def test_openai_sdk_streams_claude_without_finish_reason(
    sdk_clients: SdkClients,
    cortex_emulator: CortexEmulator,
) -> None:
    cortex_emulator.script(Reply.text("Hello there friend."))
    stream = await openai_client(sdk_clients, cortex_emulator).chat.completions.create(
        **chat_body(stream=True, stream_options={"include_usage": True})
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there friend."
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


async def test_openai_sdk_assembles_streamed_tool_calls(
    sdk_clients: SdkClients, cortex_emulator: CortexEmulator
) -> None:
    cortex_emulator.script(Reply.tools([("get_weather", {"city": "Paris"}), ("now", {})]))
    stream = await openai_client(sdk_clients, cortex_emulator).chat.completions.create(
        **chat_body(
            model="openai-gpt-5",
            stream=True,
            tools=[{"type": "function", "function": {"name": "get_weather"}}],
        )
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris"}),
        ("now", {}),
    ]
    assert all(c["id"].startswith("tooluse_") for c in calls.values())
    assert finish == "tool_calls"


async def test_openai_sdk_reads_reasoning_in_a_completion(
    sdk_clients: SdkClients, cortex_emulator: CortexEmulator
) -> None:
    cortex_emulator.script(Reply.thinking_then_text("Think.", "Answer."))
    completion = await openai_client(sdk_clients, cortex_emulator).chat.completions.create(
        **chat_body()
    )
    message = completion.choices[0].message
    assert message.content == "Answer."
    assert message.model_extra["reasoning"] == "Think."
    assert completion.choices[0].finish_reason is None  # Claude: Cortex sends none


def test_other_families_get_a_finish_reason(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.script(Reply.text("cut", stop_reason="max_tokens"))
    response = post(cortex_emulator, CHAT, chat_body(model="llama3.1-70b"))
    assert response.json()["choices"][0]["finish_reason"] == "length"


def test_default_responder_names_the_model(cortex_emulator: CortexEmulator) -> None:
    response = post(cortex_emulator, MESSAGES, messages_body(model="claude-haiku-4-5"))
    assert "claude-haiku-4-5" in response.json()["content"][0]["text"]
    cortex_emulator.responder = lambda body: Reply.text(f"{len(body['messages'])} messages")
    assert post(cortex_emulator, MESSAGES, messages_body()).json()["content"][0]["text"] == (
        "1 messages"
    )


def test_models_endpoint_lists_names_and_records_requests(cortex_emulator: CortexEmulator) -> None:
    response = httpx.get(cortex_emulator.url + "/api/v2/cortex/models", headers=HEADERS)
    assert "claude-sonnet-4-6" in response.json()["models"]
    post(cortex_emulator, MESSAGES, messages_body())
    recorded = cortex_emulator.inference_requests()
    assert len(recorded) == 1 and len(cortex_emulator.requests) == 2
    assert recorded[0].headers["AUTHORIZATION"] == f"Bearer {PAT}"
    assert recorded[0].body["model"] == "claude-sonnet-4-6"
    cortex_emulator.reset()
    assert cortex_emulator.requests == []


def test_unknown_paths_answer_404_in_snowflake_shape(cortex_emulator: CortexEmulator) -> None:
    response = httpx.get(cortex_emulator.url + "/v1/messages", headers=HEADERS)
    assert_snowflake_error(response, 404)


def test_a_body_over_20_mib_is_413(cortex_emulator: CortexEmulator) -> None:
    huge = messages_body(messages=[{"role": "user", "content": "x" * (21 * 1024 * 1024)}])
    assert_snowflake_error(post(cortex_emulator, MESSAGES, huge), 413)


# ------------------------------------------------------------------ Messages API strictness


def _assistant_tool_turn(tool_id: str = "tooluse_1") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": tool_id, "name": "Read", "input": {}}],
    }


def _tool_result(tool_id: str = "tooluse_1") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id}]}


TOOL = {"name": "Read", "input_schema": {"type": "object"}}
EPHEMERAL = {"type": "ephemeral"}
REFUSED_MESSAGES: dict[str, tuple[dict[str, Any], str]] = {
    "metadata_field": (messages_body(metadata={"user_id": "u"}), "extraneous key [metadata]"),
    "service_tier": (messages_body(service_tier="auto"), "extraneous key [service_tier]"),
    "context_management_without_beta": (
        messages_body(context_management={"edits": []}),
        "[context_management]",
    ),
    "non_claude_model": (messages_body(model="openai-gpt-5"), "unknown model openai-gpt-5"),
    "unknown_model": (messages_body(model="claude-opus-5-5"), "unknown model claude-opus-5-5"),
    "max_tokens_over_ceiling": (
        messages_body(max_tokens=32000),
        "max_tokens: 32000 > 16384, which is the maximum allowed number of output tokens",
    ),
    "missing_max_tokens": (
        {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "x"}]},
        "max_tokens: field required",
    ),
    "empty_messages": (messages_body(messages=[]), "messages: must be a non-empty list"),
    "system_role_in_messages": (
        messages_body(
            messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]
        ),
        "messages.1.role: 'system' is not supported",
    ),
    "extra_message_key": (
        messages_body(messages=[{"role": "user", "content": "a", "output_config": {}}]),
        "messages.0: extraneous key [output_config]",
    ),
    "first_message_from_assistant": (
        messages_body(
            messages=[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
        ),
        "the first message must use the user role",
    ),
    "ends_with_assistant_prefill": (
        messages_body(
            messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        ),
        "must end with a user turn",
    ),
    "tool_use_without_result": (
        messages_body(
            tools=[TOOL],
            messages=[
                {"role": "user", "content": "a"},
                _assistant_tool_turn(),
                {"role": "user", "content": "next"},
            ],
        ),
        "Each 'toolUse' block must be accompanied with a matching 'toolResult' block",
    ),
    "tool_result_for_unknown_id": (
        messages_body(messages=[{"role": "user", "content": "a"}, _tool_result("tooluse_9")]),
        "unexpected tool_use_id 'tooluse_9'",
    ),
    "unknown_block_key": (
        messages_body(
            messages=[{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]
        ),
        "messages.0.content.0: extraneous key [x]",
    ),
    "document_block": (
        messages_body(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
        "content block type 'document' is not supported",
    ),
    "image_by_url": (
        messages_body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "http://x"}}],
                }
            ]
        ),
        "only base64 image sources",
    ),
    "thinking_without_signature": (
        messages_body(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]},
                {"role": "user", "content": "b"},
            ]
        ),
        "thinking blocks must carry their signature",
    ),
    "cache_ttl_one_hour": (
        messages_body(
            system=[{"type": "text", "text": "s", "cache_control": {**EPHEMERAL, "ttl": "1h"}}]
        ),
        "only '5m' is supported",
    ),
    "five_cache_breakpoints": (
        messages_body(
            system=[{"type": "text", "text": f"s{i}", "cache_control": EPHEMERAL} for i in range(5)]
        ),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ),
    "system_not_text_blocks": (
        messages_body(system=[{"type": "image", "source": {}}]),
        "system blocks must be text blocks",
    ),
    "thinking_display": (
        messages_body(thinking={"type": "enabled", "budget_tokens": 1024, "display": "omitted"}),
        "thinking: extraneous key [display]",
    ),
    "thinking_budget_below_1024": (
        messages_body(thinking={"type": "enabled", "budget_tokens": 512}),
        "budget_tokens: must be an integer >= 1024",
    ),
    "thinking_budget_not_below_max_tokens": (
        messages_body(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 2048}),
        "must be less than max_tokens",
    ),
    "adaptive_thinking_on_sonnet_4_5": (
        messages_body(model="claude-sonnet-4-5", thinking={"type": "adaptive"}),
        "adaptive thinking is not supported for claude-sonnet-4-5",
    ),
    "effort_on_haiku": (
        messages_body(model="claude-haiku-4-5", output_config={"effort": "high"}),
        "effort is not supported for claude-haiku-4-5",
    ),
    "effort_out_of_range": (
        messages_body(output_config={"effort": "extreme"}),
        "must be one of low, medium, high, max",
    ),
    "deferred_tool": (
        messages_body(tools=[{**TOOL, "defer_loading": True}]),
        "tools.0: extraneous key [defer_loading]",
    ),
    "server_tool": (
        messages_body(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "only custom tools",
    ),
    "temperature_with_thinking": (
        messages_body(temperature=0.2, thinking={"type": "enabled", "budget_tokens": 1024}),
        "temperature may only be set to 1 when thinking is enabled",
    ),
    "tool_choice_without_tools": (
        messages_body(tool_choice={"type": "any"}),
        "tool_choice may only be specified while providing tools",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_MESSAGES))
def test_messages_api_refuses_what_cortex_refuses(
    cortex_emulator: CortexEmulator, case: str
) -> None:
    body, phrase = REFUSED_MESSAGES[case]
    assert_snowflake_error(post(cortex_emulator, MESSAGES, body), 400, phrase)


def test_messages_api_accepts_a_full_tool_round_trip(cortex_emulator: CortexEmulator) -> None:
    body = messages_body(
        system=[{"type": "text", "text": "be brief", "cache_control": EPHEMERAL}],
        tools=[{**TOOL, "description": "read a file", "cache_control": EPHEMERAL}],
        tool_choice={"type": "auto"},
        thinking={"type": "adaptive"},
        output_config={"effort": "max"},
        context_management={"edits": []},
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "a", "cache_control": EPHEMERAL}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "tool_use", "id": "tooluse_1", "name": "Read", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "tooluse_1",
                        "content": "file text",
                        "is_error": False,
                        "cache_control": {**EPHEMERAL, "ttl": "5m"},
                    }
                ],
            },
        ],
    )
    beta = "context-management-2025-06-27,interleaved-thinking-2025-05-14"
    response = post(cortex_emulator, MESSAGES, body, **{"anthropic-beta": beta})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "phrase"),
    [
        ({"anthropic-version": "2026-10-21"}, "anthropic-version header must be 2023-06-01"),
        ({"anthropic-beta": "claude-code-20250219"}, "invalid beta flag(s) in anthropic-beta"),
        ({"Content-Type": "text/plain"}, "Content-Type must be application/json"),
    ],
    ids=["sdk_2_version", "claude_code_beta", "not_json_content_type"],
)
def test_messages_api_checks_headers(
    cortex_emulator: CortexEmulator, headers: dict[str, str], phrase: str
) -> None:
    body = json.dumps(messages_body())
    response = httpx.post(
        cortex_emulator.url + MESSAGES,
        content=body,
        headers={**HEADERS, "Content-Type": "application/json", **headers},
    )
    assert_snowflake_error(response, 400, phrase)


def test_messages_api_refuses_a_body_that_is_not_a_json_object(
    cortex_emulator: CortexEmulator,
) -> None:
    assert_snowflake_error(post(cortex_emulator, MESSAGES, ["a"]), 400, "JSON object")
    response = httpx.post(
        cortex_emulator.url + MESSAGES,
        content=b"{not json",
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert_snowflake_error(response, 400, "not valid JSON")


def test_per_model_output_ceiling(cortex_emulator_factory: Callable[..., CortexEmulator]) -> None:
    emu = cortex_emulator_factory(model_output_ceilings={"claude-opus-4-6": 32000})
    assert post(emu, MESSAGES, messages_body(model="claude-opus-4-6", max_tokens=32000)).is_success
    refused = post(emu, MESSAGES, messages_body(model="claude-sonnet-4-6", max_tokens=32000))
    assert_snowflake_error(refused, 400, "32000 > 16384")


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_claude_code_requests_sent_unshaped_are_refused(
    cortex_emulator: CortexEmulator, fixture: Path
) -> None:
    captured = json.loads(fixture.read_text())
    headers = {
        name: value
        for name, value in captured["headers"].items()
        if name.lower() not in ("host", "content-length", "accept-encoding", "connection")
    }
    headers["Authorization"] = f"Bearer {PAT}"  # the captured token is masked
    query = captured["path"].partition("?")[2]
    response = httpx.post(
        f"{cortex_emulator.url}{MESSAGES}{'?' + query if query else ''}",
        content=json.dumps(captured["body"]),
        headers=headers,
    )
    message = assert_snowflake_error(response, 400)["message"]
    for phrase in (
        "invalid beta flag(s) in anthropic-beta: claude-code-20250219",
        "extraneous key [metadata]",
        "unknown model claude-opus-5-5",
        "thinking: extraneous key [display]",
        "messages.1.role: 'system' is not supported",
        "extraneous key [defer_loading]",
    ):
        assert phrase in message


# ------------------------------------------------------------------ Chat Completions strictness

REFUSED_CHAT: dict[str, tuple[dict[str, Any], str]] = {
    "max_tokens": (
        chat_body(max_tokens=100),
        "max_tokens is not supported, use max_completion_tokens",
    ),
    "store": (chat_body(store=True), "store is not supported"),
    "service_tier": (chat_body(service_tier="flex"), "service_tier is not supported"),
    "unknown_model": (chat_body(model="gpt-4o"), "unknown model gpt-4o"),
    "over_ceiling": (chat_body(max_completion_tokens=20000), "20000 > 16384, which is the maximum"),
    "tools_for_llama": (
        chat_body(model="llama3.1-70b", tools=[{"type": "function", "function": {"name": "f"}}]),
        "tools are not supported for model llama3.1-70b",
    ),
    "image_for_mistral": (
        chat_body(
            model="mistral-large2",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
                    ],
                }
            ],
        ),
        "images are not supported",
    ),
    "ends_with_assistant": (
        chat_body(
            messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        ),
        "must not end with an assistant message",
    ),
    "developer_role": (
        chat_body(
            messages=[{"role": "developer", "content": "a"}, {"role": "user", "content": "b"}]
        ),
        "'developer' is not supported",
    ),
    "orphan_tool_message": (
        chat_body(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "tool", "tool_call_id": "call_1", "content": "r"},
            ]
        ),
        "'call_1' does not match a tool call",
    ),
    "several_choices": (chat_body(n=2), "only a single choice"),
}


@pytest.mark.parametrize("case", list(REFUSED_CHAT))
def test_chat_completions_refuses_what_cortex_refuses(
    cortex_emulator: CortexEmulator, case: str
) -> None:
    body, phrase = REFUSED_CHAT[case]
    assert_snowflake_error(post(cortex_emulator, CHAT, body), 400, phrase)


def test_chat_completions_accepts_a_tool_round_trip(cortex_emulator: CortexEmulator) -> None:
    body = chat_body(
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "a"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "r"},
        ],
    )
    assert post(cortex_emulator, CHAT, body).status_code == 200


# ------------------------------------------------------------------ authentication


def test_every_response_carries_a_request_id(cortex_emulator: CortexEmulator) -> None:
    response = post(cortex_emulator, MESSAGES, messages_body())
    assert response.status_code == 200 and len(response.headers["X-Snowflake-Request-ID"]) == 36


@pytest.mark.parametrize(
    ("headers", "phrase"),
    [
        ({"x-api-key": PAT}, "x-api-key is not accepted"),
        ({"Authorization": "Bearer not-a-known-token"}, "Invalid"),
        ({"Authorization": f"Basic {PAT}"}, "Bearer"),
        (
            {
                "Authorization": f"Bearer {PAT}",
                "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
            },
            "not of that kind",
        ),
        (
            {"Authorization": f"Bearer {PAT}", "X-Snowflake-Authorization-Token-Type": "OAUTH"},
            "not of that kind",
        ),
    ],
    ids=[
        "x_api_key_alone",
        "unknown_pat",
        "wrong_scheme",
        "pat_declared_jwt",
        "pat_declared_oauth",
    ],
)
def test_bad_credentials_are_401(
    cortex_emulator: CortexEmulator, headers: dict[str, str], phrase: str
) -> None:
    response = httpx.post(
        cortex_emulator.url + MESSAGES,
        json=messages_body(),
        headers={"anthropic-version": "2023-06-01", **headers},
    )
    body = assert_snowflake_error(response, 401, phrase)
    assert PAT not in body["message"]


def test_a_declared_pat_and_an_added_pat_pass_until_revoked(
    cortex_emulator: CortexEmulator,
) -> None:
    declared = {"X-Snowflake-Authorization-Token-Type": "PROGRAMMATIC_ACCESS_TOKEN"}
    assert post(cortex_emulator, MESSAGES, messages_body(), **declared).status_code == 200
    cortex_emulator.add_pat("second-pat")
    second = {"Authorization": "Bearer second-pat"}
    assert post(cortex_emulator, MESSAGES, messages_body(), **second).status_code == 200
    cortex_emulator.revoke("second-pat")
    assert_snowflake_error(post(cortex_emulator, MESSAGES, messages_body(), **second), 401)


def test_session_tokens_and_their_expiry_quirk(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.add_session_token("session-abc")
    session = {"Authorization": 'Snowflake Token="session-abc"'}
    assert post(cortex_emulator, MESSAGES, messages_body(), **session).status_code == 200
    assert_snowflake_error(
        post(cortex_emulator, MESSAGES, messages_body(), Authorization="Bearer session-abc"), 401
    )
    cortex_emulator.expire_session_token("session-abc")
    expired = post(cortex_emulator, MESSAGES, messages_body(), **session)
    assert expired.status_code == 200 and expired.json()["code"] == "390112"


def _jwt_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
    }


def test_a_key_pair_jwt_is_accepted(
    cortex_emulator: CortexEmulator, cortex_keypair: KeyPair
) -> None:
    cortex_emulator.register_public_key(cortex_keypair.public_key_pem)
    token = cortex_keypair.jwt("testorg-testaccount.us-east-1", "testuser")
    response = post(cortex_emulator, MESSAGES, messages_body(), **_jwt_headers(token))
    assert response.status_code == 200, response.text


def test_jwt_helper_matches_a_hand_built_token(cortex_keypair: KeyPair) -> None:
    token = cortex_keypair.jwt("acme-prod", "alice")
    claims = jwt.decode(token, cortex_keypair.public_key_pem, algorithms=["RS256"])
    assert claims["iss"] == f"ACME-PROD.ALICE.{cortex_keypair.fingerprint}"
    assert claims["sub"] == "ACME-PROD.ALICE"
    assert cortex_keypair.encrypted_private_key_pem("pw").startswith(b"-----BEGIN ENCRYPTED")


@pytest.mark.parametrize(
    ("claims", "phrase"),
    [
        ({"iss": "TESTORG-TESTACCOUNT.TESTUSER.SHA256:bm90LWEta2V5"}, "not registered"),
        ({"sub": "TESTORG-TESTACCOUNT.SOMEONE"}, "sub is 'TESTORG-TESTACCOUNT.SOMEONE'"),
        ({"iat": -7200, "exp": -3600}, "exp has passed"),
        ({"iat": 0, "exp": 7200}, "at most 3600 s"),
        ({"iss": "testorg-testaccount.TESTUSER.{fp}"}, "must be upper-case"),
        ({"iss": "OTHER.TESTUSER.{fp}"}, "iss names account 'OTHER'"),
        ({"exp": None}, "exp claim is missing"),
    ],
    ids=[
        "wrong_fingerprint",
        "wrong_sub",
        "expired",
        "lifetime_over_an_hour",
        "lowercase",
        "account",
        "no_exp",
    ],
)
def test_a_bad_jwt_is_401_naming_the_claim(
    cortex_emulator: CortexEmulator, cortex_keypair: KeyPair, claims: dict[str, Any], phrase: str
) -> None:
    cortex_emulator.register_public_key(cortex_keypair.public_key_pem)
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": f"TESTORG-TESTACCOUNT.TESTUSER.{cortex_keypair.fingerprint}",
        "sub": "TESTORG-TESTACCOUNT.TESTUSER",
        "iat": now,
        "exp": now + 3000,
    }
    for name, value in claims.items():
        if value is None:
            payload.pop(name)
        elif isinstance(value, int):
            payload[name] = now + value
        else:
            payload[name] = value.replace("{fp}", cortex_keypair.fingerprint)
    token = jwt.encode(payload, cortex_keypair.private_key_pem, algorithm="RS256")
    response = post(cortex_emulator, MESSAGES, messages_body(), **_jwt_headers(token))
    body = assert_snowflake_error(response, 401, "JWT token is invalid", phrase)
    assert body["code"] == "390144"


def test_a_jwt_signed_by_another_key_is_401(
    cortex_emulator: CortexEmulator, cortex_keypair: KeyPair
) -> None:
    cortex_emulator.register_public_key(cortex_keypair.public_key_pem)
    impostor = KeyPair.generate()
    claims = jwt.decode(
        cortex_keypair.jwt("TESTORG-TESTACCOUNT", "TESTUSER"), options={"verify_signature": False}
    )
    token = jwt.encode(claims, impostor.private_key_pem, algorithm="RS256")
    response = post(cortex_emulator, MESSAGES, messages_body(), **_jwt_headers(token))
    assert_snowflake_error(response, 401, "signature does not verify")


# ------------------------------------------------------------------ faults


@pytest.mark.parametrize("status", [429, 503, 402, 403, 500])
def test_a_status_fault_is_answered_once_then_the_script_resumes(
    cortex_emulator: CortexEmulator, status: int
) -> None:
    cortex_emulator.script(Reply.text("after the fault"))
    cortex_emulator.fail_next(Fault.status(status))
    assert_snowflake_error(post(cortex_emulator, MESSAGES, messages_body()), status)
    retry = post(cortex_emulator, MESSAGES, messages_body())
    assert retry.json()["content"][0]["text"] == "after the fault"


def test_throttle_dressed_as_400(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.throttled_400(), times=2)
    for _ in range(2):
        response = post(cortex_emulator, CHAT, chat_body())
        assert_snowflake_error(response, 400, "all requests were throttled by remote service")
    assert post(cortex_emulator, CHAT, chat_body()).status_code == 200


def test_a_refused_request_does_not_consume_a_fault(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.status(429))
    assert_snowflake_error(post(cortex_emulator, MESSAGES, messages_body(max_tokens=0)), 400)
    assert_snowflake_error(post(cortex_emulator, MESSAGES, messages_body()), 429)


def test_cut_stream_ends_without_message_stop(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.script(Reply.text("one two three four five"))
    cortex_emulator.fail_next(Fault.cut_stream(after_events=4))
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", cortex_emulator.url + MESSAGES, json=messages_body(stream=True), headers=HEADERS
        ) as response,
    ):
        for piece in response.iter_bytes():
            received += piece
    assert received.count(b"event: ") == 4 and b"message_stop" not in received
    retry = post(cortex_emulator, MESSAGES, messages_body(stream=True))
    assert "one " in retry.text and "message_stop" in retry.text  # the reply waited


async def test_anthropic_sdk_fails_on_a_cut_stream(
    sdk_clients: SdkClients, cortex_emulator: CortexEmulator
) -> None:
    cortex_emulator.fail_next(Fault.cut_stream(after_events=3))
    # anthropic 2.x lets its transport's error (httpx2) through for a stream cut mid-body.
    with pytest.raises((anthropic.APIError, httpx2.TransportError)):
        async with anthropic_client(sdk_clients, cortex_emulator).messages.stream(
            **messages_body()
        ) as stream:
            await stream.get_final_message()


def test_stall_before_first_byte_outlasts_a_short_read_timeout(
    cortex_emulator: CortexEmulator,
) -> None:
    cortex_emulator.fail_next(Fault.stall_before_first_byte(3))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            cortex_emulator.url + MESSAGES, json=messages_body(), headers=HEADERS, timeout=0.3
        )


def test_stall_mid_stream_pauses_after_some_events(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.stall_mid_stream(after_events=3, seconds=3))
    received = b""
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST",
            cortex_emulator.url + MESSAGES,
            json=messages_body(stream=True),
            headers=HEADERS,
            timeout=httpx.Timeout(5, read=0.5),
        ) as response,
    ):
        for piece in response.iter_bytes():
            received += piece
    assert received.count(b"event: ") == 3


def test_slow_fault_paces_deltas_beyond_a_read_timeout(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.slow(token_delay=1.0))
    with pytest.raises(httpx.ReadTimeout):
        post_with_timeout = httpx.Timeout(5, read=0.3)
        with httpx.stream(
            "POST",
            cortex_emulator.url + MESSAGES,
            json=messages_body(stream=True),
            headers=HEADERS,
            timeout=post_with_timeout,
        ) as response:
            for _ in response.iter_bytes():
                pass
    # Without the fault the emulator's own (zero) pacing applies again.
    assert "message_stop" in post(cortex_emulator, MESSAGES, messages_body(stream=True)).text


def test_malformed_sse_is_not_json(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.malformed_sse())
    response = post(cortex_emulator, MESSAGES, messages_body(stream=True))
    assert response.status_code == 200
    with pytest.raises(ValueError):
        sse_events(response.text)


def test_ok_with_error_body(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.ok_with_error_body())
    response = post(cortex_emulator, MESSAGES, messages_body())
    assert response.status_code == 200 and response.json()["code"] == "390112"


def test_connection_reset(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.fail_next(Fault.connection_reset())
    with pytest.raises(httpx.TransportError):
        post(cortex_emulator, MESSAGES, messages_body())
    assert post(cortex_emulator, MESSAGES, messages_body()).status_code == 200


def test_emulator_works_as_a_context_manager_and_restarts_cleanly() -> None:
    first = CortexEmulator(pats=["p1"])
    with first as emu:
        assert post(emu, MESSAGES, messages_body(), Authorization="Bearer p1").status_code == 200
    with pytest.raises(httpx.TransportError):
        post(first, MESSAGES, messages_body(), Authorization="Bearer p1")


def test_the_recorded_body_is_what_the_client_sent(cortex_emulator: CortexEmulator) -> None:
    body = messages_body()
    post(cortex_emulator, MESSAGES, body)
    recorded = copy.deepcopy(cortex_emulator.inference_requests()[0].body)
    assert recorded == body


def test_a_locator_account_with_region_signs_jwts_without_the_region(
    cortex_emulator_factory: Callable[..., CortexEmulator], cortex_keypair: KeyPair
) -> None:
    emu = cortex_emulator_factory(account="xy12345.us-east-1", user="alice")
    emu.register_public_key(cortex_keypair.public_key_pem.decode())
    good = cortex_keypair.jwt("XY12345", "ALICE")
    assert post(emu, MESSAGES, messages_body(), **_jwt_headers(good)).status_code == 200
    fingerprint = cortex_keypair.fingerprint
    with_region = cortex_keypair.jwt(
        "XY12345",
        "ALICE",
        iss=f"XY12345.US-EAST-1.ALICE.{fingerprint}",
        sub="XY12345.US-EAST-1.ALICE",
    )
    refused = post(emu, MESSAGES, messages_body(), **_jwt_headers(with_region))
    assert_snowflake_error(refused, 401, "JWT token is invalid", "without region or cloud suffix")


def test_a_failing_responder_is_a_500_in_snowflake_shape(cortex_emulator: CortexEmulator) -> None:
    def broken(body: dict[str, Any]) -> Reply:
        raise RuntimeError("no answer scripted")

    cortex_emulator.responder = broken
    response = post(cortex_emulator, MESSAGES, messages_body())
    assert_snowflake_error(response, 500, "no answer scripted")
