"""Claude Code talks Anthropic Messages; non-Claude models on Cortex speak Chat Completions.

The request goes one way, the answer (JSON or a stream) comes back the other way, and the stream we
produce is read by the real anthropic SDK to prove clients accept it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.errors import GatewayError
from jupyter_cortex_claude.gateway.anthropic_chat_answer import (
    ChatStreamTranslator,
    chat_completion_to_anthropic,
    empty_anthropic_message,
    sse_frame,
)
from jupyter_cortex_claude.gateway.anthropic_chat_request import anthropic_to_chat_request
from jupyter_cortex_claude.snowflake.models import ModelCatalogue, ModelInfo

from .canned_server import CannedServer
from .conftest import SdkClients

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CATALOGUE = ModelCatalogue()
FIXTURES = Path(__file__).parent / "fixtures" / "claude-code"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"  # a PNG header is enough: nothing decodes it
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def translate(body: dict[str, Any], model: str = "openai-gpt-4.1") -> dict[str, Any]:
    full = {"model": model, "max_tokens": 1024, **body}
    full.setdefault("messages", [{"role": "user", "content": "hi"}])
    return anthropic_to_chat_request(full, cortex_model=model, model=CATALOGUE.get(model))


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


# --- request: Anthropic → Chat Completions --------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "system", "expected"),
    [
        ("openai-gpt-4.1", "Be brief.", "Be brief."),
        (
            "llama4-maverick",
            [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
            "One.\n\nTwo.",
        ),
        (
            # Cache marks are a Claude-only extension: dropped for other families...
            "openai-gpt-4.1",
            [{"type": "text", "text": "Cached.", "cache_control": {"type": "ephemeral"}}],
            "Cached.",
        ),
        (
            # ...and kept for Claude, which needs content parts to carry them.
            "claude-sonnet-4-5",
            [
                {"type": "text", "text": "Billing line."},
                {"type": "text", "text": "Cached.", "cache_control": {"type": "ephemeral"}},
            ],
            [
                {"type": "text", "text": "Billing line."},
                {"type": "text", "text": "Cached.", "cache_control": {"type": "ephemeral"}},
            ],
        ),
    ],
)
def test_the_system_prompt_becomes_a_leading_system_message(
    model: str, system: Any, expected: Any
) -> None:
    request = translate({"system": system}, model)
    assert request["messages"][0] == {"role": "system", "content": expected}
    assert request["messages"][1] == {"role": "user", "content": "hi"}


def test_plain_text_stays_a_string_and_text_blocks_are_joined() -> None:
    request = translate(
        {
            "messages": [
                user({"type": "text", "text": "first"}, {"type": "text", "text": "second"}),
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": "more"},
            ]
        }
    )
    assert request["messages"] == [
        {"role": "user", "content": "first\n\nsecond"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "more"},
    ]


@pytest.mark.parametrize(
    ("source", "url"),
    [
        (
            {"type": "base64", "media_type": "image/png", "data": PNG},
            f"data:image/png;base64,{PNG}",
        ),
        ({"type": "url", "url": "https://example.com/cat.png"}, "https://example.com/cat.png"),
    ],
)
def test_images_become_image_url_parts(source: dict[str, Any], url: str) -> None:
    request = translate(
        {
            "messages": [
                user({"type": "text", "text": "what is this?"}, {"type": "image", "source": source})
            ]
        }
    )
    assert request["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_an_image_for_a_model_that_cannot_see_is_refused_with_advice() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with pytest.raises(GatewayError) as caught:
        translate({"messages": [user(image)]}, "llama4-maverick")
    assert caught.value.status == 400
    assert "llama4-maverick cannot read images" in caught.value.message
    assert "openai-gpt-4.1" in caught.value.message


def test_tools_for_a_model_that_cannot_call_them_are_refused_with_advice() -> None:
    with pytest.raises(GatewayError) as caught:
        translate({"tools": [WEATHER_TOOL]}, "mistral-large2")
    assert caught.value.status == 400
    assert caught.value.message.startswith("model mistral-large2 cannot call tools on Cortex")
    assert "pick a model that can" in caught.value.message


def test_a_tool_round_trip_becomes_tool_calls_and_tool_messages() -> None:
    request = translate(
        {
            "tools": [WEATHER_TOOL, {"type": "web_search_20250305", "name": "web_search"}],
            "messages": [
                user({"type": "text", "text": "Weather in Oslo and Bergen?"}),
                assistant(
                    {"type": "thinking", "thinking": "two cities", "signature": "sig"},
                    {
                        "type": "tool_use",
                        "id": "tooluse_a",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                    {
                        "type": "tool_use",
                        "id": "tooluse_b",
                        "name": "get_weather",
                        "input": {"city": "Bergen"},
                    },
                ),
                user(
                    {"type": "text", "text": "here you go"},
                    {"type": "tool_result", "tool_use_id": "tooluse_a", "content": "sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "tooluse_b",
                        "content": [
                            {"type": "text", "text": "rain"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG,
                                },
                            },
                            {"type": "text", "text": "wind"},
                        ],
                    },
                ),
            ],
        }
    )
    assert request["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]
    call_message = request["messages"][1]
    assert call_message["role"] == "assistant"
    assert call_message["content"] is None  # only thinking + tool calls: thinking is dropped
    assert call_message["tool_calls"] == [
        {
            "id": "tooluse_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {
            "id": "tooluse_b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'},
        },
    ]
    # Tool results come straight after the calls, before the user's own words of that turn.
    assert [m["role"] for m in request["messages"][2:]] == ["tool", "tool", "user"]
    assert request["messages"][2] == {
        "role": "tool",
        "tool_call_id": "tooluse_a",
        "content": "sunny",
    }
    bergen = request["messages"][3]
    assert bergen["tool_call_id"] == "tooluse_b"
    assert bergen["content"].startswith("rain\n[an image returned by the tool was omitted")
    assert bergen["content"].endswith("\nwind")
    assert request["messages"][4] == {"role": "user", "content": "here you go"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("permission denied", "Error: permission denied"),
        ([{"type": "text", "text": "exit code 1"}], "Error: exit code 1"),
        ("", "Error: the tool call failed."),
    ],
)
def test_a_failed_tool_says_so_in_the_tool_message(content: Any, expected: str) -> None:
    request = translate(
        {
            "tools": [WEATHER_TOOL],
            "messages": [
                user({"type": "text", "text": "go"}),
                assistant({"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}),
                user(
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": content,
                        "is_error": True,
                    }
                ),
            ],
        }
    )
    assert request["messages"][-1] == {"role": "tool", "tool_call_id": "t1", "content": expected}


def test_claude_keeps_the_cache_breakpoint_on_a_tool_result() -> None:
    request = translate(
        {
            "messages": [
                user({"type": "text", "text": "go"}),
                assistant({"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}),
                user(
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "ok",
                        "cache_control": {"type": "ephemeral"},
                    }
                ),
            ]
        },
        "claude-sonnet-4-5",
    )
    assert request["messages"][-1]["content"] == [
        {"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ({"type": "none"}, "none"),
    ],
)
def test_tool_choice_kinds(tool_choice: dict[str, Any], expected: Any) -> None:
    request = translate({"tools": [WEATHER_TOOL], "tool_choice": tool_choice})
    assert request["tool_choice"] == expected


def test_sampling_options_and_limits_are_renamed_and_forbidden_fields_never_sent() -> None:
    request = translate(
        {
            "max_tokens": 64000,
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 5,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "someone"},
            "service_tier": "auto",
            "stream": True,
        }
    )
    assert request["max_completion_tokens"] == 16384  # clamped to the model's ceiling
    assert request["temperature"] == 0.2
    assert request["top_p"] == 0.9
    assert request["stop"] == ["END"]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    for forbidden in ("max_tokens", "store", "service_tier", "metadata", "top_k", "stop_sequences"):
        assert forbidden not in request


def test_a_small_max_tokens_is_kept_and_a_non_stream_request_has_no_stream_options() -> None:
    request = translate({"max_tokens": 300})
    assert request["max_completion_tokens"] == 300
    assert "stream" not in request and "stream_options" not in request


@pytest.mark.parametrize(
    ("model", "max_tokens", "thinking", "output_config", "expected"),
    [
        (
            "claude-sonnet-4-5",
            32000,
            {"type": "enabled", "budget_tokens": 8000},
            None,
            {"reasoning": {"max_tokens": 8000}},
        ),
        # Claude Code's budget of max_tokens − 1 would leave no room once clamped to 16,384.
        (
            "claude-sonnet-4-5",
            32000,
            {"type": "enabled", "budget_tokens": 31999},
            None,
            {"reasoning": {"max_tokens": 8192}},
        ),
        (
            "claude-opus-4-6",
            32000,
            {"type": "adaptive"},
            {"effort": "high"},
            {"reasoning": {"effort": "high"}},
        ),
        ("claude-opus-4-6", 32000, {"type": "adaptive"}, None, {"reasoning": {"effort": "medium"}}),
        ("claude-sonnet-4-5", 32000, {"type": "disabled"}, None, {}),
        ("claude-3-5-sonnet", 32000, {"type": "enabled", "budget_tokens": 8000}, None, {}),
        (
            "openai-gpt-5",
            32000,
            {"type": "enabled", "budget_tokens": 2000},
            None,
            {"reasoning_effort": "low"},
        ),
        (
            "openai-gpt-5",
            32000,
            {"type": "enabled", "budget_tokens": 8000},
            None,
            {"reasoning_effort": "medium"},
        ),
        (
            "openai-gpt-5",
            32000,
            {"type": "enabled", "budget_tokens": 20000},
            None,
            {"reasoning_effort": "high"},
        ),
        (
            "openai-gpt-5",
            32000,
            {"type": "adaptive"},
            {"effort": "max"},
            {"reasoning_effort": "high"},
        ),
        ("openai-gpt-5", 32000, {"type": "adaptive"}, None, {"reasoning_effort": "medium"}),
        ("openai-gpt-4.1", 32000, {"type": "enabled", "budget_tokens": 8000}, None, {}),
        ("llama4-maverick", 32000, {"type": "enabled", "budget_tokens": 8000}, None, {}),
        ("deepseek-r1", 32000, {"type": "adaptive"}, {"effort": "high"}, {}),
    ],
)
def test_thinking_becomes_each_familys_reasoning_knob(
    model: str,
    max_tokens: int,
    thinking: dict[str, Any],
    output_config: Any,
    expected: dict[str, Any],
) -> None:
    body: dict[str, Any] = {"max_tokens": max_tokens, "thinking": thinking}
    if output_config:
        body["output_config"] = output_config
    request = translate(body, model)
    reasoning = {key: request[key] for key in ("reasoning", "reasoning_effort") if key in request}
    assert reasoning == expected


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "openai-gpt-5"])
def test_a_captured_claude_code_turn_translates_to_a_valid_conversation(model: str) -> None:
    body = json.loads((FIXTURES / "2.1.330-turn2-thinking-tool-result.json").read_text())["body"]
    request = anthropic_to_chat_request(body, cortex_model=model, model=CATALOGUE.get(model))
    assert request["model"] == model
    assert set(request) <= {
        "model", "messages", "tools", "max_completion_tokens", "stream", "stream_options",
        "reasoning", "reasoning_effort", "temperature",
    }  # fmt: skip
    assert len(request["tools"]) == len(body["tools"])
    roles = [message["role"] for message in request["messages"]]
    assert roles[0] == "system"
    # Every tool call is answered by the very next messages.
    for position, message in enumerate(request["messages"]):
        for offset, call in enumerate(message.get("tool_calls") or [], start=1):
            answer = request["messages"][position + offset]
            assert answer == {**answer, "role": "tool", "tool_call_id": call["id"]}
            json.loads(call["function"]["arguments"])
    assert not any("signature" in json.dumps(message) for message in request["messages"])


# --- non-streaming answer ------------------------------------------------------------------------


def test_a_completion_with_reasoning_text_and_tool_calls_becomes_an_anthropic_message() -> None:
    message = chat_completion_to_anthropic(
        {
            "id": "chatcmpl-1",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "reasoning": "Need the weather.",
                        "content": "Checking.",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                            },
                            {
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "not json"},
                            },
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 40,
                "total_tokens": 1240,
                "prompt_tokens_details": {"cached_tokens": 1000},
            },
        },
        client_model="llama-fan",
    )
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["id"].startswith("msg_")
    assert message["model"] == "llama-fan"
    assert message["content"][0] == {
        "type": "thinking",
        "thinking": "Need the weather.",
        "signature": "",
    }
    assert message["content"][1] == {"type": "text", "text": "Checking."}
    assert message["content"][2] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert message["content"][3]["id"].startswith("toolu_")
    assert message["content"][3]["input"] == {"_unparsed_arguments": "not json"}
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 200,
        "output_tokens": 40,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 0,
    }


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish_reason: str | None, stop_reason: str) -> None:
    message = chat_completion_to_anthropic(
        {"choices": [{"message": {"content": "hi"}, "finish_reason": finish_reason}]},
        client_model="m",
    )
    assert message["stop_reason"] == stop_reason
    assert message["content"] == [{"type": "text", "text": "hi"}]


def test_conversation_complete_becomes_an_empty_end_turn() -> None:
    message = empty_anthropic_message("claude-opus-5-5")
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    assert message["model"] == "claude-opus-5-5"


# --- streaming answer ----------------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "model": "cortex",
        "choices": choices,
        **extra,
    }


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return chunk(None, usage=usage)


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id:
        call["id"] = id
        call["type"] = "function"
    if name:
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def replay(chunks: list[dict[str, Any]], **kwargs: Any) -> tuple[ChatStreamTranslator, bytes]:
    translator = ChatStreamTranslator(
        client_model=kwargs.pop("client_model", "llama-fan"), **kwargs
    )
    frames: list[bytes] = []
    for item in chunks:
        frames.extend(translator.feed(item))
    frames.extend(translator.finish())
    assert translator.finish() == []  # finishing twice sends nothing more
    return translator, b"".join(frames)


def events(stream: bytes) -> list[tuple[str, dict[str, Any]]]:
    parsed = []
    for frame in stream.decode().split("\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == event_line[len("event: ") :]
        parsed.append((data["type"], data))
    return parsed


def shape(stream: bytes) -> list[str]:
    """The event sequence in short: start:text@0, delta:text_delta@0, stop@0, ..."""
    out = []
    for kind, data in events(stream):
        if kind == "content_block_start":
            out.append(f"start:{data['content_block']['type']}@{data['index']}")
        elif kind == "content_block_delta":
            out.append(f"{data['delta']['type']}@{data['index']}")
        elif kind == "content_block_stop":
            out.append(f"stop@{data['index']}")
        else:
            out.append(kind)
    return out


def test_sse_frames_are_compact_and_end_with_a_blank_line() -> None:
    assert sse_frame("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_a_streamed_text_answer_has_the_exact_anthropic_sequence() -> None:
    translator, stream = replay(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, finish="stop"),
            usage_chunk(50, 2, cached=30),
        ],
        input_tokens_hint=48,
    )
    assert shape(stream) == [
        "message_start", "ping", "start:text@0", "text_delta@0", "text_delta@0", "stop@0",
        "message_delta", "message_stop",
    ]  # fmt: skip
    parsed = events(stream)
    start = parsed[0][1]["message"]
    assert start["id"].startswith("msg_") and start["model"] == "llama-fan"
    assert start["usage"]["input_tokens"] == 48  # the hint: Cortex sends usage only at the end
    delta = parsed[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": 20, "output_tokens": 2, "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 0,
    }  # fmt: skip
    assert translator.stop_reason == "end_turn"
    assert translator.usage["output_tokens"] == 2


def test_reasoning_streams_as_a_thinking_block_before_the_text_without_a_signature() -> None:
    _, stream = replay(
        [
            chunk({"reasoning": "Let me "}),
            chunk({"reasoning": "think."}),
            chunk({"content": "Answer."}),
            usage_chunk(10, 5),
        ]
    )
    assert shape(stream) == [
        "message_start", "ping", "start:thinking@0", "thinking_delta@0", "thinking_delta@0",
        "stop@0", "start:text@1", "text_delta@1", "stop@1", "message_delta", "message_stop",
    ]  # fmt: skip
    assert b"signature_delta" not in stream


def test_two_sequential_tool_calls_stream_live_as_two_tool_use_blocks() -> None:
    translator, stream = replay(
        [
            chunk({"content": "Checking both."}),
            chunk(tool_delta(0, id="call_a", name="get_weather")),
            chunk(tool_delta(0, arguments='{"city":')),
            chunk(tool_delta(0, arguments='"Oslo"}')),
            chunk(tool_delta(1, id="call_b", name="get_weather", arguments='{"ci')),
            chunk(tool_delta(1, arguments='ty":"Bergen"}')),
            chunk({}, finish="tool_calls"),
            usage_chunk(100, 30),
        ]
    )
    assert shape(stream) == [
        "message_start", "ping", "start:text@0", "text_delta@0", "stop@0",
        "start:tool_use@1", "input_json_delta@1", "input_json_delta@1", "stop@1",
        "start:tool_use@2", "input_json_delta@2", "input_json_delta@2", "stop@2",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert tool_inputs(stream) == {"call_a": {"city": "Oslo"}, "call_b": {"city": "Bergen"}}
    assert translator.stop_reason == "tool_use"


def test_interleaved_tool_calls_still_come_out_as_whole_sequential_blocks() -> None:
    _, stream = replay(
        [
            chunk(tool_delta(0, id="call_a", name="read", arguments='{"path":')),
            chunk(tool_delta(1, id="call_b", name="read", arguments='{"path":')),
            chunk(tool_delta(0, arguments='"a.txt"}')),
            chunk(tool_delta(1, arguments='"b.txt"}')),
            usage_chunk(100, 30),
        ]
    )
    sequence = shape(stream)
    starts = [item for item in sequence if item.startswith("start:")]
    assert starts == ["start:tool_use@0", "start:tool_use@1"]
    assert sequence.index("stop@0") < sequence.index("start:tool_use@1")
    assert tool_inputs(stream) == {"call_a": {"path": "a.txt"}, "call_b": {"path": "b.txt"}}


def test_claude_on_cortex_sends_no_finish_reason_and_tool_calls_still_mean_tool_use() -> None:
    translator, stream = replay(
        [
            chunk({"content": "Writing."}),
            chunk(
                tool_delta(0, name="Write", arguments='{"file_path":"hello.txt","content":"hi"}')
            ),
            usage_chunk(500, 20, cached=400),
        ],
        client_model="claude-opus-5-5",
    )
    block = next(
        data
        for kind, data in events(stream)
        if kind == "content_block_start" and data["index"] == 1
    )
    generated_id = block["content_block"]["id"]
    assert generated_id.startswith("toolu_")
    assert tool_inputs(stream) == {generated_id: {"file_path": "hello.txt", "content": "hi"}}
    assert translator.stop_reason == "tool_use"
    assert translator.usage == {
        "input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 400,
        "cache_creation_input_tokens": 0,
    }  # fmt: skip


def test_an_answer_cut_by_the_token_limit_stops_with_max_tokens() -> None:
    translator, stream = replay(
        [chunk({"content": "long"}), chunk({}, finish="length"), usage_chunk(5, 16384)]
    )
    assert translator.stop_reason == "max_tokens"
    assert events(stream)[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_a_stream_with_nothing_in_it_is_still_a_complete_message() -> None:
    translator = ChatStreamTranslator(client_model="m", input_tokens_hint=7)
    stream = b"".join(translator.finish())
    assert shape(stream) == ["message_start", "ping", "message_delta", "message_stop"]
    assert translator.stop_reason == "end_turn"


def test_the_message_can_start_before_cortex_answers() -> None:
    translator = ChatStreamTranslator(client_model="m", input_tokens_hint=7)
    early = b"".join(translator.start())
    assert translator.start() == []
    rest = b"".join([*translator.feed(chunk({"content": "hi"})), *translator.finish()])
    assert shape(early + rest) == [
        "message_start", "ping", "start:text@0", "text_delta@0", "stop@0",
        "message_delta", "message_stop",
    ]  # fmt: skip


def tool_inputs(stream: bytes) -> dict[str, Any]:
    """Concatenate each tool_use block's input_json_delta pieces and parse them."""
    ids: dict[int, str] = {}
    pieces: dict[int, str] = {}
    for kind, data in events(stream):
        if kind == "content_block_start" and data["content_block"]["type"] == "tool_use":
            ids[data["index"]] = data["content_block"]["id"]
            pieces[data["index"]] = ""
        if kind == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            pieces[data["index"]] += data["delta"]["partial_json"]
    return {ids[index]: json.loads(text) for index, text in pieces.items()}


# --- the real anthropic SDK reads what we produce ------------------------------------------------


async def test_the_anthropic_sdk_reads_our_translated_stream(
    sdk_clients: SdkClients, canned_server: CannedServer
) -> None:
    canned_server.content_type = "text/event-stream"
    _, canned_server.payload = replay(
        [
            chunk({"reasoning": "Two cities."}),
            chunk({"content": "Checking "}),
            chunk({"content": "both."}),
            chunk(tool_delta(0, id="tooluse_a", name="get_weather", arguments='{"city":')),
            chunk(tool_delta(0, arguments='"Oslo"}')),
            chunk(tool_delta(1, id="tooluse_b", name="get_weather", arguments='{"city":"Bergen"}')),
            usage_chunk(900, 42, cached=600),
        ],
        client_model="openai-gpt-4.1",
    )
    client = sdk_clients.anthropic(canned_server.url, "unused")
    async with client.messages.stream(
        model="openai-gpt-4.1",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Weather in Oslo and Bergen?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Checking both."
    assert final.model == "openai-gpt-4.1"
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == "Two cities."  # type: ignore[union-attr]
    tool_uses = [block for block in final.content if block.type == "tool_use"]
    assert [(block.id, block.input) for block in tool_uses] == [
        ("tooluse_a", {"city": "Oslo"}),
        ("tooluse_b", {"city": "Bergen"}),
    ]
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 300
    assert final.usage.output_tokens == 42
    assert final.usage.cache_read_input_tokens == 600


def test_model_info_from_the_catalogue_is_what_the_translation_expects() -> None:
    # Guards the contract with snowflake/models.py: the fields the translation reads exist.
    info: ModelInfo = CATALOGUE.get("llama4-maverick")
    assert (info.is_claude, info.supports_tools, info.supports_images) == (False, False, False)
