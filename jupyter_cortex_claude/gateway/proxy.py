"""The gateway's protocol logic, independent of tornado and of how credentials are obtained.

A handler gives it the raw request body and headers; it shapes the request, asks the Cortex client, and
returns either a JSON reply or an async iterator of SSE bytes to relay. Every failure is a
:class:`GatewayError`, which the handler renders in the dialect of its endpoint.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import GatewayError, invalid_request
from ..snowflake.cortex import MESSAGES_PATH, CortexClient, CortexResponse
from ..snowflake.models import ModelCatalogue
from .messages import ShapingPolicy, shape_messages_request
from .model_ids import resolve_model
from .model_list import ModelAvailability, anthropic_model_page, listed_ids, openai_model_list
from .openai_endpoint import openai_chat_completions
from .openai_shaping import ChatShapingPolicy
from .relay import AnthropicStreamRelay
from .responses_endpoint import openai_responses
from .token_count import estimate_input_tokens
from .translated import ClaudeUpstream, anthropic_via_chat
from .usage import UsageRecord, UsageRecorder

log = logging.getLogger("jupyter_cortex_claude.gateway")

CORTEX_ANTHROPIC_VERSION = "2023-06-01"


@dataclass
class JsonReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """SSE bytes to relay. Closing ``frames`` (or cancelling the task iterating it) closes upstream."""

    frames: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


Reply = JsonReply | StreamReply


class Gateway:
    def __init__(
        self,
        *,
        cortex: CortexClient,
        policy: ShapingPolicy,
        catalogue: ModelCatalogue,
        on_usage: Callable[[UsageRecord], None] | None = None,
        claude_upstream: str = "messages",
    ) -> None:
        self.cortex = cortex
        self.policy = policy
        self.catalogue = catalogue
        self.usage = UsageRecorder(on_usage)
        self.claude_upstream = ClaudeUpstream(claude_upstream)
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
        )

    # -- Anthropic Messages -------------------------------------------------------------------

    async def anthropic_messages(self, raw_body: bytes, headers: Mapping[str, str]) -> Reply:
        body = parse_json_body(raw_body)
        shaped = shape_messages_request(body, headers.get("anthropic-beta"), self.policy)
        log.debug(
            "messages: model %s -> %s, stream=%s, shaping: %s",
            shaped.client_model,
            shaped.cortex_model,
            shaped.stream,
            "; ".join(shaped.changes) or "none",
        )
        if not self.catalogue.is_claude(shaped.cortex_model) or self.claude_upstream.use_chat():
            # Cortex's Messages API serves Claude only: the others go through Chat Completions.
            return await anthropic_via_chat(self, shaped, headers)
        upstream_headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if shaped.stream else "application/json",
            "anthropic-version": CORTEX_ANTHROPIC_VERSION,
        }
        if shaped.betas:
            upstream_headers["anthropic-beta"] = ",".join(shaped.betas)
        record = UsageRecord(
            endpoint="anthropic",
            client=headers.get("user-agent", "")[:80],
            client_model=shaped.client_model,
            cortex_model=shaped.cortex_model,
            stream=shaped.stream,
        )
        content = json.dumps(shaped.body, separators=(",", ":")).encode()
        try:
            response = await self.cortex.open(
                MESSAGES_PATH, content, headers=upstream_headers, model=shaped.cortex_model
            )
        except GatewayError as error:
            if self.claude_upstream.falls_back_on(error):
                return await anthropic_via_chat(self, shaped, headers)
            self.usage.failed(record, error)
            raise
        record.retries = response.retries
        record.request_id = response.request_id
        if shaped.stream and response.is_event_stream:
            relay = AnthropicStreamRelay(shaped.client_model, record)
            return StreamReply(self._relay_stream(response, relay, record), _id_header(response))
        return await self._complete_message(response, shaped.client_model, record)

    async def _complete_message(
        self, response: CortexResponse, client_model: str, record: UsageRecord
    ) -> JsonReply:
        try:
            body = await response.read()
        except httpx.HTTPError as exc:
            error = GatewayError(502, f"The answer from Cortex broke off ({type(exc).__name__}).")
            self.usage.failed(record, error)
            raise error from None
        error = response.error_for_body(
            body, model=record.cortex_model, identity=self.cortex.identity
        )
        try:
            message = json.loads(body) if error is None else None
        except ValueError:
            error = GatewayError(502, "Cortex answered with something that is not JSON.")
        if error is None and not (isinstance(message, dict) and message.get("type") == "message"):
            error = GatewayError(
                502, "Cortex answered without a message (expected an Anthropic message)."
            )
        if error is not None:
            self.usage.failed(record, error)
            raise error
        assert isinstance(message, dict)
        message["model"] = client_model
        record.add_anthropic_usage(message.get("usage"))
        self.usage.finished(record, response.started)
        return JsonReply(200, message, _id_header(response))

    async def _relay_stream(
        self, response: CortexResponse, relay: AnthropicStreamRelay, record: UsageRecord
    ) -> AsyncIterator[bytes]:
        failure: GatewayError | None = None
        try:
            async for chunk in response.http.aiter_bytes():
                if record.first_token_ms is None:
                    record.first_token_ms = (time.monotonic() - response.started) * 1000
                out = relay.feed(chunk)
                if out:
                    yield out
                if relay.failed:
                    break
        except httpx.ReadTimeout:
            failure = GatewayError(
                503, "Cortex stopped sending mid-answer (read timeout). Retry the request."
            )
        except httpx.HTTPError as exc:
            failure = GatewayError(
                502, f"The stream from Cortex broke off mid-answer ({type(exc).__name__})."
            )
        except (asyncio.CancelledError, GeneratorExit):
            self.usage.client_left(record, response.started)
            raise
        finally:
            await response.aclose()
        tail = relay.finish(failure)
        if relay.failed:
            record.status = failure.status if failure else 502
            record.error = "incomplete stream"
        self.usage.finished(record, response.started)
        if tail:
            yield tail

    # -- helpers for the other Anthropic endpoints ---------------------------------------------

    def count_tokens(self, raw_body: bytes) -> JsonReply:
        body = parse_json_body(raw_body)
        if not isinstance(body.get("messages"), list):
            raise invalid_request("messages: expected a list of messages", param="messages")
        return JsonReply(200, {"input_tokens": estimate_input_tokens(body)})

    async def anthropic_models(self) -> JsonReply:
        await self.model_availability.refresh()
        ids = listed_ids(self.catalogue, self.policy.model_map)
        return JsonReply(200, anthropic_model_page(ids))

    # -- OpenAI Chat Completions --------------------------------------------------------------

    async def openai_chat_completions(self, raw_body: bytes, headers: Mapping[str, str]) -> Reply:
        return await openai_chat_completions(self, raw_body, headers)

    async def openai_responses(self, raw_body: bytes, headers: Mapping[str, str]) -> Reply:
        return await openai_responses(self, raw_body, headers)

    async def openai_models(self) -> JsonReply:
        await self.model_availability.refresh()
        return JsonReply(200, openai_model_list(listed_ids(self.catalogue, self.policy.model_map)))


def parse_json_body(raw_body: bytes) -> dict[str, Any]:
    if not raw_body:
        raise invalid_request("The request body is empty; expected a JSON object.")
    try:
        body = json.loads(raw_body)
    except RecursionError:
        raise invalid_request("The request body is nested too deeply.") from None
    except ValueError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


def _id_header(response: CortexResponse) -> dict[str, str]:
    request_id = response.request_id
    return {"x-snowflake-request-id": request_id} if request_id else {}
