"""What the reliability batteries share: raw HTTP on a socket, reply-shape checks, a log catcher.

A raw socket is used where httpx would tidy the request (dot segments in paths, a body it insists
on sending before it reads the answer): the batteries must send what a hostile client would.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ANTHROPIC_MESSAGES = "cortex-claude/anthropic/v1/messages"
OPENAI_CHAT = "cortex-claude/openai/v1/chat/completions"
ENDPOINT_OF = {"anthropic": ANTHROPIC_MESSAGES, "openai": OPENAI_CHAT}

# Deadlock guard for raw exchanges, not a timing assertion: a server that waits for a body the
# client never sends would otherwise hang the test.
RAW_GUARD_SECONDS = 30.0

# Set to a file path to collect the fault battery's table rows (docs/reliability.md).
TABLE_ENV = "CORTEX_CLAUDE_RELIABILITY_TABLE"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_exchange(server_url: str, request: bytes) -> RawResponse:
    """Send ``request`` bytes as they are to the server of ``server_url``; read one response."""
    parts = urlsplit(server_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(_read_response(reader), RAW_GUARD_SECONDS)
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.read()
    return RawResponse(status, headers, body)


def request_bytes(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- reply shapes ---------------------------------------------------------------------------------


def assert_error_shape(dialect: str, body: Any) -> str:
    """The error type, after checking the body is an Anthropic- or OpenAI-shaped error."""
    if dialect == "anthropic":
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str) and body["error"]["type"], body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
        return body["error"]["type"]
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    return error["type"]


def sse_frames(body: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of every SSE event in ``body``."""
    frames = []
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            frames.append((name, "\n".join(data)))
    return frames


def check_reply(dialect: str, path: str, status: int, content_type: str, body: bytes) -> str:
    """What kind of reply this is ("ok", "stream", "stream-error" or the error type), after
    checking it is a well-formed success or error of its dialect. Never a 500."""
    assert status != 500 and 200 <= status < 600, (status, body[:300])
    if status >= 400:
        return assert_error_shape(dialect, json.loads(body))
    if content_type.startswith("text/event-stream"):
        frames = sse_frames(body)
        assert frames, body[:300]
        for _, data in frames:
            if data != "[DONE]":
                json.loads(data)
        last_name, last_data = frames[-1]
        if dialect == "anthropic":
            assert frames[0][0] == "message_start", frames[:2]
            assert last_name in ("message_stop", "error"), frames[-2:]
            return "stream" if last_name == "message_stop" else "stream-error"
        if last_data == "[DONE]":
            return "stream"
        assert "error" in json.loads(last_data), frames[-2:]
        return "stream-error"
    reply = json.loads(body)
    if path.endswith("count_tokens"):
        assert isinstance(reply["input_tokens"], int)
    elif dialect == "anthropic":
        assert reply["type"] == "message" and isinstance(reply["content"], list), reply
    else:
        assert reply["object"] == "chat.completion" and isinstance(reply["choices"], list), reply
    return "ok"


# -- the server log -------------------------------------------------------------------------------

ALARMS = ("Traceback", "Uncaught exception", "Internal error in the cortex-claude gateway")


@contextmanager
def captured_log(*extra: logging.Logger, level: int = logging.WARNING) -> Iterator[io.StringIO]:
    """Everything at ``level`` or above logged anywhere (and by ``extra`` loggers that do not
    propagate, like the Jupyter server's), tracebacks included."""
    # What earlier tests left for the garbage collector is collected now, outside any running
    # loop, so that it cannot log into this test's capture.
    gc.collect()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(), *extra]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield stream
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def alarms_in(log_text: str) -> list[str]:
    return [line for line in log_text.splitlines() if any(alarm in line for alarm in ALARMS)]


# -- the figures table ----------------------------------------------------------------------------


def record_row(*cells: str) -> None:
    """Append a Markdown table row to the file named by $CORTEX_CLAUDE_RELIABILITY_TABLE."""
    target = os.environ.get(TABLE_ENV)
    if not target:
        return
    cleaned = [cell.replace("|", "\\|").replace("\n", " ") for cell in cells]
    with Path(target).open("a") as table:
        table.write("| " + " | ".join(cleaned) + " |\n")


def merged_table(rows_file: Path) -> str:
    """The rows collected by :func:`record_row`, one line per fault with both endpoints."""
    seen: dict[str, dict[str, str]] = {}
    for line in rows_file.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 4:
            fault, endpoint, saw, verdict = cells
            seen.setdefault(fault, {})[endpoint] = f"{saw} ({verdict})"
    lines = [
        "| fault | Anthropic endpoint: what the client saw | OpenAI endpoint: what the client saw |",
        "|---|---|---|",
    ]
    for fault, by_endpoint in seen.items():
        lines.append(
            f"| {fault} | {by_endpoint.get('anthropic', '-')} | {by_endpoint.get('openai', '-')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tests.battery rows.md
    import sys

    print(merged_table(Path(sys.argv[1])))
