"""Reading and writing Chat Completions streams: Cortex's ``data:`` chunks in, ours out.

Both the OpenAI endpoint and the translated Anthropic path read Cortex's
``/api/v2/cortex/v1/chat/completions`` stream: ``data: {chat.completion.chunk}`` events, then
``data: [DONE]``. Unlike the Claude path, which relays bytes untouched, these callers must look at
every chunk (finish_reason, tool calls, usage), so the reader parses each one.

A stream counts as complete when ``[DONE]`` or the final usage chunk arrived: the gateway always
asks for ``stream_options.include_usage`` upstream, so a stream that ends before either was cut.
A complete answer must never be faked out of a broken one: the callers end a broken stream with an
error instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import GatewayError
from ..snowflake.cortex import CHAT_COMPLETIONS_PATH, CortexResponse
from .openai_answers import is_conversation_complete_error
from .sse import SSESplitter, event_data
from .usage import UsageRecord

if TYPE_CHECKING:
    from .proxy import Gateway

log = logging.getLogger("jupyter_cortex_claude.gateway")

DONE_LINE = b"data: [DONE]\n\n"


def data_line(payload: Mapping[str, Any]) -> bytes:
    """One OpenAI-style SSE event: a compact JSON ``data:`` line and a blank line."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class ChatChunkReader:
    """Feeds on upstream bytes; returns the parsed chunks; raises GatewayError on a broken stream."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self.saw_done = False
        self.saw_usage = False

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        for event in self._splitter.feed(raw):
            data = event_data(event).strip()
            if not data or self.saw_done:
                continue  # comments and keep-alives carry no data; nothing counts after [DONE]
            if data == b"[DONE]":
                self.saw_done = True
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                raise GatewayError(502, "Cortex sent a malformed event stream.") from None
            if not isinstance(chunk, dict):
                raise GatewayError(502, "Cortex sent a malformed event stream.")
            error = chunk.get("error")
            if error:
                message = error.get("message") if isinstance(error, Mapping) else str(error)
                raise GatewayError(502, f"Cortex reported an error mid-answer: {message}")
            if chunk.get("usage"):
                self.saw_usage = True
            chunks.append(chunk)
        return chunks

    def finish(self) -> None:
        """Raise when the stream ended before it was complete."""
        if self.saw_done or self.saw_usage:
            return
        detail = "the stream from Cortex ended before its last chunk"
        if self._splitter.pending.strip():
            detail += " (in the middle of an event)"
        raise GatewayError(502, f"Incomplete answer: {detail}. Retry the request.")


async def read_chat_chunks(
    response: CortexResponse, record: UsageRecord
) -> AsyncIterator[dict[str, Any]]:
    """Cortex's chunks, in order; a cut, stalled or malformed stream raises :class:`GatewayError`.

    Usage chunks are added to ``record`` as they pass. The caller closes ``response``.
    """
    reader = ChatChunkReader()
    try:
        async for raw in response.http.aiter_bytes():
            if record.first_token_ms is None:
                record.first_token_ms = (time.monotonic() - response.started) * 1000
            for chunk in reader.feed(raw):
                record.add_openai_usage(chunk.get("usage"))
                yield chunk
    except httpx.ReadTimeout:
        raise GatewayError(
            503, "Cortex stopped sending mid-answer (read timeout). Retry the request."
        ) from None
    except httpx.HTTPError as exc:
        raise GatewayError(
            502, f"The stream from Cortex broke off mid-answer ({type(exc).__name__})."
        ) from None
    reader.finish()


async def read_chat_completion(
    response: CortexResponse, *, model: str, identity: str
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` from Cortex, or the GatewayError that explains why not."""
    try:
        body = await response.read()
    except httpx.HTTPError as exc:
        raise GatewayError(
            502, f"The answer from Cortex broke off ({type(exc).__name__})."
        ) from None
    error = response.error_for_body(body, model=model, identity=identity)
    if error is not None:
        raise error
    try:
        completion = json.loads(body)
    except ValueError:
        raise GatewayError(502, "Cortex answered with something that is not JSON.") from None
    if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
        raise GatewayError(502, "Cortex answered without a chat completion (no 'choices').")
    return completion


def completion_as_chunks(completion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A whole ``chat.completion`` as the chunks a stream would have carried.

    For the rare case where Cortex answers a streaming request with plain JSON.
    """
    base = {key: completion.get(key) for key in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    chunks = []
    for choice in completion.get("choices") or []:
        message = dict(choice.get("message") or {})
        calls = message.get("tool_calls")
        if calls:
            message["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls)]
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": choice.get("index", 0),
                        "delta": message,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
        )
    if completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


async def open_chat_completion(
    gateway: Gateway,
    payload: Mapping[str, Any],
    *,
    stream: bool,
    cortex_model: str,
    record: UsageRecord,
) -> CortexResponse | None:
    """POST ``payload`` to Cortex's Chat Completions; the 2xx response, its body not yet read.

    ``None`` when Cortex answers 400 "conversation complete": its way of saying the model had
    nothing to add, which callers turn into a normal, empty stop (already recorded here).
    """
    content = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    try:
        response = await gateway.cortex.open(
            CHAT_COMPLETIONS_PATH, content, headers=headers, model=cortex_model
        )
    except GatewayError as error:
        if is_conversation_complete_error(error.status, error.message):
            record.request_id = error.request_id
            gateway.usage.record(record)
            return None
        gateway.usage.failed(record, error)
        raise
    record.retries = response.retries
    record.request_id = response.request_id
    return response


async def read_recorded_completion(
    gateway: Gateway, response: CortexResponse, *, cortex_model: str, record: UsageRecord
) -> dict[str, Any]:
    """The whole (non-streamed) completion, with its usage put on the ledger record."""
    try:
        completion = await read_chat_completion(
            response, model=cortex_model, identity=gateway.cortex.identity
        )
    except GatewayError as error:
        gateway.usage.failed(record, error)
        raise
    record.add_openai_usage(completion.get("usage"))
    gateway.usage.finished(record, response.started)
    return completion


async def relay_chat_stream(
    gateway: Gateway,
    response: CortexResponse,
    record: UsageRecord,
    *,
    convert: Callable[[dict[str, Any]], Iterable[bytes]],
    finish: Callable[[], Iterable[bytes]],
    broken: Callable[[GatewayError], bytes],
) -> AsyncIterator[bytes]:
    """Cortex's chunks, each turned into the client's frames by ``convert``; then the closing
    frames of ``finish``, or, when the stream broke mid-answer, the one error frame of ``broken``
    (never a clean end after a partial answer). The ledger gets the record in every case, a client
    that hangs up included; the upstream response is always closed."""
    failure: GatewayError | None = None
    try:
        try:
            async for chunk in read_chat_chunks(response, record):
                for frame in convert(chunk):
                    yield frame
        except GatewayError as error:
            failure = error
    except (asyncio.CancelledError, GeneratorExit):
        gateway.usage.client_left(record, response.started)
        raise
    finally:
        await response.aclose()
    if failure is not None:
        log.debug("chat completions stream from Cortex broke off: %s", failure.message)
        record.status = failure.status
        record.error = "incomplete stream"
        gateway.usage.finished(record, response.started)
        yield broken(failure)
        return
    tail = list(finish())
    gateway.usage.finished(record, response.started)
    for frame in tail:
        yield frame


async def frames_of(frames: Iterable[bytes]) -> AsyncIterator[bytes]:
    """Frames already at hand, as the async iterator a :class:`StreamReply` relays."""
    for frame in frames:
        yield frame
