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

from ..errors import GatewayError
from ..snowflake.cortex import MESSAGES_PATH
from .chat_fallback import ChatFallback
from .exchange import Exchange, reply_headers
from .messages import ShapedMessagesRequest
from .messages_answer import MESSAGE, AnthropicStreamRelay
from .replies import GatewayReply, JsonReply, StreamReply

CORTEX_ANTHROPIC_VERSION = "2023-06-01"


class ClaudeUpstream(ChatFallback):
    """Which Cortex API serves Claude models: ``messages`` (the default) or ``chat``; a 404 from
    Cortex's ``/v1/messages`` switches Claude to Chat Completions (see :mod:`.chat_fallback`)."""

    def __init__(self, mode: str = "messages") -> None:
        super().__init__(
            setting="claude_upstream",
            mode=mode,
            preferred="messages",
            path=MESSAGES_PATH,
            what="Claude",
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
            not_a_failure=claude_upstream.means_missing,
        )
    except GatewayError as error:
        if not claude_upstream.means_missing(error):
            raise
        claude_upstream.fall_back(error)
        return None
    if shaped.stream and response.is_event_stream:
        relay = AnthropicStreamRelay(shaped.client_model, exchange.record)
        return StreamReply(exchange.relay(response, relay), reply_headers(response))
    message = await exchange.read_json(response, MESSAGE)
    message["model"] = shaped.client_model
    return JsonReply(200, message, reply_headers(response))
