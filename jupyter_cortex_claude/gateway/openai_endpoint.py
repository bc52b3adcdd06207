"""``POST .../openai/v1/chat/completions``: OpenAI clients (Cursor, Continue, Aider) on Cortex.

The request is shaped by :mod:`.openai_shaping`, sent to Cortex's Chat Completions API, and the
answer completed on its way back by :mod:`.openai_answers`: the ``finish_reason`` Cortex omits for
Claude is derived, the usage chunk reaches the client only if it asked, and the model name is the
one the client sent.

Answers that never reach Cortex (see ``cortex-api.md``):

- a conversation that ends with an assistant message (a "prefill"), which Cortex refuses: an empty
  completion with ``finish_reason: "stop"``; the prefilled text already is the start of the answer.
- Cortex's 400 "conversation complete" means the model had nothing to add: the same empty stop.

A stream that breaks after the headers were sent ends with one ``data: {"error": {...}}`` event
and no ``data: [DONE]``: the OpenAI SDKs raise ``APIError`` on such an event, and an absent
``[DONE]`` tells any other client that the answer is incomplete.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from .chat_stream import (
    DONE_LINE,
    completion_as_chunks,
    data_line,
    frames_of,
    open_chat_completion,
    read_recorded_completion,
    relay_chat_stream,
)
from .openai_answers import (
    FinishReasonFixer,
    complete_chat_response,
    empty_stop_chunks,
    empty_stop_completion,
)
from .openai_shaping import ShapedChatRequest, answer_for_prefill, shape_chat_request
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
        gateway.usage.record(record)
        return _empty_stop(shaped)

    response = await open_chat_completion(
        gateway, shaped.body, stream=shaped.stream, cortex_model=shaped.cortex_model, record=record
    )
    if response is None:
        log.debug("chat completions: Cortex said 'conversation complete', an empty stop")
        return _empty_stop(shaped)
    id_header = {"x-snowflake-request-id": response.request_id} if response.request_id else {}
    model = gateway.catalogue.get(shaped.cortex_model)
    fixer = FinishReasonFixer(
        model=model,
        max_completion_tokens=shaped.max_completion_tokens,
        client_model=shaped.client_model,
        client_wants_usage=shaped.client_wants_usage,
    )
    if shaped.stream and response.is_event_stream:
        frames = relay_chat_stream(
            gateway,
            response,
            record,
            convert=lambda chunk: map(data_line, fixer.process(chunk)),
            finish=lambda: [*map(data_line, fixer.finish()), DONE_LINE],
            broken=lambda error: data_line(error.openai_body()),  # and no [DONE]
        )
        return StreamReply(frames, id_header)

    completion = await read_recorded_completion(
        gateway, response, cortex_model=shaped.cortex_model, record=record
    )
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
    return StreamReply(frames_of([*map(data_line, chunks), DONE_LINE]))


async def _replay(chunks: list[dict], fixer: FinishReasonFixer) -> AsyncIterator[bytes]:
    for chunk in chunks:
        for out in fixer.process(chunk):
            yield data_line(out)
    for out in fixer.finish():
        yield data_line(out)
    yield DONE_LINE
