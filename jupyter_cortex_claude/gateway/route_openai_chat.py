"""Route OpenAI → Cortex Chat Completions: OpenAI clients (Cursor, Continue, Aider) on Cortex.

The request was shaped by :mod:`.openai_chat_request`; it goes to Cortex's Chat Completions API
through one :class:`~.exchange.Exchange`, and the answer is completed on its way back by
:mod:`.openai_chat_answer`: the ``finish_reason`` Cortex omits for Claude is derived, the usage
chunk reaches the client only if it asked, and the model name is the one the client sent.

Answers that never reach Cortex (see ``cortex-api.md``):

- a conversation that ends with an assistant message (a "prefill"), which Cortex refuses: an empty
  completion with ``finish_reason: "stop"``; the prefilled text already is the start of the answer.
- Cortex's 400 "conversation complete" means the model had nothing to add: the same empty stop.

A stream that breaks after the headers were sent ends with one ``data: {"error": {...}}`` event
and no ``data: [DONE]`` (:class:`.openai_chat_answer.OpenAIChunkWriter`).
"""

from __future__ import annotations

import logging

from .cortex_chat import chat_reply, open_chat_completion
from .exchange import Exchange
from .openai_chat_answer import (
    FinishReasonFixer,
    OpenAIChunkWriter,
    empty_stop_reply,
    fill_in_chat_completion,
)
from .openai_chat_request import ChatShapingPolicy, ShapedChatRequest, answer_for_prefill
from .replies import GatewayReply

log = logging.getLogger(__name__)


async def serve_openai_chat(
    exchange: Exchange, shaped: ShapedChatRequest, policy: ChatShapingPolicy
) -> GatewayReply:
    """A shaped Chat Completions request answered by Cortex's Chat Completions API."""
    if answer_for_prefill(shaped) is not None:
        log.debug("chat completions: prefill answered with an empty stop, Cortex not called")
        exchange.answered_here()
        return _empty_stop(shaped)
    response = await open_chat_completion(exchange, shaped.body, stream=shaped.stream)
    if response is None:
        log.debug("chat completions: Cortex said 'conversation complete', an empty stop")
        return _empty_stop(shaped)
    model = policy.catalogue.get(shaped.cortex_model)
    writer = OpenAIChunkWriter(
        FinishReasonFixer(
            model=model,
            max_completion_tokens=shaped.max_completion_tokens,
            client_model=shaped.client_model,
            client_wants_usage=shaped.client_wants_usage,
        )
    )
    return await chat_reply(
        exchange,
        response,
        writer,
        stream=shaped.stream,
        convert_whole=lambda completion: fill_in_chat_completion(
            completion,
            model=model,
            max_completion_tokens=shaped.max_completion_tokens,
            client_model=shaped.client_model,
        ),
    )


def _empty_stop(shaped: ShapedChatRequest) -> GatewayReply:
    return empty_stop_reply(
        shaped.client_model, stream=shaped.stream, include_usage=shaped.client_wants_usage
    )
