"""The load client: latency, time to first byte, CPU per relayed event, concurrency, memory.

It runs in the benchmark's own process while every server runs in another, so the client's CPU is
not charged to a server (on a 2-core machine they still compete for the same cores).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

ANTHROPIC_VERSION = "2023-06-01"


@dataclass
class Target:
    """One way of reaching a model: a URL, how to authenticate, the protocol it speaks."""

    name: str
    protocol: str  # "anthropic" or "openai"
    url: str  # the messages or chat/completions URL
    headers: dict[str, str]
    model: str
    baseline: str  # the name of the straight-path target its ratios are taken against
    pid: int | None = None  # the server process to charge CPU and memory to
    results: dict[str, Any] = field(default_factory=dict)

    def body(self, words: int, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": f"words:{words}"}],
            "stream": stream,
        }
        if self.protocol == "anthropic":
            body["max_tokens"] = 8192
        return body


def anthropic_headers(authorization: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    headers.update(extra)
    return headers


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(180.0, connect=30.0, pool=180.0),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=2000),
    )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _complete(target: Target, data: bytes) -> bool:
    if target.protocol == "anthropic":
        return b"message_stop" in data[-300:]
    return b"[DONE]" in data[-100:] or b'"finish_reason":"' in data[-600:]


class RequestFailed(Exception):
    pass


async def call(client: httpx.AsyncClient, target: Target, words: int) -> float:
    """One non-streaming request; its wall time in seconds."""
    started = time.perf_counter()
    response = await client.post(
        target.url, json=target.body(words, stream=False), headers=target.headers
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RequestFailed(f"{response.status_code}: {response.text[:300]}")
    return elapsed


async def stream(client: httpx.AsyncClient, target: Target, words: int) -> tuple[float, float, int]:
    """One streaming request: (time to first body byte, total time, events received)."""
    started = time.perf_counter()
    first_byte = 0.0
    chunks: list[bytes] = []
    request = client.build_request(
        "POST", target.url, json=target.body(words, stream=True), headers=target.headers
    )
    response = await client.send(request, stream=True)
    try:
        if response.status_code != 200:
            await response.aread()
            raise RequestFailed(f"{response.status_code}: {response.text[:300]}")
        async for chunk in response.aiter_raw():
            if not first_byte:
                first_byte = time.perf_counter() - started
            chunks.append(chunk)
    finally:
        await response.aclose()
    total = time.perf_counter() - started
    data = b"".join(chunks)
    if not _complete(target, data):
        raise RequestFailed(f"incomplete stream: ...{data[-200:]!r}")
    return first_byte, total, data.count(b"\n\n")


# -- server-side counters -----------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (LiteLLM may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    result, todo = [], [pid]
    while todo:
        current = todo.pop()
        result.append(current)
        todo.extend(children.get(current, []))
    return result


def cpu_seconds(pid: int) -> float:
    """CPU time of the process tree, from the scheduler's nanosecond counters of every thread."""
    total_ns = 0
    for member in process_tree(pid):
        try:
            tasks = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{member}/task/{task}/schedstat") as schedstat:
                    total_ns += int(schedstat.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total_ns / 1e9


def peak_rss_mb(pid: int) -> float:
    total_kb = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


# -- scenarios ----------------------------------------------------------------------------------


async def latencies(
    client: httpx.AsyncClient, targets: Iterable[Target], count: int, warmup: int
) -> None:
    """p50/p99 of non-streaming wall time and of streaming time to first byte.

    Targets take turns request by request, so drift in the machine's load hits all of them alike;
    in a new order each turn (shuffled, seeded), because a request that follows another process's
    pays for the caches that process took: in a fixed order, each path paid for its predecessor's.
    """
    targets = list(targets)
    order = random.Random(14)
    plain: dict[str, list[float]] = {t.name: [] for t in targets}
    first: dict[str, list[float]] = {t.name: [] for t in targets}
    errors: dict[str, list[str]] = {t.name: [] for t in targets}
    for index in range(warmup + count):
        order.shuffle(targets)
        for target in targets:
            try:
                elapsed = await call(client, target, 5)
                ttfb, _, _ = await stream(client, target, 5)
            except (RequestFailed, httpx.HTTPError) as exc:
                errors[target.name].append(str(exc) or type(exc).__name__)
                continue
            if index >= warmup:
                plain[target.name].append(elapsed)
                first[target.name].append(ttfb)
    for target in targets:
        values, ttfbs = plain[target.name], first[target.name]
        target.results.update(
            plain_p50=percentile(values, 0.5) * 1000,
            plain_p99=percentile(values, 0.99) * 1000,
            ttfb_p50=percentile(ttfbs, 0.5) * 1000,
            ttfb_p99=percentile(ttfbs, 0.99) * 1000,
            latency_errors=len(errors[target.name]),
            first_error=errors[target.name][0] if errors[target.name] else None,
        )


async def relay_cpu(client: httpx.AsyncClient, target: Target, words: int, repeats: int) -> None:
    """Server CPU µs per streamed event over ``repeats`` long answers of ``words`` events."""
    if target.pid is None:
        return
    await stream(client, target, 20)  # warm the route
    before = cpu_seconds(target.pid)
    events = 0
    started = time.perf_counter()
    try:
        for _ in range(repeats):
            _, _, received = await stream(client, target, words)
            events += received
    except (RequestFailed, httpx.HTTPError) as exc:
        target.results["first_error"] = f"long stream: {exc}"[:300]
        return
    wall = time.perf_counter() - started
    used = cpu_seconds(target.pid) - before
    target.results.update(
        cpu_us_per_event=used * 1e6 / max(1, events),
        long_stream_events=events // max(1, repeats),
        long_stream_seconds=wall / max(1, repeats),
    )


async def concurrency(
    client: httpx.AsyncClient,
    target: Target,
    level: int,
    words: int,
    rounds: int,
    time_limit: float,
) -> dict[str, Any]:
    """``level`` clients each streaming ``rounds`` answers at once; streams/s and failures."""
    failures: list[str] = []
    done = 0
    events = 0
    ttfbs: list[float] = []

    async def worker() -> None:
        nonlocal done, events
        for _ in range(rounds):
            try:
                ttfb, _, received = await stream(client, target, words)
            except (RequestFailed, httpx.HTTPError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            done += 1
            events += received
            ttfbs.append(ttfb)

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(worker()) for _ in range(level)]
    _finished, pending = await asyncio.wait(tasks, timeout=time_limit)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        failures.append(f"{len(pending)} clients still waiting after {time_limit:.0f} s")
    elapsed = time.perf_counter() - started
    return {
        "level": level,
        "ok": done,
        "errors": level * rounds - done,
        "streams_per_s": done / elapsed,
        "events_per_s": events / elapsed,
        "ttfb_p50_ms": percentile(ttfbs, 0.5) * 1000 if ttfbs else float("nan"),
        "first_error": failures[0] if failures else None,
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
