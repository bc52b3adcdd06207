"""Load and soak through a real ``jupyter server``: zero errors, added latency, RSS, open files.

    python benchmarks/soak.py [--burst 500] [--seconds 45 | --minutes 10] [--rate 20]

Starts the Cortex emulator (no model latency) and a Jupyter server with the extension, each in its
own process on 127.0.0.1 (benchmarks/servers.py), then:

1. added latency: sequential streaming requests, alternating gateway and straight to the emulator;
2. a burst of ``--burst`` concurrent streaming requests, twice (the first warms the pools up; the
   second must leave the server's RSS and open files where the first left them);
3. a soak: streaming requests started at a steady ``--rate`` per second for the duration, RSS and
   open files sampled as it goes.

Prints Markdown (docs/reliability.md) and stops everything by itself. tests/test_load.py runs it
with CI sizes and checks the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import measure, servers
from benchmarks.measure import Target, anthropic_headers, percentile

WORDS = 20  # events per streamed answer


@dataclass
class ProcessSample:
    rss_mb: float
    open_files: int
    upstream_sockets: int  # idle keep-alive connections to Cortex: pooled by design, bounded

    @property
    def other_files(self) -> int:
        return self.open_files - self.upstream_sockets


def _remote_ports(pid: int) -> dict[str, int]:
    """Socket inode -> remote port, from the process's view of /proc/net/tcp{,6}."""
    ports = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    ports[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
        except OSError:
            continue
    return ports


def sample(pid: int, upstream_port: int = 0) -> ProcessSample:
    rss_kb = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    ports = _remote_ports(pid)
    upstream = sum(
        1
        for link in links
        if link.startswith("socket:[") and ports.get(link[8:-1]) == upstream_port
    )
    return ProcessSample(rss_kb / 1024, len(links), upstream if upstream_port else 0)


@dataclass
class Figures:
    sequential: dict[str, float] = field(default_factory=dict)
    bursts: list[dict[str, Any]] = field(default_factory=list)
    soak: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, ProcessSample] = field(default_factory=dict)


def targets(emulator: servers.Server, jupyter: servers.Server) -> tuple[Target, Target]:
    direct = Target(
        "straight",
        "anthropic",
        emulator.url + "/api/v2/cortex/v1/messages",
        anthropic_headers(f"Bearer {servers.PAT}"),
        "claude-sonnet-4-5",
        "straight",
    )
    gateway = Target(
        "gateway",
        "anthropic",
        jupyter.url + "/cortex-claude/anthropic/v1/messages",
        anthropic_headers(**{"x-api-key": jupyter.extra["key"]}),
        "claude-sonnet-4-5",
        "straight",
        jupyter.pid,
    )
    return direct, gateway


async def added_latency(
    client: Any, direct: Target, gateway: Target, count: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {"straight": [], "gateway": []}
    for _ in range(count):
        for target in (direct, gateway):
            _, total, _ = await measure.stream(client, target, WORDS)
            times[target.name].append(total * 1000)
    return {
        "requests": count,
        "straight_p50_ms": percentile(times["straight"], 0.5),
        "straight_p99_ms": percentile(times["straight"], 0.99),
        "gateway_p50_ms": percentile(times["gateway"], 0.5),
        "gateway_p99_ms": percentile(times["gateway"], 0.99),
        "added_p50_ms": percentile(times["gateway"], 0.5) - percentile(times["straight"], 0.5),
        "added_p99_ms": percentile(times["gateway"], 0.99) - percentile(times["straight"], 0.99),
    }


async def burst(client: Any, target: Target, concurrency: int) -> dict[str, Any]:
    """``concurrency`` streaming requests started at once; every one must complete."""
    errors: list[str] = []
    totals: list[float] = []

    async def one() -> None:
        try:
            _, total, _ = await measure.stream(client, target, WORDS)
            totals.append(total * 1000)
        except (measure.RequestFailed, measure.httpx.HTTPError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    return {
        "target": target.name,
        "concurrency": concurrency,
        "ok": len(totals),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": percentile(totals, 0.5),
        "p99_ms": percentile(totals, 0.99),
        "seconds": time.perf_counter() - started,
    }


async def soak(client: Any, target: Target, seconds: float, rate: float) -> dict[str, Any]:
    """Requests started at a steady rate for ``seconds``; RSS and open files sampled each second."""
    assert target.pid is not None
    errors: list[str] = []
    totals: list[float] = []
    rss: list[float] = []
    files: list[int] = []
    running: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            _, total, _ = await measure.stream(client, target, WORDS)
            totals.append(total * 1000)
        except (measure.RequestFailed, measure.httpx.HTTPError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.perf_counter()
    next_sample = started
    sent = 0
    while (now := time.perf_counter()) - started < seconds:
        due = int((now - started) * rate) + 1
        while sent < due:
            task = asyncio.ensure_future(one())
            running.add(task)
            task.add_done_callback(running.discard)
            sent += 1
        if now >= next_sample:
            current = sample(target.pid)
            rss.append(current.rss_mb)
            files.append(current.open_files)
            next_sample += 1.0
        await asyncio.sleep(min(0.05, 1 / rate))
    if running:
        await asyncio.gather(*running)
    return {
        "seconds": seconds,
        "rate_per_s": rate,
        "sent": sent,
        "ok": len(totals),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": percentile(totals, 0.5),
        "p99_ms": percentile(totals, 0.99),
        "rss_first_mb": rss[0] if rss else float("nan"),
        "rss_max_mb": max(rss) if rss else float("nan"),
        "rss_last_mb": rss[-1] if rss else float("nan"),
        "open_files_max": max(files) if files else 0,
    }


async def settled_sample(
    pid: int, upstream_port: int, baseline: int, wait: float = 10.0
) -> ProcessSample:
    """The server's figures once its files other than pooled upstream sockets came back to
    ``baseline`` (or ``wait`` seconds passed: then the caller sees the difference)."""
    deadline = time.monotonic() + wait
    current = sample(pid, upstream_port)
    while current.other_files > baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        current = sample(pid, upstream_port)
    return current


async def run(burst_size: int, soak_seconds: float, rate: float, sequential: int) -> Figures:
    figures = Figures()
    workdir = servers.new_workdir()
    started: list[servers.Server] = []
    try:
        emulator = servers.start_emulator(0.0)
        started.append(emulator)
        jupyter = servers.start_jupyter(workdir, int(emulator.url.rsplit(":", 1)[1]))
        started.append(jupyter)
        direct, gateway = targets(emulator, jupyter)
        pid, port = jupyter.pid, int(emulator.url.rsplit(":", 1)[1])
        figures.samples["started"] = sample(pid, port)
        baseline = figures.samples["started"].other_files
        async with measure.new_client() as client:
            figures.sequential = await added_latency(client, direct, gateway, sequential)
            figures.bursts.append(await burst(client, direct, burst_size))
            figures.bursts.append(await burst(client, gateway, burst_size))  # warms pools up
        figures.samples["after warm-up burst"] = await settled_sample(pid, port, baseline)
        async with measure.new_client() as client:
            figures.bursts.append(await burst(client, gateway, burst_size))
        figures.samples["after measured burst"] = await settled_sample(pid, port, baseline)
        if soak_seconds > 0:
            async with measure.new_client() as client:
                figures.soak = await soak(client, gateway, soak_seconds, rate)
            figures.samples["after soak"] = await settled_sample(pid, port, baseline)
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def report(figures: Figures) -> str:
    seq = figures.sequential
    lines = [
        "### Added latency (sequential streams of 20 events, gateway vs straight to Cortex)",
        "",
        "| requests | straight p50 / p99 | gateway p50 / p99 | added p50 / p99 |",
        "|---|---|---|---|",
        f"| {seq['requests']} | {seq['straight_p50_ms']:.1f} / {seq['straight_p99_ms']:.1f} ms "
        f"| {seq['gateway_p50_ms']:.1f} / {seq['gateway_p99_ms']:.1f} ms "
        f"| {seq['added_p50_ms']:.1f} / {seq['added_p99_ms']:.1f} ms |",
        "",
        "### Bursts of concurrent streams",
        "",
        "| path | concurrent | completed | errors | p50 / p99 per stream | wall |",
        "|---|---|---|---|---|---|",
    ]
    labels = ["straight", "gateway (warm-up)", "gateway (measured)"]
    for label, result in zip(labels, figures.bursts, strict=False):
        lines.append(
            f"| {label} | {result['concurrency']} | {result['ok']} | {result['errors']} "
            f"| {result['p50_ms']:.0f} / {result['p99_ms']:.0f} ms | {result['seconds']:.1f} s |"
        )
    if figures.soak:
        s = figures.soak
        lines += [
            "",
            "### Soak",
            "",
            "| duration | rate | sent | completed | errors | p50 / p99 | RSS first / max / last |",
            "|---|---|---|---|---|---|---|",
            f"| {s['seconds']:.0f} s | {s['rate_per_s']:g}/s | {s['sent']} | {s['ok']} "
            f"| {s['errors']} | {s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms "
            f"| {s['rss_first_mb']:.0f} / {s['rss_max_mb']:.0f} / {s['rss_last_mb']:.0f} MiB |",
        ]
    lines += [
        "",
        "### The Jupyter server process",
        "",
        "| when | RSS | open files | of which idle keep-alive sockets to Cortex |",
        "|---|---|---|---|",
    ]
    for when, current in figures.samples.items():
        lines.append(
            f"| {when} | {current.rss_mb:.0f} MiB | {current.open_files} "
            f"| {current.upstream_sockets} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=500, help="concurrent streams per burst")
    parser.add_argument("--seconds", type=float, default=45.0, help="soak duration (seconds)")
    parser.add_argument(
        "--minutes", type=float, help="soak duration (minutes; overrides --seconds)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="soak requests started per second")
    parser.add_argument("--sequential", type=int, default=200, help="requests for added latency")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60 if args.minutes is not None else args.seconds
    figures = asyncio.run(run(args.burst, seconds, args.rate, args.sequential))
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
