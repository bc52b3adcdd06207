"""Hostile input against both endpoints, through a real Jupyter server: clear refusals, never a 500,
never a traceback in the log, nothing a client should not send ever reaching Cortex."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from benchmarks import servers
from jupyter_cortex_claude.testing import Fault, Reply

from .battery import (
    ANTHROPIC_MESSAGES,
    ENDPOINT_OF,
    alarms_in,
    assert_error_shape,
    captured_log,
    check_reply,
    raw_exchange,
    request_bytes,
    sse_frames,
)
from .conftest import TEST_PAT, RunningGateway
from .fuzz_requests import FuzzOutcome, run_fuzz

DIALECTS = ["anthropic", "openai"]
MIB = 1024 * 1024


def auth(gateway: RunningGateway, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.key}", "anthropic-version": "2023-06-01", **extra}


def valid_body(dialect: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
    }
    if dialect == "anthropic":
        body["max_tokens"] = 100
    return {**body, **overrides}


@pytest.fixture
def server_log(running_gateway: RunningGateway) -> Iterator[Any]:
    with captured_log(running_gateway.serverapp.log) as stream:
        yield stream
    assert alarms_in(stream.getvalue()) == [], stream.getvalue()[-3000:]


async def post(
    gateway: RunningGateway, dialect: str, content: bytes, **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            gateway.url(ENDPOINT_OF[dialect]),
            headers={**auth(gateway), "content-type": "application/json", **headers},
            content=content,
        )


# -- malformed and mistyped bodies ---------------------------------------------------------------

MALFORMED = [
    b"",
    b"{not json",
    b"[]",
    b"null",
    b'"a string"',
    b"123",
    b"{" * 5,
    b'{"model": "claude-sonnet-4-5", "messages": [}',
    b"\xff\xfe\xfd",
    b'{"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", '
    b'"content": "\xff\xfe invalid utf-8"}]}',
    b"\x00" * 64,
    b'{"model": NaN}',
]

WRONG_TYPES: list[dict[str, Any]] = [
    {"model": 5},
    {"model": None},
    {"model": ["claude-sonnet-4-5"]},
    {"messages": "hi"},
    {"messages": {"role": "user"}},
    {"messages": []},
    {"messages": [None]},
    {"messages": ["hi"]},
    {"messages": [{"role": 5, "content": "hi"}]},
    {"messages": [{"role": "user", "content": 7}]},
    {"messages": [{"role": "user", "content": [7, None]}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": {"x": 1}}]}]},
    {"messages": [{"role": "wizard", "content": "hi"}]},
    {"max_tokens": "100"},
    {"max_tokens": -1},
    {"max_tokens": 10**30},
    {"max_tokens": 1.5},
    {"stream": "yes"},
    {"temperature": "hot"},
    {"tools": "all of them"},
    {"tools": [{"name": 5}]},
    {"tool_choice": 3},
    {"system": 42},
    {"system": [{"type": "text", "text": None}]},
    {"thinking": {"type": "enabled", "budget_tokens": "lots"}},
    {"stop_sequences": "STOP"},
    {"stream_options": "usage please"},
    {"n": "two"},
]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_malformed_bodies_get_a_clear_400_and_never_reach_cortex(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    for content in MALFORMED:
        response = await post(running_gateway, dialect, content)
        assert response.status_code == 400, (content, response.text)
        assert assert_error_shape(dialect, response.json()) == "invalid_request_error"
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_wrong_types_are_refused_in_the_endpoints_own_error_shape(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    seen = {}
    for overrides in WRONG_TYPES:
        content = json.dumps(valid_body(dialect, **overrides)).encode()
        response = await post(running_gateway, dialect, content)
        kind = check_reply(
            dialect,
            ENDPOINT_OF[dialect],
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )
        seen[json.dumps(overrides)[:40]] = (response.status_code, kind)
    # A few are tolerated on purpose (a float max_tokens, a stray field); most must be 400s.
    refused = [key for key, (status, _) in seen.items() if status == 400]
    assert len(refused) >= len(WRONG_TYPES) // 2, seen


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("depth", [100, 900, 5_000, 200_000])
async def test_deeply_nested_json_is_refused_or_served_without_a_crash(
    running_gateway: RunningGateway, server_log: Any, dialect: str, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    content = (
        json.dumps(valid_body(dialect))[:-1] + f', "metadata": {{"deep": {nested}}}}}'
    ).encode()
    response = await post(running_gateway, dialect, content)
    check_reply(
        dialect,
        ENDPOINT_OF[dialect],
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
    )
    if depth >= 5_000:
        assert response.status_code == 400


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_thousands_of_messages_are_relayed(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    running_gateway.emulator.script(Reply.text("read them all"))
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(5001)
    ]
    response = await post(
        running_gateway, dialect, json.dumps(valid_body(dialect, messages=turns)).encode()
    )
    assert response.status_code == 200, response.text[:500]
    (sent,) = running_gateway.emulator.inference_requests()
    assert len(sent.body["messages"]) == 5001


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_unknown_models_get_a_clear_refusal_naming_the_model(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    for model in ("llama9-nope", "../../etc/passwd", "nope-" + "x" * 5000, "é\u202ebidi"):
        response = await post(
            running_gateway, dialect, json.dumps(valid_body(dialect, model=model)).encode()
        )
        assert response.status_code in (400, 404), response.text[:300]
        message = response.json()["error"]["message"]
        # Cortex decides what exists (the catalogue may lag behind it), and its 400 is explained;
        # ids that cannot be ids are refused first, shown escaped (a bidi override must not
        # reorder the message).
        assert model[:30] in message or ascii(model[:30])[1:-1] in message, message
        assert "\u202e" not in message


# -- huge bodies ----------------------------------------------------------------------------------


def _host_and_target(gateway: RunningGateway, path: str) -> tuple[str, str]:
    parts = urlsplit(gateway.url(path))
    return parts.netloc, parts.path


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_body_announced_far_above_20_mib_is_refused_before_it_is_sent(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    """Only the headers go out; a server that waited for the 50 MiB would never answer."""
    host, target = _host_and_target(running_gateway, ENDPOINT_OF[dialect])
    headers = {
        **auth(running_gateway),
        "Content-Type": "application/json",
        "Content-Length": str(50 * MIB),
    }
    response = await raw_exchange(
        running_gateway.server_url, request_bytes("POST", target, host, headers, b'{"model": ')
    )
    assert response.status == 413
    error_type = assert_error_shape(dialect, response.json())
    assert error_type in ("request_too_large", "invalid_request_error")
    assert "20 MiB" in response.body.decode()
    assert running_gateway.emulator.inference_requests() == []


async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    running_gateway: RunningGateway, server_log: Any
) -> None:
    host, target = _host_and_target(running_gateway, ANTHROPIC_MESSAGES)
    headers = {"Content-Type": "application/json", "Content-Length": str(50 * MIB)}
    response = await raw_exchange(
        running_gateway.server_url, request_bytes("POST", target, host, headers, b"{")
    )
    assert response.status == 401
    assert assert_error_shape("anthropic", response.json()) == "authentication_error"


@pytest.mark.parametrize("size_mib", [1, 8, 30])
async def test_an_unauthenticated_client_with_a_big_body_reads_its_401(
    running_gateway: RunningGateway, server_log: Any, size_mib: int
) -> None:
    """Refused on its headers, answered after its body (dropped unread): the client, which sends
    everything before it reads, sees the 401 and not a connection reset."""
    content = json.dumps(
        valid_body("anthropic", messages=[{"role": "user", "content": "q" * (size_mib * MIB)}])
    ).encode()
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            running_gateway.url(ANTHROPIC_MESSAGES),
            headers={"Authorization": "Bearer wrong-key"},
            content=content,
        )
    assert response.status_code == 401
    assert assert_error_shape("anthropic", response.json()) == "authentication_error"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_21_mib_body_gets_a_413_the_client_can_read(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    big = "x" * (21 * MIB)
    content = json.dumps(valid_body(dialect, messages=[{"role": "user", "content": big}]))
    response = await post(running_gateway, dialect, content.encode())
    assert response.status_code == 413
    assert_error_shape(dialect, response.json())
    assert running_gateway.emulator.inference_requests() == []


async def test_a_chunked_upload_over_the_limit_is_refused(
    running_gateway: RunningGateway, server_log: Any
) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", '
        yield b'"content": "'
        for _ in range(22):  # no Content-Length: refused once 20 MiB have arrived
            yield b"y" * MIB
        yield b'"}]}'

    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            running_gateway.url(ANTHROPIC_MESSAGES), headers=auth(running_gateway), content=pieces()
        )
    assert response.status_code == 413
    assert_error_shape("anthropic", response.json())
    assert running_gateway.emulator.inference_requests() == []


async def test_a_body_just_under_the_limit_still_works(
    running_gateway: RunningGateway, server_log: Any
) -> None:
    running_gateway.emulator.script(Reply.text("big but fine"))
    content = json.dumps(
        valid_body("anthropic", messages=[{"role": "user", "content": "z" * (19 * MIB)}])
    ).encode()
    response = await post(running_gateway, "anthropic", content)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["content"][0]["text"] == "big but fine"


# -- headers and paths ----------------------------------------------------------------------------


async def test_client_headers_that_speak_for_the_gateway_never_reach_cortex(
    running_gateway: RunningGateway, server_log: Any
) -> None:
    running_gateway.emulator.script(Reply.text("ok"))
    response = await post(
        running_gateway,
        "anthropic",
        json.dumps(valid_body("anthropic")).encode(),
        **{
            "x-snowflake-authorization-token-type": "KEYPAIR_JWT",
            "x-forwarded-for": "10.0.0.1",
            "x-evil": "1",
            "cookie": "session=stolen",
            "anthropic-beta": "evil-beta-2099-01-01,\tinterleaved-thinking-2025-05-14,,x" * 50,
            "user-agent": 'agent (odd; "quoted") ' + "u" * 4000,
        },
    )
    assert response.status_code == 200, response.text[:500]
    (sent,) = running_gateway.emulator.inference_requests()
    assert sent.headers["authorization"] == f"Bearer {TEST_PAT}"
    assert sent.headers["x-snowflake-authorization-token-type"] == "PROGRAMMATIC_ACCESS_TOKEN"
    for name in ("x-forwarded-for", "x-evil", "cookie"):
        assert name not in sent.headers
    assert "evil-beta" not in sent.headers.get("anthropic-beta", "")
    assert running_gateway.key not in json.dumps(dict(sent.headers))


@pytest.mark.parametrize(
    "header_line",
    [
        "anthropic-beta: a\rb",  # a bare CR inside a value
        "x-api-key: key\x00nul",
        "user-agent: del\x7fchar",
        " folded: continuation",  # obsolete line folding at the start
        "Content-Length: 5\r\nContent-Length: 7",  # request smuggling's classic
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    ],
    ids=["bare-cr", "nul", "del", "obs-fold", "two-lengths", "te-and-cl"],
)
async def test_header_smuggling_is_refused_by_the_server_not_served(
    running_gateway: RunningGateway, server_log: Any, header_line: str
) -> None:
    host, target = _host_and_target(running_gateway, ANTHROPIC_MESSAGES)
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {running_gateway.key}"
        f"\r\n{header_line}\r\n\r\n"
    )
    try:
        response = await raw_exchange(running_gateway.server_url, head.encode("latin-1") + b"{}")
    except (ConnectionError, EOFError, OSError):  # the server hung up: refused
        response = None
    if response is not None:
        assert response.status in (400, 401, 413), (response.status, response.body[:200])
    assert running_gateway.emulator.inference_requests() == []


async def test_a_foreign_host_header_is_refused_even_with_the_key(
    running_gateway: RunningGateway, server_log: Any
) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 cannot use the gateway."""
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url(ANTHROPIC_MESSAGES),
            headers={**auth(running_gateway), "Host": "evil.example"},
            json=valid_body("anthropic"),
        )
    assert response.status_code == 403
    assert running_gateway.emulator.inference_requests() == []


TRAVERSALS = [
    "cortex-claude/anthropic/v1/../../../api/contents",
    "cortex-claude/anthropic/v1/messages/../../../../api/contents",
    "cortex-claude/%2e%2e/%2e%2e/api/contents",
    "cortex-claude/..%2f..%2fapi%2fcontents",
    "cortex-claude/anthropic/v1/messages%00",
    "cortex-claude/anthropic/v1/messages/..;/..;/api/kernels",
    "cortex-claude/health/%2e%2e/%2e%2e/api/terminals",
    "cortex-claude//anthropic//v1//messages",
    "cortex-claude/anthropic/v1/messages?../../api/contents",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_path_traversal_never_lets_the_gateway_key_into_jupyters_apis(
    running_gateway: RunningGateway, server_log: Any, path: str
) -> None:
    host, _ = _host_and_target(running_gateway, "")
    target = urlsplit(running_gateway.server_url).path.rstrip("/") + "/" + path
    for method in ("GET", "POST"):
        headers = {"Authorization": f"Bearer {running_gateway.key}", "Content-Length": "2"}
        response = await raw_exchange(
            running_gateway.server_url, request_bytes(method, target, host, headers, b"{}")
        )
        assert response.status != 500
        text = response.body.decode("utf-8", "replace")
        assert '"type": "directory"' not in text and '"content": [' not in text
        assert response.status in (301, 302, 400, 401, 403, 404, 405), (method, response.status)
    assert running_gateway.emulator.inference_requests() == []


# -- generated requests ---------------------------------------------------------------------------

FUZZ_ENV = "CORTEX_CLAUDE_FUZZ_REQUESTS"


async def test_thousands_of_generated_requests_get_well_formed_answers_and_no_500(
    running_gateway: RunningGateway, server_log: Any
) -> None:
    """2,000 in CI; CORTEX_CLAUDE_FUZZ_REQUESTS=10000 for the figure in docs/reliability.md."""
    count = int(os.environ.get(FUZZ_ENV, "2000"))
    outcome = FuzzOutcome()
    base = running_gateway.server_url
    await asyncio.to_thread(
        run_fuzz, base, running_gateway.key, count, outcome, running_gateway.emulator
    )
    print(
        f"\nfuzz: {outcome.sent} requests, statuses {dict(outcome.statuses)}, {dict(outcome.kinds)}"
    )
    assert outcome.sent >= count
    assert 500 not in outcome.statuses
    # The run reached past the parser: some requests were served, some refused by Cortex itself.
    assert outcome.statuses[200] > 0 and outcome.statuses[400] > 0


# -- implausible ids and non-finite numbers (issue 11, finding 5) ---------------------------------

# Ids real clients send (Claude Code, the SDKs, Bedrock/Vertex-style ids, Cursor, Aider) and every
# alias in the docs: none may be taken for a hostile id.
PLAUSIBLE_MODEL_IDS = [
    "claude-sonnet-4-5-20250929[1m]",
    "claude-opus-4-6[1m]",
    "claude-opus-5-5",
    "claude-sonnet-4-5-latest",
    "claude-sonnet-4-5@20250929",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
    "global.anthropic.claude-opus-4-6-v1",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "openai/gpt-5",
    "openai-gpt-5",
    "openai-gpt-4.1",
    "gpt-5.5",
    "gpt-4o",
    "ft:gpt-4o-mini:my-org:custom:abc123",
    "llama3.1-70b",
    "mistral-large2",
    "db.schema.my_finetune",
    "sonnet",
    "opus",
    "haiku",
    " claude-sonnet-4-5 ",
    "c" * 256,
]

IMPLAUSIBLE_MODEL_IDS = [
    "c" * 257,
    "m" * (5 * MIB),
    "../../etc/passwd",
    "claude/../../etc/passwd",
    "/etc/passwd",
    "claude-sonnet-4-5\u0000",
    "claude-sonnet-4-5\nX-Injected: 1",
    "claude sonnet",
    "é\u202ebidi",
    "claude-\U0001f600",
    "'; DROP TABLE usage; --",
    "-rf",
]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_plausible_model_ids_all_pass_the_id_check(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    for model in PLAUSIBLE_MODEL_IDS:
        running_gateway.emulator.script(Reply.text("ok"))
        response = await post(
            running_gateway, dialect, json.dumps(valid_body(dialect, model=model)).encode()
        )
        # Served, or refused by Cortex itself as unknown: never by the gateway's id check.
        assert "is not a model id" not in response.text, (model, response.text[:300])
        assert response.status_code in (200, 400), (model, response.text[:300])


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_implausible_model_ids_are_refused_before_cortex_and_the_ledger(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    for model in IMPLAUSIBLE_MODEL_IDS:
        response = await post(
            running_gateway, dialect, json.dumps(valid_body(dialect, model=model)).encode()
        )
        assert response.status_code == 400, (model[:40], response.text[:300])
        assert assert_error_shape(dialect, response.json()) == "invalid_request_error"
        message = response.json()["error"]["message"]
        assert "is not a model id" in message and len(message) < 600, message
    assert running_gateway.emulator.inference_requests() == []
    async with httpx.AsyncClient(timeout=60) as client:
        usage = await client.get(
            running_gateway.url("cortex-claude/usage"),
            params={"group_by": "client_model"},
            headers=auth(running_gateway),
        )
    assert usage.status_code == 200
    assert all(len(str(group["client_model"])) <= 256 for group in usage.json()["groups"])
    assert usage.json()["groups"] == []


NON_FINITE_FRAGMENTS = [
    '"temperature": Infinity',
    '"temperature": -Infinity',
    '"temperature": NaN',
    '"temperature": 1e999',
    '"top_p": -1e400',
    '"metadata": {"deep": [1, 2, {"x": 1E+999}]}',
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("fragment", NON_FINITE_FRAGMENTS)
async def test_non_finite_numbers_anywhere_are_refused_before_cortex(
    running_gateway: RunningGateway, server_log: Any, dialect: str, fragment: str
) -> None:
    content = json.dumps(valid_body(dialect))[:-1] + f", {fragment}}}"
    response = await post(running_gateway, dialect, content.encode())
    assert response.status_code == 400, response.text[:300]
    assert assert_error_shape(dialect, response.json()) == "invalid_request_error"
    assert "not finite" in response.json()["error"]["message"]
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_non_finite_numbers_inside_messages_are_refused(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    turns = ", ".join(f'{{"role": "user", "content": "turn {i}"}}' for i in range(300))
    head = json.dumps(valid_body(dialect))[:-1]
    content = head + f', "messages": [{turns}, {{"role": "user", "content": "x", "w": NaN}}]}}'
    response = await post(running_gateway, dialect, content.encode())
    assert response.status_code == 400, response.text[:300]
    assert "not finite" in response.json()["error"]["message"]
    async with httpx.AsyncClient(timeout=60) as client:
        counted = await client.post(
            running_gateway.url(ANTHROPIC_MESSAGES, "count_tokens"),
            headers=auth(running_gateway),
            content=b'{"model": "claude-sonnet-4-5", "messages": [], "x": Infinity}',
        )
    assert counted.status_code == 400
    assert "not finite" in counted.json()["error"]["message"]
    assert running_gateway.emulator.inference_requests() == []


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON token {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "query",
    [
        {"since": "1e309"},
        {"since": "-1e309"},
        {"since": "nan"},
        {"since": "inf"},
        {"since": "Infinity"},
        {"since": "9" * 400 + "d"},
        {"since": "2025-13-45"},
        {"since": "x" * 20_000},
        {"since": "\u202e7d"},
        {"group_by": "prompt" * 5000},
    ],
    ids=[
        "1e309",
        "-1e309",
        "nan",
        "inf",
        "Infinity",
        "huge-days",
        "bad-date",
        "long",
        "bidi",
        "group",
    ],
)
async def test_bad_usage_queries_get_a_clear_400_in_valid_json(
    running_gateway: RunningGateway, server_log: Any, query: dict[str, str]
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(
            running_gateway.url("cortex-claude/usage"), params=query, headers=auth(running_gateway)
        )
    assert response.status_code == 400, response.text[:300]
    body = _strict_json(response.text)
    assert assert_error_shape("anthropic", body) == "invalid_request_error"
    assert len(body["error"]["message"]) < 400, body


# -- upstream event streams (issue 11, L2 and L3) -------------------------------------------------


async def _stream(gateway: RunningGateway, dialect: str) -> tuple[int, bytes]:
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream(
            "POST",
            gateway.url(ENDPOINT_OF[dialect]),
            headers={**auth(gateway), "content-type": "application/json"},
            content=json.dumps(valid_body(dialect, stream=True)).encode(),
        ) as response,
    ):
        return response.status_code, await response.aread()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_crlf_split_across_two_tcp_chunks_keeps_the_stream_whole(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    running_gateway.emulator.fail_next(Fault.crlf_split())
    running_gateway.emulator.script(Reply.text("split across chunks, still whole"))
    status, body = await _stream(running_gateway, dialect)
    assert status == 200
    assert check_reply(dialect, ENDPOINT_OF[dialect], status, "text/event-stream", body) == "stream"
    frames = sse_frames(body)
    if dialect == "anthropic":
        text = "".join(
            json.loads(data)["delta"].get("text", "")
            for name, data in frames
            if name == "content_block_delta"
        )
    else:
        text = "".join(
            json.loads(data)["choices"][0]["delta"].get("content") or ""
            for _, data in frames
            if data != "[DONE]" and json.loads(data)["choices"]
        )
    assert text == "split across chunks, still whole"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_upstream_event_that_never_ends_fails_the_stream_and_is_let_go(
    running_gateway: RunningGateway, server_log: Any, dialect: str
) -> None:
    """64 MiB without a blank line: the gateway gives up past 8 MiB with the usual mid-stream
    error (never a clean end) and hangs up on Cortex instead of buffering the rest."""
    emulator = running_gateway.emulator
    emulator.fail_next(Fault.endless_event(64))
    status, body = await _stream(running_gateway, dialect)
    assert status == 200
    frames = sse_frames(body)
    name, data = frames[-1]  # one error event, as for any stream that broke mid-answer
    assert (name == "error") if dialect == "anthropic" else ("error" in json.loads(data))
    assert "larger than 8 MiB" in data
    assert b"message_stop" not in body and b"[DONE]" not in body
    for _ in range(200):
        if emulator.streams_abandoned:
            break
        await asyncio.sleep(0.05)
    assert emulator.streams_abandoned == 1


# -- one request must not freeze Jupyter (issue 11, finding 1) ------------------------------------
# Through a real `jupyter server` process, with the Cortex emulator in a process of its own: a
# probe of Jupyter's /api/status from this process measures how long the server's event loop
# keeps other users waiting while it works on one large request.

ANSWER_BOUND_SECONDS = 3.0  # the bounds, not tuned to this machine
PROBE_BOUND_SECONDS = 0.5
# The machines these run on are shared: a run during which the OS starved the server of CPU says
# nothing about the code, so a case may be tried up to three times and one run within both bounds
# passes. A run slower than ten times the bound is no accident and is not retried (the quadratic
# merge took 30-60 s).
ATTEMPTS = 3


@dataclass
class ProbedExchange:
    status: int
    text: str
    seconds: float
    longest_probe: float
    probes: int


@pytest.fixture(scope="module")
def jupyter_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    emulator = servers.start_emulator(0.0)
    try:
        emulator_port = int(emulator.url.rsplit(":", 1)[1])
        jupyter = servers.start_jupyter(tmp_path_factory.mktemp("jupyter"), emulator_port)
        try:
            # One small request per route first: a fresh server's first request pays one-time
            # costs (the gateway's start, imports, the connection to Cortex), not measured here.
            for dialect, model in ROUTES:
                warm_up = _body(dialect, model, [{"role": "user", "content": "hi"}])
                asyncio.run(_post_while_probing(jupyter, dialect, warm_up))
            yield jupyter
        finally:
            jupyter.stop()
    finally:
        emulator.stop()


async def _post_while_probing(
    jupyter: servers.Server, dialect: str, content: bytes
) -> ProbedExchange:
    waits: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        headers = {"Authorization": f"token {servers.JUPYTER_TOKEN}"}
        async with httpx.AsyncClient(timeout=60) as client:
            while not done.is_set():
                started = time.perf_counter()
                status = await client.get(f"{jupyter.url}/api/status", headers=headers)
                waits.append(time.perf_counter() - started)
                assert status.status_code == 200
                await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.2)
    headers = {
        "Authorization": f"Bearer {jupyter.extra['key']}",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        response = await client.post(
            f"{jupyter.url}/{ENDPOINT_OF[dialect]}", content=content, headers=headers
        )
        seconds = time.perf_counter() - started
    done.set()
    await prober
    print(
        f"\n{len(content) / MIB:.1f} MiB {dialect}: {response.status_code} in {seconds:.2f} s, "
        f"longest /api/status wait {max(waits) * 1000:.0f} ms of {len(waits)} probes"
    )
    return ProbedExchange(response.status_code, response.text, seconds, max(waits), len(waits))


def _answered_within_bounds(
    jupyter: servers.Server, dialect: str, content: bytes, status: int
) -> ProbedExchange:
    attempts: list[ProbedExchange] = []
    for _ in range(ATTEMPTS):
        exchange = asyncio.run(_post_while_probing(jupyter, dialect, content))
        assert exchange.status == status, exchange.text[:300]
        attempts.append(exchange)
        if exchange.seconds <= ANSWER_BOUND_SECONDS and exchange.longest_probe <= (
            PROBE_BOUND_SECONDS
        ):
            return exchange
        if exchange.seconds > 10 * ANSWER_BOUND_SECONDS:
            break
    pytest.fail(
        f"no run answered within {ANSWER_BOUND_SECONDS} s with every /api/status probe within "
        f"{PROBE_BOUND_SECONDS} s: "
        + "; ".join(f"{a.seconds:.2f} s, probe {a.longest_probe:.2f} s" for a in attempts)
    )


def _body(dialect: str, model: str, messages: list[dict[str, Any]]) -> bytes:
    return json.dumps(valid_body(dialect, model=model, messages=messages)).encode()


def _filled_to(dialect: str, model: str, size: int, filler: int) -> bytes:
    """Alternating user/assistant messages of ``filler`` characters, up to ``size`` bytes."""
    pair = sum(
        len(json.dumps({"role": role, "content": "9999999 " + "x" * filler})) + 2
        for role in ("user", "assistant")
    )
    count = 2 * (size - len(_body(dialect, model, []))) // pair
    count -= 1 - count % 2  # odd: the conversation starts and ends with a user turn
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i:07d} " + "x" * filler}
        for i in range(count)
    ]
    return _body(dialect, model, messages)


# (dialect, model): Claude on Cortex's Messages API, a non-Claude model on the translated Chat
# path, and the OpenAI endpoint.
ROUTES = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "llama3.1-70b"),
    ("openai", "claude-sonnet-4-5"),
]
ROUTE_IDS = ["claude", "translated", "openai"]


@pytest.mark.parametrize(("dialect", "model"), ROUTES, ids=ROUTE_IDS)
def test_40000_same_role_messages_are_answered_while_jupyter_keeps_serving(
    jupyter_process: servers.Server, dialect: str, model: str
) -> None:
    messages = [{"role": "user", "content": f"message {i}"} for i in range(40_000)]
    _answered_within_bounds(jupyter_process, dialect, _body(dialect, model, messages), 200)


@pytest.mark.parametrize(("dialect", "model"), ROUTES, ids=ROUTE_IDS)
def test_a_20_mib_body_of_40000_messages_is_answered_while_jupyter_keeps_serving(
    jupyter_process: servers.Server, dialect: str, model: str
) -> None:
    content = _filled_to(dialect, model, 20 * MIB - 4096, filler=500)
    _answered_within_bounds(jupyter_process, dialect, content, 200)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_20_mib_body_of_tiny_messages_is_refused_while_jupyter_keeps_serving(
    jupyter_process: servers.Server, dialect: str
) -> None:
    """About 500,000 messages: over c.CortexClaude.max_messages, refused as soon as the parser
    passes the limit, in the endpoint's own error shape."""
    content = _filled_to(dialect, "claude-sonnet-4-5", 20 * MIB - 4096, filler=2)
    exchange = _answered_within_bounds(jupyter_process, dialect, content, 400)
    assert "more than 100,000" in json.loads(exchange.text)["error"]["message"]
