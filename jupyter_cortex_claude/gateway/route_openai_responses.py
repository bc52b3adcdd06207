"""Route OpenAI Responses → Cortex Chat Completions: the Codex CLI (and ``responses.create``) on Cortex.

Cortex's own Responses API is a preview for OpenAI models only, so every model goes through Chat
Completions by default (OpenAI models may opt in to it: :mod:`.route_cortex_responses`): :mod:`.openai_responses_request` turns the request into a Chat Completions body, the
chat shaping (:mod:`.openai_chat_request`) makes it acceptable to Cortex, one
:class:`~.exchange.Exchange` carries it, and :mod:`.openai_responses_answer` turns Cortex's chunks
into Responses events as they arrive. The ledger records it as endpoint ``openai-responses``.

Answers that never reach Cortex are the OpenAI Chat route's: a conversation ending with an
assistant message, and Cortex's 400 "conversation complete", are a completed response with no
output.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .cortex_chat import chat_reply, open_chat_completion
from .exchange import Exchange
from .openai_chat_request import ShapedChatRequest
from .openai_responses_answer import ResponsesAnswer, ResponsesChunkWriter, empty_response_reply
from .openai_responses_request import ChatTranslation
from .replies import GatewayReply

log = logging.getLogger(__name__)

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


async def serve_openai_responses(
    exchange: Exchange, translation: ChatTranslation, shaped: ShapedChatRequest, *, session: str
) -> GatewayReply:
    """A translated and shaped Responses request answered by Cortex's Chat Completions API."""
    DROPPED_TOOLS.note(session, translation.dropped_tools)
    settings = _answer_settings(translation, shaped.max_completion_tokens)
    if shaped.ends_with_assistant:
        log.debug("responses: prefill answered with an empty completed response")
        exchange.answered_here()
        return empty_response_reply(shaped.stream, **settings)
    response = await open_chat_completion(exchange, shaped.body, stream=shaped.stream)
    if response is None:
        return empty_response_reply(shaped.stream, **settings)
    return await chat_reply(
        exchange,
        response,
        ResponsesChunkWriter(ResponsesAnswer(**settings)),
        stream=shaped.stream,
        convert_whole=lambda completion: _whole_response(completion, settings),
    )


def _answer_settings(translation: ChatTranslation, max_completion_tokens: int) -> dict[str, Any]:
    return {
        "client_model": translation.client_model,
        "tools": translation.tools,
        "max_completion_tokens": max_completion_tokens,
        "reasoning": translation.reasoning,
    }


def _whole_response(completion: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    answer, _ = ResponsesAnswer.from_completion(completion, **settings)
    return answer.response()
