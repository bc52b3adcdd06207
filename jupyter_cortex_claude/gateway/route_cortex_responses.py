"""Route OpenAI Responses → Cortex Responses: OpenAI models on Cortex's preview Responses API (opt-in).

With ``c.CortexClaude.responses_upstream = "responses"``, a Responses request for an OpenAI model
is shaped by :mod:`.cortex_responses_request`, sent to ``/api/v2/cortex/v1/responses`` through one
:class:`~.exchange.Exchange`, and Cortex's events are relayed by :mod:`.cortex_responses_answer`.
Every other model, and every request while the setting is ``chat`` (the default, until Cortex
documents the API's field support), takes the Responses → Chat route
(:mod:`.route_openai_responses`). So does a conversation that ends with an assistant message: the
Chat route answers it without calling Cortex.

A 404 from Cortex's ``/v1/responses`` means the deployment has no Responses API: the route switches
to Chat Completions for the rest of the process and logs it once (:class:`ResponsesUpstream`).
"""

from __future__ import annotations

import logging

from ..errors import GatewayError
from ..snowflake.cortex import RESPONSES_PATH
from ..snowflake.models import ModelInfo
from .chat_fallback import ChatFallback
from .cortex_responses_answer import (
    RESPONSE,
    ResponsesEventRelay,
    events_of_response,
    response_for_client,
)
from .cortex_responses_request import ShapedResponsesRequest
from .exchange import Exchange, reply_headers
from .replies import GatewayReply, JsonReply, StreamReply, frames_of
from .route_openai_responses import DROPPED_TOOLS

log = logging.getLogger(__name__)


class ResponsesUpstream(ChatFallback):
    """Which Cortex API serves OpenAI models on the Responses endpoint: ``chat`` (the default) or
    ``responses``; a 404 from ``/v1/responses`` switches them to Chat Completions."""

    def __init__(self, mode: str = "chat") -> None:
        super().__init__(
            setting="responses_upstream",
            mode=mode,
            preferred="responses",
            path=RESPONSES_PATH,
            what="OpenAI models on the Responses endpoint",
        )

    def answers_for(self, model: ModelInfo) -> bool:
        """True when Cortex's Responses API is to answer for ``model`` (OpenAI models only)."""
        return model.family == "openai" and not self.use_chat()


async def serve_cortex_responses(
    exchange: Exchange, shaped: ShapedResponsesRequest, upstream: ResponsesUpstream, *, session: str
) -> GatewayReply | None:
    """The answer from Cortex's Responses API; ``None`` when Cortex has none here (the caller then
    takes the Responses → Chat route)."""
    DROPPED_TOOLS.note(session, shaped.dropped_tools)
    try:
        response = await exchange.open(
            RESPONSES_PATH, shaped.body, stream=shaped.stream, not_a_failure=upstream.means_missing
        )
    except GatewayError as error:
        if not upstream.means_missing(error):
            raise
        upstream.fall_back(error)
        return None
    if shaped.stream and response.is_event_stream:
        relay = ResponsesEventRelay(shaped.client_model, shaped.tools, exchange.record)
        return StreamReply(exchange.relay(response, relay), reply_headers(response))
    answer = response_for_client(
        await exchange.read_json(response, RESPONSE), shaped.client_model, shaped.tools
    )
    if shaped.stream:
        log.debug("responses: Cortex answered a streaming request with JSON; sent as events")
        return StreamReply(frames_of([events_of_response(answer)]), reply_headers(response))
    return JsonReply(200, answer, reply_headers(response))
