"""``POST .../openai/v1/chat/completions``: OpenAI clients (Cursor, Continue, Aider) on Cortex.

The request is shaped by :mod:`.openai_shaping`, sent to Cortex's Chat Completions API, and the
answer completed on its way back: the ``finish_reason`` Cortex omits for Claude is derived, the
usage chunk reaches the client only if it asked, and the model name is the one the client sent.

Answers that never reach Cortex (see ``cortex-api.md``):

- a conversation that ends with an assistant message (a "prefill"), which Cortex refuses: an empty
  completion with ``finish_reason: "stop"``; the prefilled text already is the start of the answer.
- Cortex's 400 "conversation complete" means the model had nothing to add: the same empty stop.

A stream that breaks after the headers were sent ends with one ``data: {"error": {...}}`` event
and no ``data: [DONE]``: the OpenAI SDKs raise ``APIError`` on such an event, and an absent
``[DONE]`` tells any other client that the answer is incomplete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from ..snowflake.cortex import CHAT_COMPLETIONS_PATH, CortexResponse
from .chat_stream import (
    DONE_LINE,
    completion_as_chunks,
    data_line,
    read_chat_chunks,
    read_chat_completion,
)
from .errors import GatewayError
from .openai_shaping import (
    FinishReasonFixer,
    ShapedChatRequest,
    answer_for_prefill,
    complete_chat_response,
    empty_stop_chunks,
    empty_stop_completion,
    is_conversation_complete_error,
    shape_chat_request,
)
from .usage import UsageRecord

if TYPE_CHECKING:
    from .proxy import Gateway, Reply

log = logging.getLogger("jupyter_cortex_claude.gateway")


async def openai_chat_completions(
    gateway: Gateway, raw_body: bytes, headers: Mapping[str, str]
) -> Reply:
    from .proxy import JsonReply, StreamReply, parse_json_body

    shaped = shape_chat_request(parse_json_body(raw_body), gateway.chat_policy)
    log.debug(
        "chat completions: model %s -> %s, stream=%s, shaping: %s",
        shaped.client_model,
        shaped.cortex_model,
        shaped.stream,
        "; ".join(shaped.changes) or "none",
    )
    record = UsageRecord(
        endpoint="openai",
        client=headers.get("user-agent", "")[:80],
        client_model=shaped.client_model,
        cortex_model=shaped.cortex_model,
        stream=shaped.stream,
    )
    if answer_for_prefill(shaped) is not None:
        log.debug("chat completions: prefill answered with an empty stop, Cortex not called")
        gateway._emit(record)
        return _empty_stop(shaped)

    content = json.dumps(shaped.body, separators=(",", ":")).encode()
    upstream_headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if shaped.stream else "application/json",
    }
    try:
        response = await gateway.cortex.open(
            CHAT_COMPLETIONS_PATH, content, headers=upstream_headers, model=shaped.cortex_model
        )
    except GatewayError as error:
        if is_conversation_complete_error(error.status, error.message):
            log.debug("chat completions: Cortex said 'conversation complete', an empty stop")
            record.request_id = error.request_id
            gateway._emit(record)
            return _empty_stop(shaped)
        gateway._record_failure(record, error)
        raise
    record.retries = response.retries
    record.request_id = response.request_id
    id_header = {"x-snowflake-request-id": response.request_id} if response.request_id else {}
    model = gateway.catalogue.get(shaped.cortex_model)
    fixer = FinishReasonFixer(
        model=model,
        max_completion_tokens=shaped.max_completion_tokens,
        client_model=shaped.client_model,
        client_wants_usage=shaped.client_wants_usage,
    )
    if shaped.stream and response.is_event_stream:
        return StreamReply(_relay(gateway, response, fixer, record), id_header)

    try:
        completion = await read_chat_completion(
            response, model=shaped.cortex_model, identity=gateway.cortex.identity
        )
    except GatewayError as error:
        gateway._record_failure(record, error)
        raise
    record.add_openai_usage(completion.get("usage"))
    gateway._record_done(record, response)
    if shaped.stream:
        # Cortex answered a streaming request with plain JSON: send it as the stream asked for.
        return StreamReply(_replay(completion_as_chunks(completion), fixer), id_header)
    completed = complete_chat_response(
        completion,
        model=model,
        max_completion_tokens=shaped.max_completion_tokens,
        client_model=shaped.client_model,
    )
    return JsonReply(200, completed, id_header)


def _empty_stop(shaped: ShapedChatRequest) -> Reply:
    from .proxy import JsonReply, StreamReply

    if not shaped.stream:
        return JsonReply(200, empty_stop_completion(shaped.client_model))
    chunks = empty_stop_chunks(shaped.client_model, include_usage=shaped.client_wants_usage)
    return StreamReply(_frames([*map(data_line, chunks), DONE_LINE]))


async def _frames(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


async def _replay(chunks: list[dict], fixer: FinishReasonFixer) -> AsyncIterator[bytes]:
    for chunk in chunks:
        for out in fixer.process(chunk):
            yield data_line(out)
    for out in fixer.finish():
        yield data_line(out)
    yield DONE_LINE


async def _relay(
    gateway: Gateway, response: CortexResponse, fixer: FinishReasonFixer, record: UsageRecord
) -> AsyncIterator[bytes]:
    failure: GatewayError | None = None
    try:
        try:
            async for chunk in read_chat_chunks(response, record):
                for out in fixer.process(chunk):
                    yield data_line(out)
        except GatewayError as error:
            failure = error
    finally:
        await response.aclose()
    if failure is not None:
        log.debug("chat completions: stream failed mid-answer: %s", failure.message)
        record.status = failure.status
        record.error = "incomplete stream"
        gateway._record_done(record, response)
        yield data_line(failure.openai_body())
        return
    for out in fixer.finish():
        yield data_line(out)
    gateway._record_done(record, response)
    yield DONE_LINE
