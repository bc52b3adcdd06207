"""Route Anthropic → Cortex Messages: Claude models, for Claude Code and the Anthropic SDKs.

The request was shaped by :func:`.messages.shape_messages_request`; it goes to Cortex's
``/api/v2/cortex/v1/messages`` through one :class:`~.exchange.Exchange`, and the answer comes back
through :mod:`.messages_answer` (the model name the client sent, usage for the ledger, an error
event for a broken stream).

Which Cortex API serves Claude is :class:`ClaudeUpstream`'s call: this route, or the Anthropic →
Chat route (:mod:`.route_anthropic_chat`) when ``c.CortexClaude.claude_upstream = "chat"`` or once
Cortex answered 404 here.
"""

from __future__ import annotations

import logging

from ..errors import GatewayError
from ..snowflake.cortex import MESSAGES_PATH
from .exchange import Exchange, reply_headers
from .messages import ShapedMessagesRequest
from .messages_answer import MESSAGE, AnthropicStreamRelay
from .replies import GatewayReply, JsonReply, StreamReply

log = logging.getLogger(__name__)

CORTEX_ANTHROPIC_VERSION = "2023-06-01"
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

    def means_no_messages_api(self, error: GatewayError) -> bool:
        """True when ``error`` says Cortex has no Messages API here (and we may fall back)."""
        return error.status == 404 and self.mode == "messages"

    def fall_back(self, error: GatewayError) -> None:
        """Remember that Claude goes through Chat Completions from now on."""
        if not self.messages_missing:
            self.messages_missing = True
            log.warning(
                "Cortex answered 404 on /v1/messages%s: serving Claude through Chat Completions "
                "from now on. Set c.CortexClaude.claude_upstream = 'chat' to skip this probe.",
                f" (Snowflake request id {error.request_id})" if error.request_id else "",
            )


async def serve_messages(
    exchange: Exchange, shaped: ShapedMessagesRequest, claude_upstream: ClaudeUpstream
) -> GatewayReply | None:
    """Claude's answer from Cortex's Messages API; ``None`` when Cortex has no Messages API here
    (the caller then takes the Anthropic → Chat route)."""
    upstream_headers = {"anthropic-version": CORTEX_ANTHROPIC_VERSION}
    if shaped.betas:
        upstream_headers["anthropic-beta"] = ",".join(shaped.betas)
    try:
        response = await exchange.open(
            MESSAGES_PATH,
            shaped.body,
            stream=shaped.stream,
            headers=upstream_headers,
            not_a_failure=claude_upstream.means_no_messages_api,
        )
    except GatewayError as error:
        if not claude_upstream.means_no_messages_api(error):
            raise
        claude_upstream.fall_back(error)
        return None
    if shaped.stream and response.is_event_stream:
        relay = AnthropicStreamRelay(shaped.client_model, exchange.record)
        return StreamReply(exchange.relay(response, relay), reply_headers(response))
    message = await exchange.read_json(response, MESSAGE)
    message["model"] = shaped.client_model
    return JsonReply(200, message, reply_headers(response))
