"""The Cortex client's connection (aiohttp) says what happened: was the request sent?

The Cortex client retries only what Cortex cannot have processed (a connection that never opened)
and reports everything else once; it decides by httpx's exception types, which
``snowflake/cortex_http.py`` raises for aiohttp's failures. These tests drive it against real
sockets on 127.0.0.1 (a raw HTTP/1.1 server, an HTTP proxy) and check each failure arrives as the
error that says whether the request was sent, that a stream closed early closes its connection,
and that HTTP_PROXY from the environment is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from jupyter_cortex_claude.snowflake.cortex_http import CortexAnswer, CortexHttp

HEAD_CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Origin:
    """Answers by path: /ok, /drop (closes after reading the request), /cut (closes mid-body),
    /stall (stops mid-body and waits for the client to go)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.client_gone = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.requests.append(head)
                path = head.split(b" ")[1]
                if path == b"/ok":
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    await writer.drain()
                    continue
                if path == b"/drop":
                    return
                writer.write(HEAD_CHUNKED + chunk(b"event: message_start\n\n"))
                await writer.drain()
                if path == b"/cut":
                    return
                await reader.read(1)  # /stall: nothing more until the client goes
                self.client_gone.set()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.client_gone.set()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Origin, str]]:
    state = Origin()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    try:
        yield state, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@contextlib.asynccontextmanager
async def connection(read_timeout: float = 10.0) -> AsyncIterator[CortexHttp]:
    http = CortexHttp(max_connections=10, read_timeout=read_timeout)
    try:
        yield http
    finally:
        await http.aclose()


async def post(http: CortexHttp, url: str) -> CortexAnswer:
    return await http.send("POST", url, headers={}, body=b"{}", connect_timeout=5.0)


async def test_requests_share_one_kept_alive_connection() -> None:
    async with serving() as (state, base), connection() as http:
        for _ in range(3):
            answer = await post(http, base + "/ok")
            assert (answer.status, await answer.read()) == (200, b"ok")
    assert state.connections == 1


async def test_a_refused_connection_is_a_connect_error_nothing_was_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with connection() as http:
        with pytest.raises(httpx.ConnectError):
            await post(http, f"http://127.0.0.1:{port}/ok")


async def test_a_connection_dropped_after_the_request_is_not_a_connect_error() -> None:
    async with serving() as (state, base), connection() as http:
        with pytest.raises(httpx.TransportError) as caught:
            await post(http, base + "/drop")
    assert state.requests  # the request did reach the server
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert isinstance(caught.value, httpx.RemoteProtocolError)


async def test_a_body_cut_short_hands_over_what_arrived_then_fails() -> None:
    received = []
    async with serving() as (_, base), connection() as http:
        answer = await post(http, base + "/cut")
        with pytest.raises(httpx.RemoteProtocolError):
            async for piece in answer.chunks():
                received.append(piece)
    assert b"".join(received) == b"event: message_start\n\n"


async def test_a_stalled_body_is_a_read_timeout() -> None:
    async with serving() as (_, base), connection(read_timeout=0.3) as http:
        answer = await post(http, base + "/stall")
        with pytest.raises(httpx.ReadTimeout):
            async for _ in answer.chunks():
                pass


async def test_closing_a_stream_early_closes_its_connection() -> None:
    async with serving() as (state, base), connection() as http:
        answer = await post(http, base + "/stall")
        async for _ in answer.chunks():
            assert http.busy_connections() == 1
            break
        answer.close()
        await asyncio.wait_for(state.client_gone.wait(), 10)
        assert http.busy_connections() == 0


async def test_the_proxy_the_environment_names_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    requests_seen = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        requests_seen.append(head.split(b"\r\n")[0])
        # A plain-http target through an HTTP proxy: the request comes in absolute form.
        target = head.split(b" ")[1]
        authority, path = target.split(b"/", 3)[2:]
        host, port = authority.decode().split(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        up_writer.write(head.replace(target, b"/" + path, 1) + await reader.readexactly(2))
        await up_writer.drain()
        writer.write(await up_reader.read(65536))
        await writer.drain()
        writer.close()
        up_writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    try:
        async with serving() as (_, base), connection() as http:
            answer = await post(http, base + "/ok")
            assert await answer.read() == b"ok"
        assert requests_seen and requests_seen[0].startswith(b"POST http://127.0.0.1:")
    finally:
        server.close()
