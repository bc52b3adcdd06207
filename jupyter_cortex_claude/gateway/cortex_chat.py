"""Cortex's Chat Completions API as the routes that use it see it: open, read a completion, read chunks.

Both the OpenAI route and the Anthropic-via-Chat route (and any later route onto Chat Completions)
talk to ``/api/v2/cortex/v1/chat/completions`` through :func:`open_chat_completion` and the
:class:`~.exchange.Exchange`; what differs between them is a :class:`ChunkConverter` that turns
Cortex's parsed chunks into the client's frames.

Cortex's stream is ``data: {chat.completion.chunk}`` events, then ``data: [DONE]``. Unlike the
Messages route, which relays bytes nearly untouched, these routes look at every chunk
(finish_reason, tool calls, usage), so :class:`ChatChunkReader` parses each one. A stream counts as
complete when ``[DONE]`` or the final usage chunk arrived: the gateway always asks for
``stream_options.include_usage`` upstream, so a stream that ends before either was cut. A complete
answer is never faked out of a broken one: :class:`ChatStreamConverter` ends a broken stream with
the converter's error frame instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from ..errors import GatewayError, incomplete_answer, malformed_stream
from ..snowflake.cortex import CHAT_COMPLETIONS_PATH, CortexResponse
from .exchange import Exchange, ExpectedAnswer, reply_headers
from .json_bodies import loads_finite
from .replies import GatewayReply, JsonReply, StreamReply
from .sse import SSESplitter, event_data
from .usage import UsageRecord

CHAT_COMPLETION = ExpectedAnswer(
    fits=lambda answer: isinstance(answer, dict) and isinstance(answer.get("choices"), list),
    missing="Cortex answered without a chat completion (no 'choices').",
    add_usage=lambda record, completion: record.add_openai_usage(completion.get("usage")),
)


def is_conversation_complete_error(status: int, body_text: str) -> bool:
    """Cortex's 400 "conversation complete": the model had nothing to add, a normal stop."""
    return status == 400 and "conversation complete" in (body_text or "").lower()


def _is_conversation_complete(error: GatewayError) -> bool:
    return is_conversation_complete_error(error.status, error.message)


async def open_chat_completion(
    exchange: Exchange, payload: Mapping[str, Any], *, stream: bool
) -> CortexResponse | None:
    """POST ``payload`` to Cortex's Chat Completions; the 2xx response, its body not yet read.

    ``None`` when Cortex answers 400 "conversation complete": its way of saying the model had
    nothing to add, which the routes turn into a normal, empty stop (already on the ledger).
    """
    try:
        return await exchange.open(
            CHAT_COMPLETIONS_PATH, payload, stream=stream, not_a_failure=_is_conversation_complete
        )
    except GatewayError as error:
        if not _is_conversation_complete(error):
            raise
        exchange.answered_here(error.request_id)
        return None


async def chat_reply(
    exchange: Exchange,
    response: CortexResponse,
    chunks: ChunkConverter,
    *,
    stream: bool,
    convert_whole: Callable[[dict[str, Any]], dict[str, Any]],
) -> GatewayReply:
    """Cortex's answer as the client asked for it: a stream relayed through ``chunks``, or a
    whole completion turned into the client's JSON by ``convert_whole`` (or replayed through
    ``chunks`` when Cortex answered a streaming request with plain JSON)."""
    if stream and response.is_event_stream:
        converter = ChatStreamConverter(chunks, exchange.record)
        return StreamReply(exchange.relay(response, converter), reply_headers(response))
    completion = await exchange.read_json(response, CHAT_COMPLETION)
    if stream:
        return StreamReply(replay_completion(completion, chunks), reply_headers(response))
    return JsonReply(200, convert_whole(completion), reply_headers(response))


# -- streams -------------------------------------------------------------------------------------


class ChunkConverter(Protocol):
    """Cortex's parsed chunks in, the client's frames out: what a route onto Chat Completions adds."""

    def feed(self, chunk: dict[str, Any]) -> list[bytes]: ...

    def finish(self) -> list[bytes]:
        """The frames that end a complete answer."""
        ...

    def error(self, failure: GatewayError) -> bytes:
        """The one frame that ends a broken answer, in the client's dialect."""
        ...


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
                chunk = loads_finite(data)
            except ValueError:
                raise malformed_stream() from None
            if not isinstance(chunk, dict):
                raise malformed_stream()
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
        raise incomplete_answer("its last chunk", mid_event=bool(self._splitter.pending.strip()))


class ChatStreamConverter:
    """The :class:`~.exchange.StreamConverter` of the routes onto Chat Completions: Cortex's bytes
    are read into chunks, usage chunks go on the ledger record, and ``chunks`` writes the frames."""

    def __init__(self, chunks: ChunkConverter, record: UsageRecord) -> None:
        self._reader = ChatChunkReader()
        self._chunks = chunks
        self._record = record
        self.failed = False

    def feed(self, raw: bytes) -> bytes:
        if self.failed:
            return b""
        try:
            chunks = self._reader.feed(raw)
        except GatewayError as error:
            self.failed = True
            return self._chunks.error(error)
        frames: list[bytes] = []
        for chunk in chunks:
            self._record.add_openai_usage(chunk.get("usage"))
            frames.extend(self._chunks.feed(chunk))
        return b"".join(frames)

    def finish(self, failure: GatewayError | None) -> bytes:
        if self.failed:
            return b""
        if failure is None:
            try:
                self._reader.finish()
            except GatewayError as error:
                failure = error
        if failure is not None:
            self.failed = True
            return self._chunks.error(failure)
        return b"".join(self._chunks.finish())


# -- a whole completion ----------------------------------------------------------------------------


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


async def replay_completion(
    completion: Mapping[str, Any], chunks: ChunkConverter
) -> AsyncIterator[bytes]:
    """A whole completion sent as the stream the client asked for."""
    for chunk in completion_as_chunks(completion):
        for frame in chunks.feed(chunk):
            yield frame
    for frame in chunks.finish():
        yield frame
