"""Benchmark the gateway against the straight path and the proxies users would pick instead.

    python benchmarks/run.py [--quick] [--smoke] [--peers] [--token-delay SECONDS]

Starts a Cortex emulator (no model latency), our gateway inside ``jupyter server``, our standalone
gateway (when this checkout has it), and with ``--peers`` a LiteLLM proxy and the
snowflake-claude-code proxy, each in its own virtual environment; measures them side by side and
prints Markdown tables (see docs/benchmarks.md).
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import measure, servers, startup
from benchmarks.measure import Target, anthropic_headers
from benchmarks.report import full_report
from benchmarks.upstream_clients import CLIENTS, SLUGS

DIRECT_MESSAGES = "straight: Cortex Messages"
DIRECT_CHAT = "straight: Cortex Chat Completions"
DIRECT_CHAT_GPT = "straight: Chat Completions, openai-gpt-4.1"
SCC = "snowflake-claude-code 1.1.0, /v1/messages"
SCC_API_KEY = "sk-snowflake-proxy"  # what its CLI gives Claude Code; the proxy checks none
CLAUDE = "claude-sonnet-4-5"
GPT = "openai-gpt-4.1"
LEVELS = (1, 10, 100, 500)


@dataclass(frozen=True)
class Sizes:
    latency_count: int
    warmup: int
    long_words: int
    long_repeats: int
    levels: tuple[int, ...]
    stream_words: int
    streams_per_level: int  # at least this many streams per level (the level itself if larger)
    startup_repeats: int


FULL = Sizes(300, 30, 4000, 5, LEVELS, 100, 200, 7)
QUICK = Sizes(40, 5, 4000, 1, LEVELS, 50, 20, 3)
SMOKE = Sizes(3, 1, 200, 1, (1, 10), 10, 10, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a few minutes)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: proves it runs")
    parser.add_argument(
        "--peers", action="store_true", help="also LiteLLM and snowflake-claude-code"
    )
    parser.add_argument("--token-delay", type=float, default=0.0, help="emulator pacing per delta")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "jupyter-cortex-claude-bench",
        help="where peers' virtual environments are made",
    )
    parser.add_argument("--litellm-venv", help="use this existing venv with litellm[proxy]")
    parser.add_argument(
        "--scc-venv", help="use this existing venv with snowflake-claude-code==1.1.0"
    )
    parser.add_argument("--json", type=Path, help="also write raw results here")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    parser.add_argument(
        "--no-floors", action="store_true", help="skip the bare relay per upstream client"
    )
    parser.add_argument(
        "--requests", type=int, help="latency samples per path (overrides the size)"
    )
    parser.add_argument(
        "--no-concurrency", action="store_true", help="skip the concurrent-stream runs"
    )
    parser.add_argument(
        "--compare-checkout",
        type=Path,
        help="also measure our gateway in Jupyter from this source tree (a before/after in one run)",
    )
    return parser.parse_args(argv)


def build_targets(
    emulator: servers.Server,
    ours: list[servers.Server],
    litellm: servers.Server | None,
    scc: servers.Server | None = None,
    floors: list[servers.Server] | None = None,
) -> list[Target]:
    cortex = emulator.url + "/api/v2/cortex/v1"
    pat = f"Bearer {servers.PAT}"
    targets = [
        Target(DIRECT_MESSAGES, "anthropic", cortex + "/messages", anthropic_headers(pat),
               CLAUDE, DIRECT_MESSAGES),
        Target(DIRECT_CHAT, "openai", cortex + "/chat/completions", {"authorization": pat},
               CLAUDE, DIRECT_CHAT),
    ]  # fmt: skip
    for floor in floors or []:
        # A bare tornado handler relaying to Cortex on one upstream client: the floor of a stack.
        label = next(name for name, slug in SLUGS.items() if f"floor-{slug}" == floor.name)
        targets.append(
            Target(f"floor: tornado + {label}", "anthropic", floor.url + "/v1/messages",
                   anthropic_headers(), CLAUDE, DIRECT_MESSAGES, floor.pid)
        )  # fmt: skip
    for server in ours:
        base = server.url + "/cortex-claude/anthropic/v1/messages"
        if server.name == "jupyter-other":
            targets.append(
                Target(f"ours in Jupyter, gateway key ({server.extra['label']})", "anthropic",
                       base, anthropic_headers(**{"x-api-key": server.extra["key"]}), CLAUDE,
                       DIRECT_MESSAGES, server.pid)
            )  # fmt: skip
            continue
        label = "ours in Jupyter" if server.name == "jupyter" else "ours standalone"
        key_headers = anthropic_headers(**{"x-api-key": server.extra["key"]})
        targets.append(
            Target(f"{label}, gateway key", "anthropic", base, key_headers, CLAUDE,
                   DIRECT_MESSAGES, server.pid)
        )  # fmt: skip
        if server.name == "jupyter":
            token = anthropic_headers(f"token {servers.JUPYTER_TOKEN}")
            targets.append(
                Target(f"{label}, Jupyter token", "anthropic", base, token, CLAUDE,
                       DIRECT_MESSAGES, server.pid)
            )  # fmt: skip
            targets.append(
                Target(f"{label}, translated {GPT}", "anthropic", base, key_headers, GPT,
                       DIRECT_CHAT_GPT, server.pid)
            )  # fmt: skip
    if litellm is not None:
        key = f"Bearer {servers.LITELLM_KEY}"
        targets.append(
            Target("LiteLLM 1.83.14, chat completions", "openai",
                   litellm.url + "/v1/chat/completions", {"authorization": key}, CLAUDE,
                   DIRECT_CHAT, litellm.pid)
        )  # fmt: skip
        targets.append(
            Target("LiteLLM 1.83.14, /v1/messages", "anthropic", litellm.url + "/v1/messages",
                   anthropic_headers(key), CLAUDE, DIRECT_MESSAGES, litellm.pid)
        )  # fmt: skip
        targets.append(
            Target("LiteLLM 1.83.14, snowflake/ provider, chat completions", "openai",
                   litellm.url + "/v1/chat/completions", {"authorization": key},
                   servers.LITELLM_SNOWFLAKE_MODEL, DIRECT_CHAT, litellm.pid)
        )  # fmt: skip
    if scc is not None:
        # Anthropic /v1/messages only (it serves no chat completions); it translates to Cortex's
        # older inference:complete, so its straight path is the Messages call it stands in for.
        targets.append(
            Target(SCC, "anthropic", scc.url + "/v1/messages",
                   anthropic_headers(**{"x-api-key": SCC_API_KEY}), CLAUDE, DIRECT_MESSAGES,
                   scc.pid)
        )  # fmt: skip
    if any(target.model == GPT for target in targets):
        targets.append(
            Target(DIRECT_CHAT_GPT, "openai", cortex + "/chat/completions", {"authorization": pat},
                   GPT, DIRECT_CHAT_GPT)
        )  # fmt: skip
    return targets


async def probe(client: Any, targets: list[Target], notes: list[str]) -> list[Target]:
    """Drop the paths that do not work at all, saying why (e.g. not wired yet)."""
    working = []
    for target in targets:
        try:
            await measure.call(client, target, 3)
            await measure.stream(client, target, 3)
        except (measure.RequestFailed, measure.httpx.HTTPError) as exc:
            notes.append(f"{target.name}: not measured, it fails: {str(exc)[:300]}")
            continue
        working.append(target)
    return working


def _answer_of(target: Target, response: Any) -> tuple[str, int | None]:
    """The text and the input-token count of a non-streaming answer."""
    body = response.json()
    if target.protocol == "anthropic":
        text = "".join(
            b.get("text", "") for b in body.get("content") or [] if b.get("type") == "text"
        )
        return text, (body.get("usage") or {}).get("input_tokens")
    message = (body.get("choices") or [{}])[0].get("message") or {}
    return message.get("content") or "", (body.get("usage") or {}).get("prompt_tokens")


def _streamed_answer(target: Target, raw: bytes) -> tuple[str, int | None]:
    """The text and the largest input-token count a stream reported."""
    text, input_tokens = [], None
    for line in raw.decode(errors="replace").splitlines():
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        try:
            event = json.loads(line[5:])
        except ValueError:
            continue
        if target.protocol == "anthropic":
            delta = event.get("delta") or {}
            if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
                text.append(delta.get("text", ""))
            usage = event.get("usage") or (event.get("message") or {}).get("usage") or {}
            count = usage.get("input_tokens")
        else:
            for choice in event.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
            count = (event.get("usage") or {}).get("prompt_tokens")
        if isinstance(count, int):
            input_tokens = max(count, input_tokens or 0)
    return "".join(text), input_tokens


async def check_answers(client: Any, targets: list[Target], notes: list[str]) -> None:
    """Speed means nothing if the answer is wrong: check one answer per path and mode.

    The emulator answers ``words:5`` with ``w0 w1 w2 w3 w4 ``; a path that loses the text or
    reports no input tokens gets a note (and ``answer_problems`` in the raw results).
    """
    expected = "".join(f"w{index} " for index in range(5))
    for target in targets:
        problems = []
        try:
            response = await client.post(
                target.url, json=target.body(5, stream=False), headers=target.headers
            )
            text, tokens = _answer_of(target, response)
            if text != expected:
                problems.append(f"non-streaming answer text is {text!r}, expected {expected!r}")
            if not tokens:
                problems.append(f"non-streaming answer reports input tokens {tokens!r}")
            request = client.build_request(
                "POST", target.url, json=target.body(5, stream=True), headers=target.headers
            )
            response = await client.send(request)
            text, tokens = _streamed_answer(target, response.content)
            if text != expected:
                problems.append(f"streamed answer text is {text!r}, expected {expected!r}")
            if not tokens and target.protocol == "anthropic":  # chat streams: usage is opt-in
                problems.append(f"streamed answer reports input tokens {tokens!r}")
        except (ValueError, AttributeError, measure.httpx.HTTPError) as exc:
            problems.append(f"answer check failed: {type(exc).__name__}: {exc}"[:300])
        if problems:
            target.results["answer_problems"] = problems
            notes.append(
                f"{target.name}: wrong answers (timings still shown): " + "; ".join(problems)
            )


async def measure_all(targets: list[Target], sizes: Sizes, notes: list[str]) -> list[Target]:
    async with measure.new_client() as client:
        targets = await probe(client, targets, notes)
        await check_answers(client, targets, notes)
        print(f"[bench] latency: {len(targets)} paths × {sizes.latency_count} requests", flush=True)
        await measure.latencies(client, targets, sizes.latency_count, sizes.warmup)
        for target in targets:
            if target.pid is not None:
                print(f"[bench] relay CPU: {target.name}", flush=True)
                await measure.relay_cpu(client, target, sizes.long_words, sizes.long_repeats)
        for target in targets:
            if any(part in target.name for part in ("Jupyter token", "translated", "floor:")):
                continue  # same relay as the gateway-key row (or a floor); saves minutes
            if not sizes.levels:
                break
            runs = []
            for level in sizes.levels:
                rounds = max(1, -(-sizes.streams_per_level // level))
                print(f"[bench] {level} concurrent streams: {target.name}", flush=True)
                # A fresh client per run: the hundreds of idle keep-alive connections an earlier
                # run leaves in a shared pool made the *client* CPU-bound (measured: the benchmark
                # at ~80 % CPU, the server under test at ~15 %), slowing every later path.
                async with measure.new_client() as fresh:
                    runs.append(
                        await measure.concurrency(
                            fresh, target, level, sizes.stream_words, rounds, time_limit=300
                        )
                    )
            target.results["concurrency"] = runs
    for target in targets:
        if target.pid is not None:
            target.results["peak_rss_mb"] = measure.peak_rss_mb(target.pid)
    return targets


def checkout_label(path: Path) -> str:
    """``<dir> @ <short commit>`` of a source tree, for the row of a before/after comparison."""
    import subprocess

    commit = subprocess.run(
        ["git", "-C", str(path), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    return f"{path} @ {commit or 'unknown commit'}"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as info:
            memory = f"{int(info.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {memory} RAM, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.requests:
        sizes = dataclasses.replace(sizes, latency_count=args.requests)
    if args.no_concurrency:
        sizes = dataclasses.replace(sizes, levels=())
    notes: list[str] = []
    workdir = servers.new_workdir()
    started: list[servers.Server] = []
    loads = [float("nan")]
    try:
        emulator = servers.start_emulator(args.token_delay)
        started.append(emulator)
        emulator_port = int(emulator.url.rsplit(":", 1)[1])
        ours = [servers.start_jupyter(workdir, emulator_port)]
        started.extend(ours)
        if args.compare_checkout:
            other = servers.start_jupyter(workdir, emulator_port, checkout=args.compare_checkout)
            started.append(other)
            other.extra["label"] = checkout_label(args.compare_checkout)
            ours.append(other)
        blocker = servers.standalone_available()
        if blocker is None:
            try:
                ours.append(servers.start_standalone(workdir, emulator_port))
                started.append(ours[-1])
            except RuntimeError as exc:
                notes.append(f"standalone gateway not measured: {exc}")
        else:
            notes.append(f"standalone gateway not measured: {blocker}")
        floors = []
        if not args.no_floors:
            for name in CLIENTS:
                floors.append(servers.start_floor(SLUGS[name], emulator.url))
                started.append(floors[-1])
        litellm = scc = None
        if args.peers:
            venv_dir = servers.peer_venv(
                args.cache_dir, "litellm-1.83.14", servers.LITELLM_PIN, args.litellm_venv
            )
            litellm = servers.start_litellm(workdir, venv_dir, emulator.url)
            started.append(litellm)
            scc_venv = servers.peer_venv(
                args.cache_dir, "snowflake-claude-code-1.1.0", servers.SCC_PIN, args.scc_venv
            )
            try:
                scc = servers.start_snowflake_claude_code(workdir, scc_venv, emulator)
                started.append(scc)
            except RuntimeError as exc:
                notes.append(f"snowflake-claude-code 1.1.0 not measured: {exc}")
        else:
            notes.append("peers (LiteLLM, snowflake-claude-code) not measured: run with --peers")
        targets = build_targets(emulator, ours, litellm, scc, floors)
        loads = [os.getloadavg()[0]]
        targets = asyncio.run(measure_all(targets, sizes, notes))
        loads.append(os.getloadavg()[0])
        startup_result = None
        if not args.no_startup:
            print("[bench] Jupyter start-up with and without the extension", flush=True)
            startup_result = startup.startup_cost(workdir, emulator_port, sizes.startup_repeats)
            startup_result.update(startup.import_cost(max(3, sizes.startup_repeats)))
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    settings = (
        f"{'smoke' if args.smoke else 'quick' if args.quick else 'full'} run, "
        f"emulator token delay {args.token_delay * 1000:g} ms, {machine()}; 1-min load average "
        f"{loads[0]:.1f} at the start of the measurements, {loads[-1]:.1f} at their end"
    )
    print()
    print(full_report(targets, startup_result, notes, settings))
    if args.json:
        raw = {t.name: t.results for t in targets}
        args.json.write_text(json.dumps({"results": raw, "startup": startup_result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
