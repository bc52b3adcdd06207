"""Issue 2's promises, checked through a real Jupyter server against the strict emulator."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from jupyter_cortex_claude.testing import Fault, Reply

from .conftest import TEST_PAT, RunningGateway

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "claude-code").glob("*.json"))


def gateway_headers(gateway: RunningGateway, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.key}", "anthropic-version": "2023-06-01", **extra}


def small_request(**overrides: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **overrides,
    }


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_captures_hold_every_client_shape() -> None:
    assert len(FIXTURES) >= 5, "tests/fixtures/claude-code/ must hold the captured requests"


@pytest.mark.parametrize("capture", FIXTURES, ids=[path.stem for path in FIXTURES])
async def test_captured_claude_code_requests_are_accepted_after_shaping(
    running_gateway: RunningGateway, capture: Path
) -> None:
    recorded = json.loads(capture.read_text())
    beta = next(v for k, v in recorded["headers"].items() if k.lower() == "anthropic-beta")
    running_gateway.emulator.script(Reply.text("Shaped and accepted."))
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages") + "?beta=true",
            headers=gateway_headers(running_gateway, **{"anthropic-beta": beta}),
            json=recorded["body"],
        )
    assert response.status_code == 200, response.text
    if recorded["body"].get("stream"):
        events = sse_events(response.content)
        assert events[0][0] == "message_start"
        assert events[0][1]["message"]["model"] == recorded["body"]["model"]
        assert events[-1][0] == "message_stop"
    else:
        assert response.json()["content"][0]["text"] == "Shaped and accepted."
        assert response.json()["model"] == recorded["body"]["model"]

    (sent,) = running_gateway.emulator.inference_requests()
    assert sent.body["model"] == "claude-opus-4-6"
    assert sent.body["max_tokens"] == 16384
    assert "metadata" not in sent.body
    assert {m["role"] for m in sent.body["messages"]} <= {"user", "assistant"}
    assert not sent.body["system"][0]["text"].startswith("x-anthropic-billing-header")
    assert set(sent.headers["anthropic-beta"].split(",")) <= {
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
        "effort-2025-11-24",
    }


async def test_any_client_anthropic_version_is_accepted_and_cortex_gets_2023_06_01(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers=gateway_headers(running_gateway, **{"anthropic-version": "2026-10-21"}),
            json=small_request(),
        )
    assert response.status_code == 200, response.text
    sent = running_gateway.emulator.inference_requests()[-1]
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["authorization"] == f"Bearer {TEST_PAT}"
    assert sent.headers["x-snowflake-authorization-token-type"] == "PROGRAMMATIC_ACCESS_TOKEN"


async def test_user_model_map_wins(jp_serverapp: Any, running_gateway: RunningGateway) -> None:
    running_gateway.service.policy.model_map["my-team-model"] = "claude-haiku-4-5"
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers=gateway_headers(running_gateway),
            json=small_request(model="my-team-model"),
        )
    assert response.json()["model"] == "my-team-model"
    assert running_gateway.emulator.inference_requests()[-1].body["model"] == "claude-haiku-4-5"


# -- our side of auth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"x-api-key": "wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["nothing", "wrong-bearer", "wrong-x-api-key", "basic"],
)
async def test_unauthenticated_requests_get_an_anthropic_401_and_never_reach_cortex(
    running_gateway: RunningGateway, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers=headers,
            json=small_request(),
        )
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
async def test_gateway_key_and_jupyter_token_both_open_the_gateway(
    running_gateway: RunningGateway, header: str
) -> None:
    async with httpx.AsyncClient() as client:
        for secret in (running_gateway.key, running_gateway.jupyter_token):
            value = f"Bearer {secret}" if header == "Authorization" else secret
            response = await client.get(
                running_gateway.url("cortex-claude/health"), headers={header: value}
            )
            assert response.status_code == 200, response.text


async def test_gateway_key_does_not_open_jupyters_other_apis(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("api/contents", "api/kernels", "api/terminals", "api/sessions"):
            response = await client.get(
                running_gateway.url(path),
                headers={"Authorization": f"Bearer {running_gateway.key}"},
            )
            assert response.status_code in (401, 403), (path, response.status_code)


async def test_gateway_key_file_is_private(running_gateway: RunningGateway) -> None:
    key_file = running_gateway.service.key.path
    assert key_file is not None and key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(key_file.read_text())["key"] == running_gateway.key


# -- errors in Anthropic's shape -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "times", "status", "error_type", "words"),
    [
        (Fault.status(402), 1, 402, "permission_error", "budget"),
        (Fault.status(403, message="Not Authorized"), 1, 403, "permission_error", "CORTEX_USER"),
        (Fault.status(429), 3, 429, "rate_limit_error", "rate limit"),
        (Fault.throttled_400(), 3, 429, "rate_limit_error", "throttled"),
        (Fault.status(503), 3, 529, "overloaded_error", "timed out"),
        (Fault.status(500), 1, 500, "api_error", "Cortex answered 500"),
    ],
    ids=["402", "403", "429", "throttled-400", "503", "500"],
)
async def test_cortex_errors_reach_the_client_in_anthropic_shape(
    running_gateway: RunningGateway,
    fault: Fault,
    times: int,
    status: int,
    error_type: str,
    words: str,
) -> None:
    running_gateway.emulator.fail_next(fault, times=times)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers=gateway_headers(running_gateway),
            json=small_request(stream=True),
        )
    assert response.status_code == status
    body = response.json()
    assert body["error"]["type"] == error_type
    assert words.lower() in body["error"]["message"].lower()
    assert "Snowflake request id" in body["error"]["message"]
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1
    assert len(running_gateway.emulator.inference_requests()) == times


async def test_a_passing_429_is_retried_before_the_client_sees_anything(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.fail_next(Fault.status(429))
    running_gateway.emulator.script(Reply.text("after a retry"))
    reply = await running_gateway.anthropic().messages.create(**small_request())
    assert reply.content[0].text == "after a retry"
    assert len(running_gateway.emulator.inference_requests()) == 2


async def test_unknown_model_is_a_400_that_names_cross_region(
    running_gateway: RunningGateway,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await running_gateway.anthropic().messages.create(**small_request(model="llama9-nope"))
    assert "CORTEX_ENABLED_CROSS_REGION" in str(refused.value)


async def test_bad_input_gets_a_clear_400_and_cortex_is_not_called(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient() as client:
        for body in (b"{not json", b"[]", json.dumps({"model": "x"}).encode(), b"\xff\xfe"):
            response = await client.post(
                running_gateway.url("cortex-claude/anthropic/v1/messages"),
                headers=gateway_headers(running_gateway),
                content=body,
            )
            assert response.status_code == 400, body
            assert response.json()["error"]["type"] == "invalid_request_error"
    assert running_gateway.emulator.inference_requests() == []


async def test_a_stream_cut_mid_way_ends_with_an_error_event_not_message_stop(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=4))
    running_gateway.emulator.script(Reply.text("this answer will be cut in the middle"))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers=gateway_headers(running_gateway),
            json=small_request(stream=True),
        )
    events = sse_events(response.content)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert "message_stop" not in names
    assert names[-1] == "error"
    assert (
        events[-1][1]["error"]["message"].startswith("Incomplete answer")
        or "broke" in (events[-1][1]["error"]["message"])
    )


async def test_client_disconnect_closes_the_upstream_request(
    running_gateway: RunningGateway,
) -> None:
    emulator = running_gateway.emulator
    emulator.token_delay = 0.02
    emulator.script(Reply.text(" ".join(f"word{i}" for i in range(400))))
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST",
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            headers=gateway_headers(running_gateway),
            json=small_request(stream=True),
        ) as response,
    ):
        async for _chunk in response.aiter_bytes():
            break  # the user pressed Ctrl-C after the first bytes
    for _ in range(200):
        if emulator.streams_abandoned:
            break
        await asyncio.sleep(0.02)
    assert emulator.streams_abandoned == 1


# -- the other Anthropic endpoints -----------------------------------------------------------


async def test_count_tokens_is_served_locally(running_gateway: RunningGateway) -> None:
    client = running_gateway.anthropic()
    counted = await client.messages.count_tokens(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "How many tokens is this sentence? " * 20}],
    )
    assert 100 < counted.input_tokens < 400
    assert running_gateway.emulator.inference_requests() == []


async def test_models_are_listed_in_anthropic_format(running_gateway: RunningGateway) -> None:
    page = await running_gateway.anthropic().models.list(limit=1000)
    ids = [model.id for model in page.data]
    assert "claude-sonnet-4-5" in ids
    assert all(model.type == "model" for model in page.data)


async def test_health_says_what_is_configured_and_never_a_secret(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            running_gateway.url("cortex-claude/health"),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
        )
    health = response.json()
    assert health["status"] == "ok"
    assert health["demo"] is False
    assert health["account_host"] == "127.0.0.1"
    assert health["auth_method"] == "programmatic_access_token"
    assert health["default_model"]
    assert TEST_PAT not in response.text
    assert running_gateway.key not in response.text


async def test_a_login_that_cannot_run_is_a_403_with_the_fix(
    running_gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password login needs the Snowflake connector; without it the user is told, at once."""
    # None in sys.modules is Python's "not importable": the connector as if not installed.
    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    service = running_gateway.service
    await service.stop()
    service.config.authenticator = "snowflake"
    service.config.password = "pw"
    service.config.token = ""
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        await running_gateway.anthropic().messages.create(**small_request())
    assert "pip install 'snowflake-connector-python>=3.12'" in str(refused.value)
    assert running_gateway.emulator.inference_requests() == []
