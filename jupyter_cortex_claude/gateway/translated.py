"""Anthropic Messages requests served through Cortex's Chat Completions API.

Cortex's Messages API serves Claude only (``cortex-api.md``). For every other model
(``openai-gpt-4.1``, ``llama3.1-70b``, ...) the gateway translates the already shaped Anthropic
request with :func:`.chat_request.anthropic_to_chat_request`, calls
``/api/v2/cortex/v1/chat/completions``, and translates the answer back with
:mod:`.chat_response`, streaming included, so Claude Code and the Anthropic SDKs run unchanged.

The same path serves Claude when ``c.CortexClaude.claude_upstream = "chat"``, and by itself once
Cortex answered 404 on ``/v1/messages`` (an account or deployment without the Messages API): see
:class:`ClaudeUpstream`.

Validation and model resolution happen once, in :func:`.messages.shape_messages_request`, before
the path is chosen: both paths refuse the same bad requests with the same messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import GatewayError
from .chat_request import anthropic_to_chat_request
from .chat_response import (
    ChatStreamTranslator,
    chat_completion_to_anthropic,
    empty_anthropic_message,
)
from .chat_stream import (
    completion_as_chunks,
    frames_of,
    open_chat_completion,
    read_recorded_completion,
    relay_chat_stream,
)
from .relay import error_event
from .token_count import estimate_input_tokens
from .usage import UsageRecord

if TYPE_CHECKING:
    from .messages import ShapedMessagesRequest
    from .proxy import Gateway, Reply

log = logging.getLogger("jupyter_cortex_claude.gateway")

CLAUDE_UPSTREAMS = ("messages", "chat")


class ClaudeUpstream:
    """Which Cortex API serves Claude models: ``messages`` (the default) or ``chat``.

    With ``messages``, a 404 from Cortex's ``/v1/messages`` switches Claude to Chat Completions for
    the rest of the process: Cortex answers an unknown model with a 400, never a 404, so a 404 means
    the endpoint itself is missing, and asking it again on every turn would only add latency.
    """

    def __init__(self, mode: str = "messages") -> None:
        if mode not in CLAUDE_UPSTREAMS:
            raise ValueError(f"claude_upstream must be one of {CLAUDE_UPSTREAMS}, got {mode!r}")
        self.mode = mode
        self.messages_missing = False

    def use_chat(self) -> bool:
        return self.mode == "chat" or self.messages_missing

    def falls_back_on(self, error: GatewayError) -> bool:
        """True, and remembered, when ``error`` says Cortex has no Messages API here."""
        if error.status != 404 or self.mode != "messages":
            return False
        if not self.messages_missing:
            self.messages_missing = True
            log.warning(
                "Cortex answered 404 on /v1/messages%s: serving Claude through Chat Completions "
                "from now on. Set c.CortexClaude.claude_upstream = 'chat' to skip this probe.",
                f" (Snowflake request id {error.request_id})" if error.request_id else "",
            )
        return True


async def anthropic_via_chat(
    gateway: Gateway, shaped: ShapedMessagesRequest, headers: Mapping[str, str]
) -> Reply:
    """Serve a shaped Anthropic request through Cortex's Chat Completions API."""
    from .proxy import JsonReply, StreamReply

    model = gateway.catalogue.get(shaped.cortex_model)
    request = anthropic_to_chat_request(shaped.body, cortex_model=shaped.cortex_model, model=model)
    log.debug(
        "messages via chat completions: model %s -> %s (%s), stream=%s",
        shaped.client_model,
        shaped.cortex_model,
        model.family,
        shaped.stream,
    )
    record = UsageRecord(
        endpoint="anthropic",
        client=headers.get("user-agent", "")[:80],
        client_model=shaped.client_model,
        cortex_model=shaped.cortex_model,
        stream=shaped.stream,
    )
    response = await open_chat_completion(
        gateway, request, stream=shaped.stream, cortex_model=shaped.cortex_model, record=record
    )
    if response is None:
        # Cortex's way of saying the model had nothing to add: a normal, empty end_turn.
        log.debug("messages via chat completions: 'conversation complete', an empty answer")
        if shaped.stream:
            translator = ChatStreamTranslator(client_model=shaped.client_model)
            return StreamReply(frames_of(translator.finish()))
        return JsonReply(200, empty_anthropic_message(shaped.client_model))
    id_header = {"x-snowflake-request-id": response.request_id} if response.request_id else {}
    translator = ChatStreamTranslator(
        client_model=shaped.client_model, input_tokens_hint=estimate_input_tokens(shaped.body)
    )
    if shaped.stream and response.is_event_stream:
        frames = relay_chat_stream(
            gateway,
            response,
            record,
            convert=translator.feed,
            finish=translator.finish,
            broken=error_event,  # an SSE error makes Claude Code retry the turn
        )
        return StreamReply(frames, id_header)

    completion = await read_recorded_completion(
        gateway, response, cortex_model=shaped.cortex_model, record=record
    )
    if shaped.stream:
        # Cortex answered a streaming request with plain JSON: still send the Anthropic stream.
        frames = [
            frame for chunk in completion_as_chunks(completion) for frame in translator.feed(chunk)
        ]
        return StreamReply(frames_of([*frames, *translator.finish()]), id_header)
    message = chat_completion_to_anthropic(completion, client_model=shaped.client_model)
    return JsonReply(200, message, id_header)
