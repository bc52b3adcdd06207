"""What the gateway's upstream HTTP client costs per request, for choosing a leaner one.

    python benchmarks/upstream_client.py [--requests 500] [--rounds 3]

The gateway adds ~3.7 ms per request over a direct call (docs/benchmarks.md); profiles put about
half of its CPU in httpx/httpcore. This measures that part alone: the CPU this process spends per
small streamed Messages request to the emulator (no model latency, its own process), for

- ``httpx``: ``httpx.AsyncClient`` as ``snowflake/cortex.py`` builds it (httpcore on anyio);
- ``httpx, asyncio streams``: the same client with httpcore on plain asyncio streams instead of
  anyio, to see what anyio's share is;
- ``aiohttp`` (only if it is installed; it is not a dependency): a client with a C HTTP parser.

Rounds alternate, so drift in the machine's load hits both alike. Prints µs of CPU per request and
the ratio to ``httpx``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpcore
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers

BODY = (
    b'{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,'
    b'"messages":[{"role":"user","content":"words:5"}]}'
)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await asyncio.wait_for(self._reader.read(max_bytes), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._writer.write(buffer)
        await asyncio.wait_for(self._writer.drain(), timeout)

    async def aclose(self) -> None:
        self._writer.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._reader.at_eof()
        return self._writer.get_extra_info(info)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def plain_httpx() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))


def httpx_on_asyncio_streams() -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport()
    transport._pool = httpcore.AsyncConnectionPool(network_backend=AsyncioBackend())
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(300.0, connect=10.0))


CLIENTS: dict[str, Any] = {
    "httpx": plain_httpx,
    "httpx, asyncio streams": httpx_on_asyncio_streams,
}
try:
    import aiohttp

    CLIENTS["aiohttp"] = aiohttp.ClientSession
except ImportError:
    pass


HEADERS = {
    "authorization": f"Bearer {servers.PAT}",
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}


async def cpu_per_request(client: Any, url: str, count: int) -> float:
    async def one() -> None:
        if isinstance(client, httpx.AsyncClient):
            async with client.stream("POST", url, content=BODY, headers=HEADERS) as response:
                async for _ in response.aiter_bytes():
                    pass
                assert response.status_code == 200, response.status_code
        else:
            async with client.post(url, data=BODY, headers=HEADERS) as response:
                async for _ in response.content.iter_any():
                    pass
                assert response.status == 200, response.status

    for _ in range(20):  # connection and caches warm
        await one()
    started = time.process_time()
    for _ in range(count):
        await one()
    return (time.process_time() - started) / count * 1e6


async def main(requests: int, rounds: int) -> None:
    emulator = servers.start_emulator(0.0)
    try:
        url = emulator.url + "/api/v2/cortex/v1/messages"
        results: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for _ in range(rounds):
            for name, make in CLIENTS.items():
                async with make() as client:
                    results[name].append(await cpu_per_request(client, url, requests))
    finally:
        emulator.stop()
    base = statistics.median(results["httpx"])
    print("| upstream client | CPU µs per streamed request (median of rounds) | ratio |")
    print("|---|---:|---:|")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"| {name} | {value:.0f} | ×{value / base:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
