"""Route Anthropic → Cortex Chat Completions: every other model, for Claude Code and the Anthropic SDKs.

Cortex's Messages API serves Claude only (``cortex-api.md``). For every other model
(``openai-gpt-4.1``, ``llama3.1-70b``, ...) the already shaped Anthropic request is translated by
:func:`.anthropic_chat_request.anthropic_to_chat_request`, sent to
``/api/v2/cortex/v1/chat/completions`` through one :class:`~.exchange.Exchange`, and the answer is
translated back by :mod:`.anthropic_chat_answer`, streaming included, so Claude Code and the
Anthropic SDKs run unchanged.

The same route serves Claude when ``c.CortexClaude.claude_upstream = "chat"``, and by itself once
Cortex answered 404 on ``/v1/messages`` (see :class:`.route_messages.ClaudeUpstream`).

Validation and model resolution happen once, in :func:`.messages.shape_messages_request`, before
the route is chosen: both Anthropic routes refuse the same bad requests with the same messages.
"""

from __future__ import annotations

import functools
import logging

from ..snowflake.models import ModelCatalogue
from .anthropic_chat_answer import (
    ChatStreamTranslator,
    chat_completion_to_anthropic,
    empty_answer_reply,
)
from .anthropic_chat_request import anthropic_to_chat_request
from .cortex_chat import chat_reply, open_chat_completion
from .exchange import Exchange
from .json_bodies import off_loop
from .messages import ShapedMessagesRequest
from .replies import GatewayReply
from .token_count import estimate_input_tokens

log = logging.getLogger(__name__)


async def serve_anthropic_chat(
    exchange: Exchange, shaped: ShapedMessagesRequest, catalogue: ModelCatalogue
) -> GatewayReply:
    """A shaped Anthropic request answered through Cortex's Chat Completions API."""
    model = catalogue.get(shaped.cortex_model)
    translate = functools.partial(
        anthropic_to_chat_request, shaped.body, cortex_model=shaped.cortex_model, model=model
    )
    request = await off_loop(shaped.large, translate)
    log.debug(
        "messages via chat completions: model %s -> %s (%s), stream=%s",
        shaped.client_model,
        shaped.cortex_model,
        model.family,
        shaped.stream,
    )
    response = await open_chat_completion(exchange, request, stream=shaped.stream)
    if response is None:
        # Cortex's way of saying the model had nothing to add: a normal, empty end_turn.
        log.debug("messages via chat completions: 'conversation complete', an empty answer")
        return empty_answer_reply(shaped.client_model, stream=shaped.stream)
    translator = ChatStreamTranslator(
        client_model=shaped.client_model, input_tokens_hint=estimate_input_tokens(shaped.body)
    )
    return await chat_reply(
        exchange,
        response,
        translator,
        stream=shaped.stream,
        convert_whole=lambda completion: chat_completion_to_anthropic(
            completion, client_model=shaped.client_model
        ),
    )
