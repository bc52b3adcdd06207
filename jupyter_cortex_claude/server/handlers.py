"""Thin tornado handlers: authenticate, hand the request to the gateway, write what it returns.

Each endpoint is a small mixin; :func:`jupyter_routes` combines them with :class:`JupyterAuthBase`
(Jupyter's own auth, or the gateway key) and :mod:`..standalone` with a key-only base, so the same
handlers serve inside Jupyter and outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import GatewayError
from ..gateway.replies import GatewayReply, JsonReply, StreamReply
from ..gateway.router import Gateway
from ..gateway_key import presented_key
from .access_log import metric_only
from .request_body import StreamedBody, too_large

if TYPE_CHECKING:
    from ..service import GatewayService

log = logging.getLogger("jupyter_cortex_claude.handlers")

_MAX_UNFLUSHED = 256 * 1024

# A gateway method that serves one inference endpoint: (gateway, raw body, headers) -> reply.
InferenceRoute = Callable[[Gateway, bytes, Mapping[str, str]], Awaitable[GatewayReply]]

GATEWAY_KEY_USER = User(username="cortex-claude-gateway-key", name="cortex-claude gateway key")


class GatewayHandlerMixin(web.RequestHandler):
    """Error rendering, body limits, JSON and SSE writing shared by every gateway endpoint."""

    service: GatewayService
    error_dialect = "anthropic"
    _relay_task: asyncio.Task[Any] | None = None  # cancelled when the client hangs up
    _client_left = False
    _in_flight: asyncio.Future[None] | None = None  # the send to the client not yet complete
    _unsent = 0  # bytes written to the response while a send was in flight

    def initialize(self, service: GatewayService) -> None:  # type: ignore[override]
        self.service = service

    # -- errors -------------------------------------------------------------------------------

    def render_gateway_error(self, error: GatewayError) -> None:
        if self._finished:
            return
        if self.error_dialect == "openai":
            status, body = error.status, error.openai_body()
        else:
            status, body = error.anthropic_status, error.anthropic_body()
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        for name, value in error.response_headers().items():
            self.set_header(name, value)
        self.finish(json.dumps(body, allow_nan=False))

    def _handle_request_exception(self, e: BaseException) -> None:
        # Every failure becomes an Anthropic- or OpenAI-shaped error: never tornado's HTML page and
        # never a traceback on the wire.
        if isinstance(e, GatewayError):
            log.debug(
                "%s %s -> %s: %s", self.request.method, self.request.path, e.status, e.message
            )
            self.render_gateway_error(e)
        elif isinstance(e, web.HTTPError):
            message = e.log_message or e.reason or "request refused"
            if e.args[1:]:
                message = message % e.args[1:]
            log.debug(
                "%s %s -> %s: %s", self.request.method, self.request.path, e.status_code, message
            )
            self.render_gateway_error(GatewayError(e.status_code, message))
        else:
            log.error("cortex-claude gateway error on %s", self.request.path, exc_info=e)
            self.render_gateway_error(
                GatewayError(
                    500, "Internal error in the cortex-claude gateway; see the server log."
                )
            )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.render_gateway_error(GatewayError(status_code, self._reason or "error"))

    def check_request_size(self) -> None:
        limit = self.service.config.max_request_bytes
        length = self.request.headers.get("Content-Length")
        if (length and length.isdigit() and int(length) > limit) or len(self.request.body) > limit:
            raise too_large(limit)

    # -- replies ------------------------------------------------------------------------------

    async def send_reply(self, reply: GatewayReply) -> None:
        if isinstance(reply, JsonReply):
            self.set_status(reply.status)
            self.set_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.set_header(name, value)
            self.finish(json.dumps(reply.body, separators=(",", ":"), allow_nan=False))
            return
        await self.send_stream(reply)

    async def send_stream(self, reply: StreamReply) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        for name, value in reply.headers.items():
            self.set_header(name, value)
        frames = reply.frames
        try:
            # Each chunk leaves at once: tornado's IOStream writes to the socket inside flush(),
            # and the chunks of aiohttp's readany already group what arrived together, so the
            # first byte waits for no extra turn of the event loop (docs/benchmarks.md, "The server
            # side's own work").
            async for chunk in frames:
                self.write(chunk)
                self._unsent += len(chunk)
                self._send_now()
                if self._unsent > _MAX_UNFLUSHED and self._in_flight is not None:
                    # A slow client: wait for the socket instead of buffering without bound.
                    await self._in_flight
        finally:
            # Cancelled (the client left: on_connection_close) or done: closing the generator
            # closes the upstream response at once.
            await frames.aclose()  # type: ignore[attr-defined]
        if not self._finished and self.request.connection.stream is not None:
            with contextlib.suppress(StreamClosedError):
                self.finish()

    def _send_now(self) -> None:
        """Hand what ``write`` buffered to the socket: now if no send is in flight, else as soon
        as it completes. One send in flight at a time, because tornado's HTTP1Connection resolves
        only its latest write future; the rest waits in the handler's buffer, counted."""
        if self._in_flight is not None or self._client_left or self._finished:
            return
        self._unsent = 0
        self._in_flight = self.flush()
        self._in_flight.add_done_callback(self._sent)

    def _sent(self, future: asyncio.Future[None]) -> None:
        self._in_flight = None
        # Cancelled with the relay (the client left); an exception: the client had already left.
        if not future.cancelled() and future.exception() is None and self._unsent:
            self._send_now()  # what was written while this send was in flight

    def on_connection_close(self) -> None:
        # Closing the upstream request at once when the client leaves: cancel the task that waits
        # for Cortex or relays its stream, whose ``finally`` closes the upstream response.
        self._client_left = True
        if self._relay_task is not None and not self._relay_task.done():
            self._relay_task.cancel()
        super().on_connection_close()

    async def until_client_leaves(self, work: Awaitable[None]) -> None:
        """``work`` (a call to Cortex and its reply to the client), cancelled if the client hangs
        up: a request still waiting for Cortex's first byte, or relaying its stream, is closed
        upstream then, not when Cortex answers (tests/test_client_disconnects.py).

        What is cancelled is this handler's own task (tornado runs each request in one, and
        expects it may end cancelled): the work needs no task of its own, two turns of the event
        loop fewer per request."""
        task = asyncio.current_task()
        self._relay_task = task
        try:
            await work
        except asyncio.CancelledError:
            if not self._client_left:
                raise  # not ours: the server is stopping
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the cancel was ours, done
            if uncancel is not None:
                uncancel()
        finally:
            self._relay_task = None

    async def serve_inference(self, route: InferenceRoute) -> None:
        """One request for Cortex: within the credit budget, through ``route``, its reply back.

        Every inference endpoint comes through here, so the budget is checked in one place, before
        Cortex is called, and its reservation held until the answer (stream included) is sent."""
        body = self.request_body  # first: raises a refusal deferred until the body was read
        gateway = await self.service.get_gateway()
        async with self.service.budget.admit(len(body)):
            # One task for the call and the reply: the reply starts in the same turn of the event
            # loop as Cortex's answer arrives.
            await self.until_client_leaves(self._answer(route(gateway, body, self.request.headers)))

    async def _answer(self, reply: Awaitable[GatewayReply]) -> None:
        await self.send_reply(await reply)

    def _log(self) -> None:
        # Tornado's hook for the access log (web.RequestHandler._log): Jupyter's line and metric,
        # minus the cost of a line every handler would drop (access_log.py).
        if not metric_only(self):
            super()._log()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, GatewayError | web.HTTPError):
            return  # expected outcomes, logged at debug by _handle_request_exception
        super().log_exception(typ, value, tb)


class JupyterAuthBase(GatewayHandlerMixin, APIHandler):
    """Served if Jupyter's own auth accepts the request, or if it carries the gateway key."""

    gateway_key_authenticated = False

    async def prepare(self) -> None:  # type: ignore[override]
        headers = self.request.headers
        candidate = presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        if candidate is not None and self.service.accepts_key(candidate):
            if not self.check_host():
                raise web.HTTPError(403, "Host not allowed")
            self.current_user = self._jupyter_current_user = GATEWAY_KEY_USER
            self.gateway_key_authenticated = True
            self.check_request_size()
            return
        api_key = headers.get("x-api-key")
        if api_key and "Authorization" not in headers:
            # Anthropic clients given ANTHROPIC_API_KEY send x-api-key, which Jupyter ignores: let
            # Jupyter check it as a token, with nothing weakened.
            headers["Authorization"] = f"token {api_key.strip()}"
        try:
            await super().prepare()
        except web.HTTPError:
            if self.current_user is None:
                raise self._unauthenticated() from None
            raise
        if self.current_user is None:
            raise self._unauthenticated()
        if not self.authorizer.is_authorized(self, self.current_user, "execute", "cortex-claude"):
            raise GatewayError(
                403, "This Jupyter user is not allowed to use the cortex-claude gateway."
            )
        self.check_request_size()

    def _unauthenticated(self) -> GatewayError:
        return GatewayError(
            401,
            "Not authenticated: send the Jupyter token or the cortex-claude gateway key as "
            "'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
        )

    def check_xsrf_cookie(self) -> None:
        if self.gateway_key_authenticated:
            return None  # a header a cross-site page cannot set without CORS preflight
        return super().check_xsrf_cookie()


# -- endpoints --------------------------------------------------------------------------------


class AnthropicMessages(StreamedBody, GatewayHandlerMixin):
    async def post(self) -> None:
        await self.serve_inference(Gateway.anthropic_messages)


class AnthropicCountTokens(StreamedBody, GatewayHandlerMixin):
    async def post(self) -> None:
        body = self.request_body
        gateway = await self.service.get_gateway()
        await self.send_reply(gateway.count_tokens(body))


class AnthropicBase(StreamedBody, GatewayHandlerMixin):
    """``HEAD``/``GET`` on the Anthropic base path: Claude Code versions bundled with other tools
    probe it at start and log a warning on a 404. Also how a kernel checks that a key file's
    gateway is alive and takes that key (kernel/discovery.py), without a call to Cortex."""

    async def head(self) -> None:
        self.set_status(200)
        self.finish()

    async def get(self) -> None:
        await self.send_reply(
            JsonReply(200, {"service": "cortex-claude", "api": "anthropic", "path": "v1/messages"})
        )


class AnthropicModels(StreamedBody, GatewayHandlerMixin):
    async def get(self) -> None:
        gateway = await self.service.get_gateway()
        await self.send_reply(await gateway.anthropic_models())


class OpenAIChatCompletions(StreamedBody, GatewayHandlerMixin):
    error_dialect = "openai"

    async def post(self) -> None:
        await self.serve_inference(Gateway.openai_chat_completions)


class OpenAIResponses(StreamedBody, GatewayHandlerMixin):
    error_dialect = "openai"

    async def post(self) -> None:
        await self.serve_inference(Gateway.openai_responses)


class OpenAIModels(StreamedBody, GatewayHandlerMixin):
    error_dialect = "openai"

    async def get(self) -> None:
        gateway = await self.service.get_gateway()
        await self.send_reply(await gateway.openai_models())


class Health(StreamedBody, GatewayHandlerMixin):
    """The gateway's configuration and the upstream's last outcome; ``?probe=1`` checks now that a
    connection to the account host opens (no request, no login) before answering."""

    async def get(self) -> None:
        await self.service.start()
        if self.get_argument("probe", "") not in ("", "0", "false"):
            await self.service.probe()
        # Under Jupyter, also whether the JupyterLab extension is installed (server/frontend.py).
        frontend = self.settings.get("cortex_claude_frontend", {})
        await self.send_reply(JsonReply(200, {**self.service.health(), **frontend}))


class Usage(StreamedBody, GatewayHandlerMixin):
    """Aggregated usage from the ledger: ``?since=7d&group_by=model,day`` (never text, never keys)."""

    async def get(self) -> None:
        from ..gateway.ledger import parse_group_by, parse_since

        await self.service.start()
        ledger = self.service.ledger
        if ledger is None:
            raise GatewayError(
                404, "The usage ledger is turned off (c.CortexClaude.usage_db_path)."
            )
        try:
            since = parse_since(self.get_argument("since", None))
            group_by = parse_group_by(self.get_arguments("group_by"))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, ledger.flush)
            groups = await loop.run_in_executor(None, ledger.aggregate, since, group_by)
        except ValueError as error:
            raise GatewayError(400, str(error)) from None
        body = {
            "since": since,
            "group_by": group_by,
            "groups": groups,
            "estimated_credits": round(sum(g["estimated_credits"] for g in groups), 6),
            "budget": self.service.budget.status(),
            "note": "Credits are estimates from c.CortexClaude.model_prices, not Snowflake's bill.",
        }
        await self.send_reply(JsonReply(200, body))


from .claude_terminal import ClaudeTerminal  # noqa: E402 - it needs nothing above

ENDPOINTS: list[tuple[str, type[GatewayHandlerMixin]]] = [
    (r"cortex-claude/anthropic/?", AnthropicBase),
    (r"cortex-claude/anthropic/v1/messages", AnthropicMessages),
    (r"cortex-claude/anthropic/v1/messages/count_tokens", AnthropicCountTokens),
    (r"cortex-claude/anthropic/v1/models", AnthropicModels),
    (r"cortex-claude/openai/v1/chat/completions", OpenAIChatCompletions),
    (r"cortex-claude/openai/v1/responses", OpenAIResponses),
    (r"cortex-claude/openai/v1/models", OpenAIModels),
    (r"cortex-claude/health", Health),
    (r"cortex-claude/terminals", ClaudeTerminal),  # type: ignore[list-item] - a mixin
    (r"cortex-claude/usage", Usage),
]


def routes(
    service: GatewayService, base: type[GatewayHandlerMixin]
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The gateway's routes (relative to the server's base_url) on the given auth base."""
    result: list[tuple[str, type[web.RequestHandler], dict[str, Any]]] = []
    for pattern, endpoint in ENDPOINTS:
        handler = type(f"{endpoint.__name__}Handler", (endpoint, base), {})
        result.append((pattern, handler, {"service": service}))
    return result
