"""The gateway: each endpoint's request, shaped and sent down its route to Cortex.

A handler gives it the raw request body and headers and gets back a
:class:`~.replies.JsonReply` or :class:`~.replies.StreamReply`; every failure is a
:class:`~jupyter_cortex_claude.errors.GatewayError`, which the handler renders in the dialect of
its endpoint. The routes, each *shape the request → one exchange with Cortex → convert the answer*:

- Anthropic → Cortex Messages (Claude): :mod:`.route_messages`
- Anthropic → Cortex Chat Completions (other models): :mod:`.route_anthropic_chat`
- OpenAI Chat Completions → Cortex Chat Completions: :mod:`.route_openai_chat`
- OpenAI Responses (Codex) → Cortex Chat Completions: :mod:`.route_openai_responses`
- OpenAI Responses → Cortex Responses (OpenAI models, opt-in): :mod:`.route_cortex_responses`

Adding a route: a request-shaping module, an answer converter (a
:class:`~.cortex_chat.ChunkConverter` for routes onto Chat Completions), a ``route_*.py`` that
plugs them into an :class:`~.exchange.Exchange`, and a method here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import invalid_request
from ..snowflake.cortex import CortexClient
from ..snowflake.models import ModelCatalogue
from .cortex_responses_request import shape_cortex_responses_request
from .exchange import ShapedRequest, Upstream
from .json_bodies import is_large, off_loop, parse_request_body
from .messages import ShapingPolicy, shape_messages_body
from .model_ids import resolve_model
from .model_list import ModelAvailability, anthropic_model_page, listed_ids, openai_model_list
from .openai_chat_request import (
    ChatShapingPolicy,
    ShapedChatRequest,
    shape_chat_body,
    shape_chat_request,
)
from .openai_responses_request import ChatTranslation, responses_to_chat
from .replies import GatewayReply, JsonReply
from .route_anthropic_chat import serve_anthropic_chat
from .route_cortex_responses import ResponsesUpstream, serve_cortex_responses
from .route_messages import ClaudeUpstream, serve_messages
from .route_openai_chat import serve_openai_chat
from .route_openai_responses import LEDGER_ENDPOINT, serve_openai_responses, session_of
from .token_count import estimate_input_tokens
from .unknown_models import for_known_model
from .usage import UsageRecord

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self,
        *,
        cortex: CortexClient,
        policy: ShapingPolicy,
        catalogue: ModelCatalogue,
        on_usage: Callable[[UsageRecord], None] | None = None,
        claude_upstream: str = "messages",
        responses_upstream: str = "chat",
    ) -> None:
        self.upstream = Upstream(cortex, on_usage)
        self.usage = self.upstream.usage  # where every route's usage records go
        self.policy = policy
        self.catalogue = catalogue
        self.claude_upstream = ClaudeUpstream(claude_upstream)
        self.responses_upstream = ResponsesUpstream(responses_upstream)
        self.model_availability = ModelAvailability(cortex, catalogue)
        # The OpenAI endpoint resolves model ids with the same aliases as the Anthropic side.
        self.chat_policy = ChatShapingPolicy(
            catalogue=catalogue,
            model_map=policy.model_map,
            family_models=policy.family_models,
            default_model=policy.default_model,
            resolve=functools.partial(
                resolve_model,
                model_map=policy.model_map,
                family_models=policy.family_models,
                default_model=policy.default_model,
                catalogue=catalogue,
            ),
            max_messages=policy.max_messages,
        )

    # -- Anthropic ----------------------------------------------------------------------------

    async def anthropic_messages(self, raw_body: bytes, headers: Mapping[str, str]) -> GatewayReply:
        # Large bodies are parsed and shaped in a worker thread (json_bodies.py: issue 11).
        shaped = await for_known_model(
            self,
            raw_body,
            off_loop(
                is_large(raw_body),
                shape_messages_body,
                raw_body,
                headers.get("anthropic-beta"),
                self.policy,
            ),
        )
        _log_shaping("messages", shaped, shaped.changes)
        if self.catalogue.is_claude(shaped.cortex_model) and not self.claude_upstream.use_chat():
            exchange = self.upstream.begin("anthropic", headers, shaped)
            reply = await serve_messages(exchange, shaped, self.claude_upstream)
            if reply is not None:
                return reply
        # Cortex's Messages API serves Claude only: the others go through Chat Completions.
        exchange = self.upstream.begin("anthropic", headers, shaped)
        return await serve_anthropic_chat(exchange, shaped, self.catalogue)

    def count_tokens(self, raw_body: bytes) -> JsonReply:
        body = parse_request_body(raw_body, max_messages=self.policy.max_messages)
        if not isinstance(body.get("messages"), list):
            raise invalid_request("messages: expected a list of messages", param="messages")
        return JsonReply(200, {"input_tokens": estimate_input_tokens(body)})

    async def anthropic_models(self) -> JsonReply:
        await self.model_availability.refresh()
        ids = listed_ids(self.catalogue, self.policy.model_map)
        return JsonReply(200, anthropic_model_page(ids))

    # -- OpenAI -------------------------------------------------------------------------------

    async def openai_chat_completions(
        self, raw_body: bytes, headers: Mapping[str, str]
    ) -> GatewayReply:
        shaping = off_loop(is_large(raw_body), shape_chat_body, raw_body, self.chat_policy)
        shaped = await for_known_model(self, raw_body, shaping)
        _log_shaping("chat completions", shaped, shaped.changes)
        exchange = self.upstream.begin("openai", headers, shaped)
        return await serve_openai_chat(exchange, shaped, self.chat_policy)

    async def openai_responses(self, raw_body: bytes, headers: Mapping[str, str]) -> GatewayReply:
        # Validated and chat-shaped first, whichever API answers: the same 400s, model, ceiling.
        shaping = off_loop(is_large(raw_body), _shape_responses, raw_body, self.chat_policy)
        body, translation, shaped = await for_known_model(
            self, raw_body, shaping, lambda shaped: shaped[2]
        )
        session = session_of(body, headers)
        model = self.catalogue.get(shaped.cortex_model)
        if self.responses_upstream.answers_for(model) and not shaped.ends_with_assistant:
            native = shape_cortex_responses_request(body, translation, shaped)
            _log_shaping("responses via Cortex responses", native, native.changes)
            exchange = self.upstream.begin(LEDGER_ENDPOINT, headers, native)
            reply = await serve_cortex_responses(
                exchange, native, self.responses_upstream, session=session
            )
            if reply is not None:
                return reply
        _log_shaping("responses", shaped, [*translation.changes, *shaped.changes])
        exchange = self.upstream.begin(LEDGER_ENDPOINT, headers, shaped)
        return await serve_openai_responses(exchange, translation, shaped, session=session)

    async def openai_models(self) -> JsonReply:
        await self.model_availability.refresh()
        return JsonReply(200, openai_model_list(listed_ids(self.catalogue, self.policy.model_map)))


def _shape_responses(
    raw_body: bytes, policy: ChatShapingPolicy
) -> tuple[dict[str, Any], ChatTranslation, ShapedChatRequest]:
    body = parse_request_body(raw_body, max_messages=policy.max_messages)
    translation = responses_to_chat(body)
    shaped = shape_chat_request(translation.chat_body, policy)
    shaped.large = is_large(raw_body)
    return body, translation, shaped


def _log_shaping(endpoint: str, shaped: ShapedRequest, changes: list[str]) -> None:
    if not log.isEnabledFor(logging.DEBUG):  # every request passes here: skip the join
        return
    log.debug(
        "%s: model %s -> %s, stream=%s, shaping: %s",
        endpoint,
        shaped.client_model,
        shaped.cortex_model,
        shaped.stream,
        "; ".join(changes) or "none",
    )
