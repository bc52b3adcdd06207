"""The gateway's HTTP edges in each mode: the base-path probe, over-limit bodies, bodies that never
come.

Jupyter mode is a real Jupyter server with the extension; the standalone and in-kernel modes share
``standalone.start_gateway_server`` (the in-kernel gateway is that server on a kernel's thread),
which these tests start as ``cortex-claude serve`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.service import GatewayService
from jupyter_cortex_claude.standalone import RunningGatewayServer, start_gateway_server
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .conftest import RunningGateway, emulator_config

LIMIT = 1024 * 1024  # a small max_request_bytes keeps the bodies of these tests small
BODY_TIMEOUT = 1.0


def limited_config(emulator: CortexEmulator) -> dict[str, Any]:
    return emulator_config(
        emulator,
        max_request_bytes=LIMIT,
        request_body_timeout=BODY_TIMEOUT,
        usage_db_path=":none:",
    )


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator) -> dict[str, Any]:
    return limited_config(cortex_emulator)


@contextlib.asynccontextmanager
async def standalone(cortex_emulator: CortexEmulator) -> AsyncIterator[RunningGatewayServer]:
    service = GatewayService(CortexClaude(**limited_config(cortex_emulator)))
    running = await start_gateway_server(service)
    try:
        yield running
    finally:
        await running.stop()


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(64 * 1024, total - sent)
        sent += piece
        yield b" " * piece


async def _closed_after_announcing_a_body(host: str, port: int, path: str) -> bytes:
    """Headers of an unauthenticated POST that announces 1000 bytes, then silence: what the
    server sends before it closes the connection (15 s is the test's own patience)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n".encode()
        )
        await writer.drain()
        received = b""
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 15)
            if not chunk:
                return received
            received += chunk
    finally:
        writer.close()


# -- HEAD/GET on the Anthropic base path (Claude Code probes it) ---------------------------------


async def test_the_anthropic_base_path_answers_head_and_get_to_the_key_only(
    running_gateway: RunningGateway,
) -> None:
    key = {"Authorization": f"Bearer {running_gateway.key}"}
    token = {"Authorization": f"token {running_gateway.jupyter_token}"}
    base = running_gateway.anthropic_url
    for url in (base, base + "/"):
        # A fresh client per request: Jupyter answers a token with a login cookie.
        async with httpx.AsyncClient() as client:
            assert (await client.head(url, headers=key)).status_code == 200
        async with httpx.AsyncClient() as client:
            got = await client.get(url, headers={"x-api-key": running_gateway.key})
        assert got.status_code == 200
        assert got.json()["service"] == "cortex-claude"
        async with httpx.AsyncClient() as client:
            assert (await client.get(url, headers=token)).status_code == 200
        async with httpx.AsyncClient() as client:
            assert (await client.head(url)).status_code == 401
            anonymous = await client.get(url, headers={"x-api-key": "not-the-key"})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["type"] == "authentication_error"
    assert running_gateway.emulator.inference_requests() == []  # no call to Cortex


async def test_the_standalone_base_path_answers_too(cortex_emulator: CortexEmulator) -> None:
    async with standalone(cortex_emulator) as server, httpx.AsyncClient() as client:
        head = await client.head(
            server.anthropic_url, headers={"Authorization": f"Bearer {server.key}"}
        )
        anonymous = await client.get(server.anthropic_url)
    assert head.status_code == 200
    assert anonymous.status_code == 401


# -- over-limit bodies: the same 413 JSON in every mode -----------------------------------------


async def test_a_chunked_body_over_the_limit_gets_the_413_json_in_jupyter(
    running_gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            running_gateway.url("cortex-claude/anthropic/v1/messages"),
            content=_chunks(LIMIT * 3 // 2),
            headers={"Authorization": f"Bearer {running_gateway.key}"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize("size", [LIMIT + LIMIT // 2, 2 * LIMIT - 1])
async def test_a_chunked_body_over_the_limit_gets_the_413_json_standalone(
    size: int, cortex_emulator: CortexEmulator
) -> None:
    async with standalone(cortex_emulator) as server, httpx.AsyncClient(timeout=60) as client:
        key = {"Authorization": f"Bearer {server.key}"}
        response = await client.post(
            server.anthropic_url + "/v1/messages", content=_chunks(size), headers=key
        )
        openai = await client.post(
            server.openai_url + "/chat/completions", content=_chunks(size), headers=key
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "request_too_large"
    assert openai.status_code == 413, openai.text
    assert "larger than" in openai.json()["error"]["message"]
    assert cortex_emulator.inference_requests() == []


# -- a body announced and never sent holds the connection only for request_body_timeout ---------


async def test_a_body_that_never_comes_is_cut_off_in_jupyter(
    running_gateway: RunningGateway, jp_http_port: int, jp_base_url: str
) -> None:
    for path in ("cortex-claude/anthropic/v1/messages", "cortex-claude/terminals"):
        await _closed_after_announcing_a_body("127.0.0.1", jp_http_port, jp_base_url + path)


async def test_a_body_that_never_comes_is_cut_off_standalone(
    cortex_emulator: CortexEmulator,
) -> None:
    async with standalone(cortex_emulator) as server:
        for path in ("/cortex-claude/anthropic/v1/messages", "/cortex-claude/health", "/other"):
            await _closed_after_announcing_a_body("127.0.0.1", server.port, path)


# -- the body's deadline ends with the body: a long answer is not cut off by it -------------------


async def _long_streamed_answer(url: str, key: str, emulator: CortexEmulator) -> str:
    """An answer streamed over ~2.5 x BODY_TIMEOUT, through the anthropic SDK; its text."""
    import anthropic

    words = 50
    emulator.token_delay = 2.5 * BODY_TIMEOUT / words
    emulator.script(Reply.text(" ".join(f"w{i}" for i in range(words))))
    async with (
        anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as client,
        client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        return await stream.get_final_text()


async def test_an_answer_longer_than_the_body_timeout_arrives_whole_in_jupyter(
    running_gateway: RunningGateway,
) -> None:
    text = await _long_streamed_answer(
        running_gateway.anthropic_url, running_gateway.key, running_gateway.emulator
    )
    assert text.split() == [f"w{i}" for i in range(50)]


async def test_an_answer_longer_than_the_body_timeout_arrives_whole_standalone(
    cortex_emulator: CortexEmulator,
) -> None:
    async with standalone(cortex_emulator) as server:
        text = await _long_streamed_answer(server.anthropic_url, server.key, cortex_emulator)
    assert text.split() == [f"w{i}" for i in range(50)]
