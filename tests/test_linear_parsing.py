"""The pieces that read large or hostile input, one function at a time: the same results as the
plain ways of reading it, in time linear in the input (issue 11, findings 1 and 5, L2, L3).

Through-the-server proof is in tests/test_hostile_input.py; these pin each piece down."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_cortex_claude.errors import GatewayError
from jupyter_cortex_claude.gateway.anthropic_chat_answer import ChatStreamTranslator
from jupyter_cortex_claude.gateway.content_blocks import BlockCleaner
from jupyter_cortex_claude.gateway.conversation import shape_conversation
from jupyter_cortex_claude.gateway.json_bodies import encode_body, parse_request_body
from jupyter_cortex_claude.gateway.ledger import TEXT_COLUMN_CHARS, UsageLedger, parse_since
from jupyter_cortex_claude.gateway.limits import check_model_id
from jupyter_cortex_claude.gateway.openai_chat_answer import data_line
from jupyter_cortex_claude.gateway.sse import SSESplitter
from jupyter_cortex_claude.gateway.streamed_json import StreamedJson
from jupyter_cortex_claude.gateway.usage import UsageRecord

# Generous: the quadratic versions these replace took minutes on the same inputs.
LINEAR_BOUND_SECONDS = 5.0

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


# -- the request parser -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(body=objects, messages=st.lists(json_values, max_size=6), indent=st.sampled_from([None, 1]))
def test_the_sliced_parser_reads_what_json_loads_reads(
    body: dict[str, Any], messages: list[Any], indent: int | None
) -> None:
    body = {**body, "messages": messages}
    raw = json.dumps(body, indent=indent).encode()
    assert parse_request_body(raw) == json.loads(raw)
    assert json.loads(encode_body(body)) == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": [1, 2,]}',
        b'{"messages": [1 2]}',
        b'{"messages": [1, 2}',
        b'{"messages": [',
        b'{"a": 1,}',
        b'{"a" 1}',
        b'{"a": 1} x',
        b'{"messages": []',
        b'{"messages": ["\x01"]}',
    ],
)
def test_the_sliced_parser_refuses_what_json_loads_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(GatewayError) as refused:
        parse_request_body(raw)
    assert refused.value.status == 400 and "not valid JSON" in refused.value.message


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1E+400"])
def test_non_finite_numbers_are_refused_wherever_they_are(number: str) -> None:
    for raw in (
        f'{{"temperature": {number}}}',
        f'{{"messages": [{{"role": "user", "content": [{{"x": [{number}]}}]}}]}}',
    ):
        with pytest.raises(GatewayError) as refused:
            parse_request_body(raw.encode())
        assert refused.value.status == 400 and "not finite" in refused.value.message


def test_a_message_count_over_the_limit_is_refused_without_reading_the_rest() -> None:
    raw = b'{"messages": [' + b",".join([b"{}"] * 11) + b"], "
    with pytest.raises(GatewayError) as refused:
        parse_request_body(raw + b"this part is never read", max_messages=10)
    assert refused.value.status == 400 and "more than 10" in refused.value.message


def test_writing_never_produces_non_standard_json() -> None:
    for value in (math.nan, math.inf):
        with pytest.raises(ValueError):
            encode_body({"messages": [], "temperature": value})
        with pytest.raises(ValueError):
            data_line({"x": value})


# -- shaping ------------------------------------------------------------------------------------


def test_40000_same_role_messages_merge_in_linear_time() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"message {i}"} for i in range(40_000)
    ]
    messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    started = time.perf_counter()
    conversation = shape_conversation(messages, BlockCleaner())
    assert time.perf_counter() - started < LINEAR_BOUND_SECONDS
    first, _, last = conversation.messages
    assert [block["text"] for block in first["content"][:2]] == ["message 0", "message 1"]
    assert len(first["content"]) == 40_000 and last["content"] == "more"


def test_merged_user_turns_put_every_tool_result_first_in_order() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "a", "name": "t", "input": {}},
                {"type": "tool_use", "id": "b", "name": "t", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "note"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]},
        {"role": "user", "content": "between"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b"}]},
    ]
    merged = shape_conversation(messages, BlockCleaner()).messages[-1]["content"]
    assert [block.get("tool_use_id") or block["text"] for block in merged] == [
        "a",
        "b",
        "note",
        "between",
    ]


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-5-20250929[1m]",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "openai/gpt-5",
        "claude-sonnet-4-5@20250929",
        "ft:gpt-4o-mini:org:custom:id",
        "x" * 256,
    ],
)
def test_plausible_model_ids_pass(model: str) -> None:
    check_model_id(model)


@pytest.mark.parametrize(
    "model", ["x" * 257, "../../etc/passwd", "a/../b", "a b", "a\x00", "é", "a\u202eb", ""]
)
def test_implausible_model_ids_are_refused(model: str) -> None:
    with pytest.raises(GatewayError) as refused:
        check_model_id(model)
    assert refused.value.status == 400 and "is not a model id" in refused.value.message


# -- event streams -------------------------------------------------------------------------------

CRLF_STREAM = (
    b'event: message_start\r\ndata: {"type": "message_start"}\r\n\r\n'
    b"event: ping\r\ndata: {}\r\n\r\n"
    b'event: message_stop\r\ndata: {"type": "message_stop"}\r\n\r\n'
)


def test_every_split_of_a_crlf_stream_gives_the_same_events() -> None:
    expected = SSESplitter().feed(CRLF_STREAM)
    assert len(expected) == 3
    for cut in range(1, len(CRLF_STREAM)):
        for second_cut in (cut, min(cut + 1, len(CRLF_STREAM))):
            splitter = SSESplitter()
            events = splitter.feed(CRLF_STREAM[:cut])
            events += splitter.feed(CRLF_STREAM[cut:second_cut])
            events += splitter.feed(CRLF_STREAM[second_cut:])
            assert events == expected, (cut, second_cut)
            assert splitter.pending == b""


def test_one_long_event_in_small_chunks_is_read_in_linear_time() -> None:
    splitter = SSESplitter(max_event_bytes=64 * 1024 * 1024)
    piece = b"x" * 1024
    started = time.perf_counter()
    assert splitter.feed(b"data: ") == []
    for _ in range(32 * 1024):  # 32 MiB: the quadratic splitter copied ~512 GiB here
        assert splitter.feed(piece) == []
    (event,) = splitter.feed(b"\n\n")
    assert time.perf_counter() - started < LINEAR_BOUND_SECONDS
    assert len(event) == 6 + 32 * 1024 * 1024 + 2


def test_an_event_over_the_bound_is_refused() -> None:
    splitter = SSESplitter(max_event_bytes=10_000)
    splitter.feed(b"data: " + b"x" * 9_000)
    with pytest.raises(GatewayError) as refused:
        splitter.feed(b"y" * 2_000)
    assert refused.value.status == 502


def test_streamed_tool_arguments_interleaved_stay_linear_and_whole() -> None:
    """Two tool calls whose deltas alternate: each delta of the second asked whether the first
    was complete, and parsed all of it to answer."""
    translator = ChatStreamTranslator(client_model="m")
    first = {"index": 0, "id": "call_a", "function": {"name": "a", "arguments": '{"x": "'}}
    second = {"index": 1, "id": "call_b", "function": {"name": "b", "arguments": '{"y": "'}}
    translator.feed({"choices": [{"delta": {"tool_calls": [first]}}]})
    translator.feed({"choices": [{"delta": {"tool_calls": [second]}}]})
    started = time.perf_counter()
    for _ in range(20_000):
        for index in (0, 1):
            delta = {"index": index, "function": {"arguments": "z" * 50}}
            translator.feed({"choices": [{"delta": {"tool_calls": [delta]}}]})
    for index in (0, 1):
        delta = {"index": index, "function": {"arguments": '"}'}}
        translator.feed({"choices": [{"delta": {"tool_calls": [delta]}}]})
    frames = translator.finish()
    assert time.perf_counter() - started < LINEAR_BOUND_SECONDS
    assert b"message_stop" in frames[-1]


@settings(max_examples=300, deadline=None)
@given(value=json_values, data=st.data())
def test_streamed_json_knows_when_it_is_complete(value: Any, data: st.DataObject) -> None:
    text = json.dumps(value)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    streamed = StreamedJson()
    start = 0
    for cut in [*cuts, len(text)]:
        streamed.append(text[start:cut])
        start = cut
        prefix = text[:cut]
        try:
            json.loads(prefix)
            whole = True
        except ValueError:
            whole = False
        assert streamed.is_complete() == whole, (text, prefix)
    assert streamed.text == text
    streamed.append(" x")
    assert not streamed.is_complete()


# -- the usage ledger ----------------------------------------------------------------------------


def test_the_ledger_keeps_only_the_start_of_long_strings(tmp_path: Path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite")
    long = "m" * (5 * 1024 * 1024)
    ledger.record(UsageRecord("anthropic", long, long, long, False, error=long, request_id=long))
    ledger.flush()
    (row,) = ledger.rows()
    ledger.close()
    for column in ("client", "client_model", "cortex_model", "error", "request_id"):
        assert row[column] == "m" * TEXT_COLUMN_CHARS
    assert (tmp_path / "usage.sqlite").stat().st_size < 1024 * 1024


@pytest.mark.parametrize("since", ["1e309", "-1e309", "nan", "inf", "9" * 400 + "d"])
def test_a_since_that_is_not_finite_is_refused(since: str) -> None:
    with pytest.raises(ValueError, match="since="):
        parse_since(since)


def test_the_message_limit_setting_defaults_to_the_gateways_own() -> None:
    from jupyter_cortex_claude.config import CortexClaude
    from jupyter_cortex_claude.gateway.limits import DEFAULT_MAX_MESSAGES

    assert CortexClaude().max_messages == DEFAULT_MAX_MESSAGES
