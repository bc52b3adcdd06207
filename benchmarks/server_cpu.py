"""Server CPU per request: our gateway in Jupyter against the bare tornado + aiohttp relay.

    python benchmarks/server_cpu.py [--requests N] [--rounds R] [--checkout PATH]
                                    [--compare PATH] [--profile OUT]

Starts the Cortex emulator (no model latency), the aiohttp floor relay (benchmarks/floor_relay.py)
and ``jupyter server`` with our extension (from ``--checkout``, a source tree, when given; else what
is importable), then in each round sends each server N small requests, one at a time with the
servers taking turns request by request, first non-streamed then streamed, and prints one line per
server and batch:

    floor  json   cpu/req    1690 us  p50 2.41 ms
    ours   stream cpu/req    2850 us  p50 3.02 ms

``cpu/req`` is the server process's CPU (user + system, from the scheduler's counters of all its
threads) over the batch divided by N: what the server itself spends per request, which the
machine's load does not inflate the way it inflates latency. ``p50`` is the client's latency (the
whole answer for json, the first byte for stream), noisier. The gap between ``ours`` and ``floor``
is the gateway's own per-request work (auth, shaping, ledger, Jupyter's handler and access log).
With ``--compare PATH`` a second Jupyter server runs our extension from the source tree PATH (say
a copy of main: ``git archive main | tar -x -C /tmp/main``) as ``before``, in the same rounds: on a
shared machine a change is judged against ``before`` of the same run, not against another run.

With ``--profile OUT`` it measures nothing: it takes a cProfile of the Jupyter server over N json
and N streamed requests (benchmarks/profiled_server.py) and writes OUT; read it with
``python -c "import pstats; pstats.Stats('OUT').sort_stats('tottime').print_stats(30)"``.
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import measure, servers
from benchmarks.measure import Target, anthropic_headers, cpu_seconds

MODEL = "claude-sonnet-4-5"
WORDS = 5
WARMUP = 20


async def batch(targets: list[Target], count: int, *, stream: bool) -> list[tuple[float, float]]:
    """Per target, (server CPU µs per request, client p50 ms) over ``count`` requests each, sent
    one at a time and alternating between the targets, so a busy moment on a shared machine
    weighs on all of them alike."""
    async with measure.new_client() as client:

        async def one(target: Target) -> float:
            if stream:
                return (await measure.stream(client, target, WORDS))[0]
            return await measure.call(client, target, WORDS)

        for _ in range(WARMUP):
            for target in targets:
                await one(target)
        before = [cpu_seconds(target.pid or 0) for target in targets]
        latencies: list[list[float]] = [[] for _ in targets]
        for _ in range(count):
            for index, target in enumerate(targets):
                latencies[index].append(await one(target) * 1000)
        spent = [cpu_seconds(t.pid or 0) - b for t, b in zip(targets, before, strict=True)]
    return [
        (cpu / count * 1e6, measure.percentile(lat, 0.5))
        for cpu, lat in zip(spent, latencies, strict=True)
    ]


def start_ours(workdir: Path, emulator_port: int, checkout: Path | None, profile: Path | None):
    launcher = None
    if profile is not None:
        launcher = [
            sys.executable,
            str(Path(__file__).with_name("profiled_server.py")),
            str(profile),
        ]
    return servers.start_jupyter(workdir, emulator_port, checkout=checkout, launcher=launcher)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="per batch (default 400)")
    parser.add_argument("--rounds", type=int, default=2, help="floor and ours alternate (2)")
    parser.add_argument("--checkout", type=Path, help="the source tree our server runs from")
    parser.add_argument("--compare", type=Path, help="a source tree to run as `before` too")
    parser.add_argument("--profile", type=Path, help="write a cProfile of ours here instead")
    args = parser.parse_args()

    emulator = servers.start_emulator(0.0)
    emulator_port = int(emulator.url.rsplit(":", 1)[1])
    workdir = servers.new_workdir()
    started = [emulator]
    try:
        profile = args.profile.resolve() if args.profile else None
        ours_server = start_ours(workdir, emulator_port, args.checkout, profile)
        started.append(ours_server)
        ours = Target(
            "ours", "anthropic", ours_server.url + "/cortex-claude/anthropic/v1/messages",
            anthropic_headers(**{"x-api-key": ours_server.extra["key"]}), MODEL, "",
            pid=ours_server.pid,
        )  # fmt: skip
        if profile is not None:
            asyncio.run(batch([ours], WARMUP, stream=False))
            os.kill(ours_server.pid, signal.SIGRTMIN)
            time.sleep(0.2)
            asyncio.run(batch([ours], args.requests, stream=False))
            asyncio.run(batch([ours], args.requests, stream=True))
            os.kill(ours_server.pid, signal.SIGRTMIN + 1)
            while not profile.exists() or time.time() - profile.stat().st_mtime < 0.5:
                time.sleep(0.2)
            print(f"profile of {2 * (args.requests + WARMUP)} requests written to {profile}")
            return
        floor_server = servers.start_floor("aiohttp", emulator.url)
        started.append(floor_server)
        floor = Target(
            "floor", "anthropic", floor_server.url + "/v1/messages", anthropic_headers(), MODEL,
            "", pid=floor_server.pid,
        )  # fmt: skip
        targets = [floor, ours]
        if args.compare is not None:
            before_dir = workdir / "before"
            before_dir.mkdir()
            before_server = start_ours(before_dir, emulator_port, args.compare.resolve(), None)
            started.append(before_server)
            before = dataclasses.replace(
                ours, name="before", pid=before_server.pid,
                url=before_server.url + "/cortex-claude/anthropic/v1/messages",
                headers=anthropic_headers(**{"x-api-key": before_server.extra["key"]}),
            )  # fmt: skip
            targets.append(before)
        for _ in range(args.rounds):
            for stream in (False, True):
                results = asyncio.run(batch(targets, args.requests, stream=stream))
                kind = "stream" if stream else "json  "
                for target, (cpu, p50) in zip(targets, results, strict=True):
                    print(f"{target.name:6} {kind} cpu/req {cpu:7.0f} us  p50 {p50:.2f} ms")
    finally:
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    main()
