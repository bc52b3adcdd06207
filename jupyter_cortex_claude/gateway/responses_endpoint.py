"""``POST .../openai/v1/responses``: the OpenAI Responses API (Codex CLI) on Cortex's Chat Completions.

Cortex's own Responses API is a preview for OpenAI models only, so every model goes through Chat
Completions: :mod:`.responses_request` turns the request into a Chat Completions body, the chat
shaping (:mod:`.openai_shaping`) makes it acceptable to Cortex, and :mod:`.responses_answers` turns
Cortex's chunks into Responses events as they arrive. The ledger records it as endpoint
``openai-responses``.

Answers that never reach Cortex are the OpenAI endpoint's (:mod:`.openai_endpoint`): a conversation
ending with an assistant message, and Cortex's 400 "conversation complete", are a completed
response with no output.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from .chat_stream import (
    frames_of,
    open_chat_completion,
    read_recorded_completion,
    relay_chat_stream,
)
from .openai_shaping import shape_chat_request
from .responses_answers import ResponsesAnswer
from .responses_request import ChatTranslation, responses_to_chat
from .usage import UsageRecord

if TYPE_CHECKING:
    from .proxy import Gateway, Reply

log = logging.getLogger("jupyter_cortex_claude.gateway")

LEDGER_ENDPOINT = "openai-responses"


class DroppedToolsNotice:
    """Logs once per client session which hosted tools were dropped (Codex offers them on every
    request; one line per request would drown the log). Remembers a bounded number of sessions."""

    def __init__(self, remembered: int = 256) -> None:
        self._told: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()
        self._remembered = remembered

    def note(self, session: str, dropped: list[str]) -> None:
        if not dropped:
            return
        key = (session, tuple(dropped))
        if key in self._told:
            return
        self._told[key] = None
        if len(self._told) > self._remembered:
            self._told.popitem(last=False)
        log.info(
            "responses: Cortex cannot run the hosted tools %s; they are left out of this "
            "session's requests",
            ", ".join(dropped),
        )


DROPPED_TOOLS = DroppedToolsNotice()


def session_of(body: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """Codex's session id (a header and client_metadata carry it), or the client's name."""
    metadata = body.get("client_metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("session_id"), str):
        return metadata["session_id"]
    return headers.get("session-id") or headers.get("user-agent", "")[:80]


async def openai_responses(gateway: Gateway, raw_body: bytes, headers: Mapping[str, str]) -> Reply:
    from .proxy import JsonReply, StreamReply, parse_json_body

    body = parse_json_body(raw_body)
    translation = responses_to_chat(body)
    shaped = shape_chat_request(translation.chat_body, gateway.chat_policy)
    DROPPED_TOOLS.note(session_of(body, headers), translation.dropped_tools)
    log.debug(
        "responses: model %s -> %s, stream=%s, shaping: %s",
        shaped.client_model,
        shaped.cortex_model,
        shaped.stream,
        "; ".join([*translation.changes, *shaped.changes]) or "none",
    )
    record = UsageRecord(
        endpoint=LEDGER_ENDPOINT,
        client=headers.get("user-agent", "")[:80],
        client_model=shaped.client_model,
        cortex_model=shaped.cortex_model,
        stream=shaped.stream,
    )
    settings = _answer_settings(translation, shaped.max_completion_tokens)
    if shaped.ends_with_assistant:
        log.debug("responses: prefill answered with an empty completed response")
        gateway.usage.record(record)
        return _empty_answer(shaped.stream, settings)

    response = await open_chat_completion(
        gateway, shaped.body, stream=shaped.stream, cortex_model=shaped.cortex_model, record=record
    )
    if response is None:
        return _empty_answer(shaped.stream, settings)
    id_header = {"x-snowflake-request-id": response.request_id} if response.request_id else {}
    if shaped.stream and response.is_event_stream:
        answer = ResponsesAnswer(**settings)
        frames = relay_chat_stream(
            gateway,
            response,
            record,
            convert=lambda chunk: [answer.chunk(chunk)],
            finish=lambda: [answer.finish()],
            broken=answer.finish,
        )
        return StreamReply(_non_empty(frames), id_header)

    completion = await read_recorded_completion(
        gateway, response, cortex_model=shaped.cortex_model, record=record
    )
    answer, events = ResponsesAnswer.from_completion(completion, **settings)
    if shaped.stream:
        # Cortex answered a streaming request with plain JSON: send it as the stream asked for.
        return StreamReply(frames_of([events]), id_header)
    return JsonReply(200, answer.response(), id_header)


def _answer_settings(translation: ChatTranslation, max_completion_tokens: int) -> dict[str, Any]:
    return {
        "client_model": translation.client_model,
        "tools": translation.tools,
        "max_completion_tokens": max_completion_tokens,
        "reasoning": translation.reasoning,
    }


def _empty_answer(stream: bool, settings: dict[str, Any]) -> Reply:
    from .proxy import JsonReply, StreamReply

    answer = ResponsesAnswer(**settings)
    events = answer.finish()
    if stream:
        return StreamReply(frames_of([events]))
    return JsonReply(200, answer.response())


async def _non_empty(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # A chunk may make no event (a keep-alive, a usage-only chunk): nothing to write for it.
    try:
        async for frame in frames:
            if frame:
                yield frame
    finally:
        await frames.aclose()  # type: ignore[attr-defined]
