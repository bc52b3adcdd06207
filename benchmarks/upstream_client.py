"""What the gateway's upstream HTTP client costs per request, for choosing the leanest one.

    python benchmarks/upstream_client.py [--requests 500] [--rounds 3]

The CPU this process spends per small streamed Messages request to the emulator (no model latency,
its own process), for every client in :mod:`benchmarks.upstream_clients` that is installed: httpx,
httpx2, httpx on the ``httpx-aiohttp`` transport, aiohttp. Each request is read to its end.

Rounds alternate the clients, so drift in the machine's load hits all alike; the load average is
printed with the table because the numbers are only as quiet as the machine was. Prints µs of CPU
per request (median of rounds) and the ratio to ``httpx``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers
from benchmarks.upstream_clients import CLIENTS, Upstream, versions

BODY = (
    b'{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,'
    b'"messages":[{"role":"user","content":"words:5"}]}'
)
HEADERS = {
    "authorization": f"Bearer {servers.PAT}",
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}


async def one(client: Upstream, url: str) -> None:
    answer = await client.post(url, BODY, HEADERS)
    try:
        async for _ in answer.chunks():
            pass
    finally:
        await answer.close()
    assert answer.status == 200, answer.status


async def cpu_per_request(client: Upstream, url: str, count: int) -> float:
    for _ in range(20):  # connection and caches warm
        await one(client, url)
    started = time.process_time()
    for _ in range(count):
        await one(client, url)
    return (time.process_time() - started) / count * 1e6


async def main(requests: int, rounds: int) -> None:
    emulator = servers.start_emulator(0.0)
    loads = []
    try:
        url = emulator.url + "/api/v2/cortex/v1/messages"
        results: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for _ in range(rounds):
            for name, make in CLIENTS.items():
                loads.append(os.getloadavg()[0])
                client = make()
                try:
                    results[name].append(await cpu_per_request(client, url, requests))
                finally:
                    await client.aclose()
    finally:
        emulator.stop()
    base = statistics.median(results["httpx"])
    print(f"{versions()}; {requests} requests × {rounds} rounds")
    print(
        f"1-min load average during the run {min(loads):.1f}-{max(loads):.1f}, {os.cpu_count()} CPUs"
    )
    print()
    print("| upstream client | CPU µs per streamed request (median of rounds) | rounds | ratio |")
    print("|---|---:|---|---:|")
    for name, values in results.items():
        value = statistics.median(values)
        spread = " / ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {value:.0f} | {spread} | ×{value / base:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
