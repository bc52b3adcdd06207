"""Server CPU per request: our gateway in Jupyter against the bare tornado + aiohttp relay.

    python benchmarks/server_cpu.py [--requests N] [--rounds R] [--checkout PATH] [--profile OUT]

Starts the Cortex emulator (no model latency), the aiohttp floor relay (benchmarks/floor_relay.py)
and ``jupyter server`` with our extension (from ``--checkout``, a source tree, when given; else what
is importable), then for each round and each server sends N small requests one after the other,
first non-streamed then streamed, and prints one line per batch:

    floor  json   cpu/req    1690 us  p50 2.41 ms
    ours   stream cpu/req    2850 us  p50 3.02 ms

``cpu/req`` is the server process's CPU (user + system, from the scheduler's counters of all its
threads) over the batch divided by N: what the server itself spends per request, which the
machine's load does not inflate the way it inflates latency. ``p50`` is the client's latency (the
whole answer for json, the first byte for stream), noisier. The gap between ``ours`` and ``floor``
is the gateway's own per-request work (auth, shaping, ledger, Jupyter's handler and access log).

With ``--profile OUT`` it measures nothing: it takes a cProfile of the Jupyter server over N json
and N streamed requests (benchmarks/profiled_server.py) and writes OUT; read it with
``python -c "import pstats; pstats.Stats('OUT').sort_stats('tottime').print_stats(30)"``.
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
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


async def batch(target: Target, count: int, *, stream: bool) -> tuple[float, float]:
    """(server CPU µs per request, client p50 ms) over ``count`` sequential requests."""
    async with measure.new_client() as client:

        async def one() -> float:
            if stream:
                return (await measure.stream(client, target, WORDS))[0]
            return await measure.call(client, target, WORDS)

        for _ in range(WARMUP):
            await one()
        assert target.pid is not None
        before = cpu_seconds(target.pid)
        latencies = [await one() * 1000 for _ in range(count)]
        spent = cpu_seconds(target.pid) - before
    return spent / count * 1e6, measure.percentile(latencies, 0.5)


def start_ours(workdir: Path, emulator_port: int, checkout: Path | None, profile: Path | None):
    port = servers.free_port()
    root = workdir / "root"
    root.mkdir(exist_ok=True)
    env = servers.jupyter_env(workdir)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), env.get("PYTHONPATH", "")])
    command = servers.jupyter_command(port, root, emulator_port, extension=True)
    if profile is not None:  # [python, -m, jupyter_server, ...] -> [python, wrapper, OUT, ...]
        command = [command[0], str(Path(__file__).with_name("profiled_server.py")), str(profile)]
        command += servers.jupyter_command(port, root, emulator_port, extension=True)[3:]
    log = open(workdir / "jupyter.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    url = f"http://127.0.0.1:{port}"
    server = servers.Server("jupyter", process, url, workdir / "jupyter.log")
    try:
        auth = {"Authorization": f"token {servers.JUPYTER_TOKEN}"}
        servers._wait_ready(f"{url}/api/status", process, 60, auth)
        key_file = workdir / "runtime" / f"cortex-claude-gateway-{process.pid}.json"
        deadline = time.monotonic() + 20
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        server.extra["key"] = json.loads(key_file.read_text())["key"]
    except BaseException:
        server.stop()
        raise
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="per batch (default 400)")
    parser.add_argument("--rounds", type=int, default=2, help="floor and ours alternate (2)")
    parser.add_argument("--checkout", type=Path, help="the source tree our server runs from")
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
            asyncio.run(batch(ours, WARMUP, stream=False))
            os.kill(ours_server.pid, signal.SIGRTMIN)
            time.sleep(0.2)
            asyncio.run(batch(ours, args.requests, stream=False))
            asyncio.run(batch(ours, args.requests, stream=True))
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
        for _ in range(args.rounds):
            for target in (floor, ours):
                for stream in (False, True):
                    cpu, p50 = asyncio.run(batch(target, args.requests, stream=stream))
                    kind = "stream" if stream else "json  "
                    print(f"{target.name:6} {kind} cpu/req {cpu:7.0f} us  p50 {p50:.2f} ms")
    finally:
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    main()
