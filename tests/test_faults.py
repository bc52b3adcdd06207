"""Every way Cortex (or the road to it) can fail, through a real Jupyter server, on both endpoints:
what the client sees must be an error it understands, never a clean end after a partial answer.

With CORTEX_CLAUDE_RELIABILITY_TABLE=<file>, each passing case appends its row of the table in
docs/reliability.md (fault, endpoint, what the client saw).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply

from .battery import ENDPOINT_OF, assert_error_shape, record_row, sse_frames
from .conftest import RunningGateway, emulator_config

DIALECTS = ["anthropic", "openai"]
READ_TIMEOUT = 0.5  # seconds of upstream silence before the gateway gives up (tests only)


PLAIN_TEXT = "plain-text"  # as a port: a server that answers a TLS handshake with plain text


@pytest.fixture
def cortex_claude_config(request: pytest.FixtureRequest, cortex_emulator: CortexEmulator) -> Any:
    """The emulator with a short read timeout; a test may override fields (indirect param)."""
    overrides = dict(getattr(request, "param", {}))
    if overrides.get("port") == PLAIN_TEXT:
        overrides["port"] = request.getfixturevalue("plain_text_server")
    return emulator_config(cortex_emulator, read_timeout=READ_TIMEOUT, **overrides)


@pytest.fixture
def plain_text_server() -> Iterator[int]:
    """A port whose server answers every connection at once with plain HTTP and closes: what a
    TLS client meets when the port (or a proxy) speaks no TLS ("wrong version number")."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    listener.close()


def body_for(dialect: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    if dialect == "anthropic":
        body["max_tokens"] = 100
    return body


async def call(gateway: RunningGateway, dialect: str, *, stream: bool) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            gateway.url(ENDPOINT_OF[dialect]),
            headers={"Authorization": f"Bearer {gateway.key}", "anthropic-version": "2023-06-01"},
            json=body_for(dialect, stream=stream),
        )


def seen(response: httpx.Response) -> str:
    """A short description of what the client saw, for the table."""
    if response.status_code >= 400:
        body = response.json()
        kind = body["error"]["type"]
        extra = (
            f", retry-after {response.headers['retry-after']}"
            if "retry-after" in response.headers
            else ""
        )
        if response.headers.get("x-should-retry") == "false":
            extra += ", x-should-retry: false"
        return f"{response.status_code} {kind}{extra}"
    frames = (
        sse_frames(response.content) if "event-stream" in response.headers["content-type"] else []
    )
    if not frames:
        return "200 JSON answer"
    last_name, last_data = frames[-1]
    if last_name == "error" or (last_data != "[DONE]" and "error" in json.loads(last_data)):
        return (
            f"200 stream, {len(frames) - 1} events then an `error` event (no message_stop / [DONE])"
        )
    return "200 complete stream"


def assert_stream_ends_in_error(dialect: str, response: httpx.Response) -> str:
    assert response.status_code == 200
    frames = sse_frames(response.content)
    names = [name for name, _ in frames]
    datas = [data for _, data in frames]
    if dialect == "anthropic":
        assert "message_stop" not in names, names
        assert names[-1] == "error", names
        return assert_error_shape("anthropic", json.loads(datas[-1]))
    assert "[DONE]" not in datas, datas[-3:]
    return assert_error_shape("openai", json.loads(datas[-1]))


# -- Cortex refuses ----------------------------------------------------------------------------

REFUSALS = [
    # fault, times, anthropic (status, type), openai (status, type), words in the message
    (Fault.status(429), 3, (429, "rate_limit_error"), (429, "rate_limit_error"), "rate limit"),
    (Fault.throttled_400(), 3, (429, "rate_limit_error"), (429, "rate_limit_error"), "throttled"),
    (Fault.status(503), 3, (529, "overloaded_error"), (503, "server_error"), "timed out"),
    (Fault.status(402), 1, (402, "permission_error"), (402, "insufficient_quota"), "budget"),
    (
        Fault.status(403, message="Not Authorized"),
        1,
        (403, "permission_error"),
        (403, "permission_error"),
        "CORTEX_USER",
    ),
    (
        Fault.status(403, message="Model not allowed for this account"),
        1,
        (403, "permission_error"),
        (403, "permission_error"),
        "CORTEX_MODELS_ALLOWLIST",
    ),
    (Fault.status(500), 1, (500, "api_error"), (500, "api_error"), "Cortex answered 500"),
]
REFUSAL_IDS = [
    "429-burst",
    "throttled-400-burst",
    "503-burst",
    "402",
    "403-role",
    "403-model",
    "500",
]


def fault_label(fault: Fault) -> str:
    if fault.kind != "status":
        return fault.kind.replace("_", " ")
    if fault.message and "throttled" in fault.message:
        return "throttled 400"
    return f"{fault.http_status}" + (f" ({fault.message})" if fault.message else "")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("fault", "times", "anthropic", "openai", "words"), REFUSALS, ids=REFUSAL_IDS
)
async def test_cortex_refusals_reach_the_client_as_errors_it_understands(
    running_gateway: RunningGateway,
    fault: Fault,
    times: int,
    anthropic: tuple[int, str],
    openai: tuple[int, str],
    words: str,
    dialect: str,
    stream: bool,
) -> None:
    running_gateway.emulator.fail_next(fault, times=times)
    response = await call(running_gateway, dialect, stream=stream)
    status, error_type = anthropic if dialect == "anthropic" else openai
    assert response.status_code == status, response.text
    assert assert_error_shape(dialect, response.json()) == error_type
    assert words.lower() in response.text.lower()
    assert "Snowflake request id" in response.text
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1
    # Retried before the first byte (max_retries=2), never more.
    assert len(running_gateway.emulator.inference_requests()) == times
    record_row(f"{fault_label(fault)} ×{times}", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("fault", [Fault.status(429), Fault.status(503), Fault.throttled_400()])
async def test_a_short_burst_is_retried_before_the_first_byte_and_the_client_sees_only_success(
    running_gateway: RunningGateway, dialect: str, fault: Fault
) -> None:
    running_gateway.emulator.fail_next(fault, times=2)
    running_gateway.emulator.script(Reply.text("after two retries"))
    response = await call(running_gateway, dialect, stream=True)
    assert seen(response) == "200 complete stream", response.text
    assert len(running_gateway.emulator.inference_requests()) == 3
    record_row(f"{fault_label(fault)} ×2, then OK", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_connection_reset_after_the_request_went_out_is_reported_not_re_sent(
    running_gateway: RunningGateway, dialect: str
) -> None:
    """The emulator resets the connection after it read the request: Cortex may have processed
    it (and billed it), so the gateway must not send it again."""
    running_gateway.emulator.fail_next(Fault.connection_reset(), times=2)
    response = await call(running_gateway, dialect, stream=True)
    assert response.status_code == 502, response.text
    assert assert_error_shape(dialect, response.json()) == "api_error"
    assert "not re-sent" in response.json()["error"]["message"]
    assert len(running_gateway.emulator.inference_requests()) == 1
    record_row("connection reset after the request was sent", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_retry_after_longer_than_the_backoff_is_waited(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    emulator.fail_next(Fault.status(429, retry_after=1))  # the backoff here is 0.01 s
    emulator.script(Reply.text("after waiting as told"))
    response = await call(running_gateway, dialect, stream=True)
    assert seen(response) == "200 complete stream", response.text
    first, second = emulator.inference_requests()
    # Not a timing bound: a lower one. The retry came no sooner than Cortex asked.
    assert second.at - first.at >= 0.95
    record_row("429 with Retry-After: 1, then OK", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_retry_after_beyond_the_deadline_is_passed_on_at_once(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    emulator.fail_next(Fault.status(429, retry_after=120))  # past the retry deadline
    response = await call(running_gateway, dialect, stream=True)
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "120"
    assert len(emulator.inference_requests()) == 1
    record_row("429 with Retry-After: 120", dialect, seen(response), "pass")


@pytest.mark.parametrize(
    "cortex_claude_config",
    [{"retry_deadline": 1.0, "max_retries": 1000, "retry_backoff": 0.05}],
    indirect=True,
)
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_retry_deadline_bounds_the_loop(
    running_gateway: RunningGateway, dialect: str
) -> None:
    emulator = running_gateway.emulator
    emulator.fail_next(Fault.status(503), times=1000)
    started = time.monotonic()
    response = await call(running_gateway, dialect, stream=True)
    elapsed = time.monotonic() - started
    assert response.status_code == (529 if dialect == "anthropic" else 503), response.text
    tries = len(emulator.inference_requests())
    assert 2 <= tries < 1000
    arrivals = [request.at for request in emulator.inference_requests()]
    assert arrivals[-1] - arrivals[0] < 1.0  # no attempt started after the deadline
    assert elapsed < 1.0 + 5.0, elapsed  # the deadline, plus a generous margin for a busy CI
    record_row(
        "503 for ever, retry_deadline 1 s", dialect, f"{seen(response)} after {tries} tries", "pass"
    )


# -- the road to Cortex is broken ------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


SHORT_DEADLINE = {"retry_deadline": 1.0}
UNREACHABLE = [
    pytest.param(
        {"port": closed_port(), **SHORT_DEADLINE}, "127.0.0.1:", "refused", id="connection-refused"
    ),
    pytest.param(
        {"host": "nonexistent.invalid", **SHORT_DEADLINE},
        "nonexistent.invalid:",
        "does not resolve",
        id="dns-failure",
    ),
    pytest.param(
        {"protocol": "https", "port": PLAIN_TEXT}, "127.0.0.1:", "TLS handshake", id="tls-failure"
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("cortex_claude_config", "named", "what"), UNREACHABLE, indirect=["cortex_claude_config"]
)
async def test_an_unreachable_account_host_is_a_502_naming_the_host_that_clients_do_not_retry(
    running_gateway: RunningGateway, dialect: str, named: str, what: str
) -> None:
    response = await call(running_gateway, dialect, stream=True)
    assert response.status_code == 502, response.text
    assert assert_error_shape(dialect, response.json()) == "api_error"
    assert response.headers["x-should-retry"] == "false"
    message = response.json()["error"]["message"]
    assert "Could not reach Snowflake at " + named in message, message
    assert what in message, message
    assert "Check " in message
    assert running_gateway.emulator.requests == []
    record_row(f"unreachable host ({what})", dialect, seen(response), "pass")


DEFAULT_RETRIES = {
    name: getattr(CortexClaude(), name)
    for name in ("max_retries", "retry_backoff", "retry_deadline")
}


@pytest.mark.parametrize(
    "cortex_claude_config", [{"port": closed_port(), **DEFAULT_RETRIES}], indirect=True
)
async def test_a_two_second_outage_is_ridden_out_with_the_default_retry_settings(
    running_gateway: RunningGateway, cortex_emulator_factory: Any
) -> None:
    """Nothing listens on the account's port for two seconds; then Cortex is back. The request
    that arrived during the outage is answered, once (the failed connects never reached it)."""
    port = running_gateway.service.connection.port
    request = asyncio.ensure_future(call(running_gateway, "anthropic", stream=True))
    await asyncio.sleep(2.0)
    back = cortex_emulator_factory(port=port)
    back.script(Reply.text("back again"))
    response = await request
    assert seen(response) == "200 complete stream", response.text
    assert len(back.inference_requests()) == 1
    record_row("2 s outage (nothing listens), then OK", "anthropic", seen(response), "pass")


# -- Cortex stalls, breaks off, or talks nonsense --------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_stall_before_the_first_byte_is_reported_at_once_and_not_re_sent(
    running_gateway: RunningGateway, dialect: str, stream: bool
) -> None:
    """Cortex received the request and says nothing (a stall, or a non-streamed answer slower
    than read_timeout): re-sending would run and bill it again. One request, one clear error,
    after about read_timeout."""
    emulator = running_gateway.emulator
    emulator.fail_next(Fault.stall_before_first_byte(READ_TIMEOUT * 6), times=3)
    started = time.monotonic()
    response = await call(running_gateway, dialect, stream=stream)
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert assert_error_shape(dialect, response.json()) == "api_error"
    assert response.headers["x-should-retry"] == "false"
    message = response.json()["error"]["message"]
    assert f"sent nothing for {READ_TIMEOUT:g} s" in message and "not re-sent" in message
    assert len(emulator.inference_requests()) == 1
    assert elapsed < READ_TIMEOUT + 5.0, elapsed  # not max_retries × read_timeout
    label = "stall before first byte" if stream else "non-streamed answer slower than read_timeout"
    record_row(label, dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_stall_mid_stream_ends_in_an_error_event(
    running_gateway: RunningGateway, dialect: str
) -> None:
    running_gateway.emulator.fail_next(
        Fault.stall_mid_stream(after_events=3, seconds=READ_TIMEOUT * 6)
    )
    running_gateway.emulator.script(Reply.text("this answer stalls in the middle of a sentence"))
    response = await call(running_gateway, dialect, stream=True)
    assert_stream_ends_in_error(dialect, response)
    assert "stopped sending mid-answer" in response.text
    record_row("stall mid-stream", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("after_events", [1, 3, 6])
async def test_a_stream_cut_mid_way_ends_in_an_error_event(
    running_gateway: RunningGateway, dialect: str, after_events: int
) -> None:
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=after_events))
    running_gateway.emulator.script(Reply.text("this answer will be cut somewhere in the middle"))
    response = await call(running_gateway, dialect, stream=True)
    assert_stream_ends_in_error(dialect, response)
    record_row(f"stream cut after {after_events} events", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_json_answer_cut_mid_way_is_a_502(
    running_gateway: RunningGateway, dialect: str
) -> None:
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=0))
    response = await call(running_gateway, dialect, stream=False)
    assert response.status_code == 502, response.text
    assert_error_shape(dialect, response.json())
    record_row("JSON answer cut mid-way", dialect, seen(response), "pass")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_malformed_answers_from_cortex_become_errors(
    running_gateway: RunningGateway, dialect: str, stream: bool
) -> None:
    running_gateway.emulator.fail_next(Fault.malformed_sse())
    response = await call(running_gateway, dialect, stream=stream)
    if stream:
        assert_stream_ends_in_error(dialect, response)
        assert "malformed" in response.text
    else:
        assert response.status_code == 502, response.text
        assert_error_shape(dialect, response.json())
    record_row(f"malformed {'SSE' if stream else 'JSON'}", dialect, seen(response), "pass")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.ok_with_error_body(), 401),
        (Fault.ok_with_error_body(code="000605", message="Statement canceled"), 502),
    ],
    ids=["session-expired-390112", "other-error-code"],
)
async def test_a_200_with_an_error_body_is_an_error_not_an_answer(
    running_gateway: RunningGateway, dialect: str, stream: bool, fault: Fault, status: int
) -> None:
    running_gateway.emulator.fail_next(fault)
    response = await call(running_gateway, dialect, stream=stream)
    assert response.status_code == status, response.text
    assert_error_shape(dialect, response.json())
    assert "Cortex answered 200" in response.json()["error"]["message"]
    record_row(f"200 with error body (code {fault.code})", dialect, seen(response), "pass")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_credential_revoked_during_a_long_stream_lets_it_finish_and_the_next_call_says_why(
    running_gateway: RunningGateway, dialect: str
) -> None:
    """Snowflake checks the credential when a request starts: a stream already running finishes;
    the next request gets a clear 401 (not a 500, not a hang)."""
    emulator = running_gateway.emulator
    emulator.token_delay = 0.005
    emulator.script(Reply.text(" ".join(f"w{i}" for i in range(200))))
    frames: list[bytes] = []
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream(
            "POST",
            running_gateway.url(ENDPOINT_OF[dialect]),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
            json=body_for(dialect, stream=True),
        ) as response:
            async for chunk in response.aiter_bytes():
                if not frames:
                    emulator.revoke(emulator_config(emulator)["token"])
                frames.append(chunk)
        stream_seen = seen(httpx.Response(200, headers=response.headers, content=b"".join(frames)))
        assert stream_seen == "200 complete stream"
        refused = await client.post(
            running_gateway.url(ENDPOINT_OF[dialect]),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
            json=body_for(dialect, stream=True),
        )
    assert refused.status_code == 401, refused.text
    assert assert_error_shape(dialect, refused.json()) == "authentication_error"
    assert "rejected the credential" in refused.text
    # A refusal that survived the credential's own renewal will not heal: clients are told not to
    # retry it (Claude Code would otherwise retry a 401 for minutes).
    assert refused.headers.get("x-should-retry") == "false"
    record_row(
        "credential revoked during a long stream",
        dialect,
        f"stream completes; next call: {seen(refused)}",
        "pass",
    )
