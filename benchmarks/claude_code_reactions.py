"""How the pinned Claude Code CLI reacts to one error answer, with its default retries.

    python benchmarks/claude_code_reactions.py 502 api_error x-should-retry=false

Serves every POST with the given status, Anthropic error type and headers (``name=value``), runs
``claude -p "say hi"`` against it (``$CORTEX_CLAUDE_TEST_CLAUDE``, ``CLAUDE_CODE_MAX_RETRIES``
unset, a throw-away HOME), and prints how many requests it sent, how long the user waited, and
what it showed. docs/reliability.md ("Why a 502 that says do not retry") and docs/shaping.md
(unknown models) were decided with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time

import tornado.httpserver
import tornado.web
from tornado.netutil import bind_sockets

MESSAGE = "Could not reach Snowflake at example:443: the connection was refused. Check the host."


async def main(status: int, error_type: str, headers: dict[str, str], message: str) -> None:
    posts: list[float] = []

    class Answer(tornado.web.RequestHandler):
        def post(self, *_: str) -> None:
            posts.append(time.monotonic())
            self.set_status(status)
            for name, value in headers.items():
                self.set_header(name, value)
            self.set_header("Content-Type", "application/json")
            body = {"type": "error", "error": {"type": error_type, "message": message}}
            self.finish(json.dumps(body))

    sockets = bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(
        tornado.web.Application([(r"/(.*)", Answer)], log_function=lambda _: None)
    )
    server.add_sockets(sockets)
    home = tempfile.mkdtemp()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": home,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{sockets[0].getsockname()[1]}",
        "ANTHROPIC_AUTH_TOKEN": "not-a-secret",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        os.environ["CORTEX_CLAUDE_TEST_CLAUDE"],
        *("-p", "say hi", "--max-turns", "1", "--output-format", "json"),
        env=env,
        cwd=home,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 600)
    except asyncio.TimeoutError:
        process.kill()
        out = b"{}"
    waited = time.monotonic() - started
    server.stop()
    shown = next(
        (json.loads(line).get("result") for line in out.splitlines() if line.startswith(b"{")), None
    )
    print(f"{status} {error_type} {headers}: {len(posts)} requests, {waited:.1f} s")
    print(f"  shown: {shown}")


if __name__ == "__main__":
    status_arg, type_arg, *header_args = sys.argv[1:]
    extra = dict(arg.split("=", 1) for arg in header_args)
    asyncio.run(main(int(status_arg), type_arg, extra, os.environ.get("PROBE_MESSAGE", MESSAGE)))
