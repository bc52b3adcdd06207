"""The gateway without Jupyter: the same handlers in a bare tornado application.

Used by the ``cortex-claude`` command (:mod:`.cli`) and by the in-kernel gateway, which runs where
no server extension can load (Snowflake Notebooks, VS Code). Only the gateway key authorizes a
request here: there is no Jupyter login to fall back on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .claude_env import anthropic_url, openai_url
from .errors import GatewayError
from .gateway_key import presented_key
from .server.handlers import GatewayHandlerMixin, routes

if TYPE_CHECKING:
    from .service import GatewayService

log = logging.getLogger("jupyter_cortex_claude.standalone")

# Seconds a connection may sit without a request (tornado's default is an hour). Clients that keep
# connections alive drop idle ones much sooner (Node's undici after 4 s), so none is cut short.
IDLE_CONNECTION_TIMEOUT = 120.0


class KeyOnlyAuthBase(GatewayHandlerMixin):
    """Served only to requests that carry the gateway key (``Bearer`` or ``x-api-key``)."""

    gateway_key_authenticated = True  # nothing else can authenticate here

    def prepare(self) -> None:
        headers = self.request.headers
        candidate = presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        if not self.service.key.matches(candidate):
            raise GatewayError(
                401,
                "Not authenticated: send the cortex-claude gateway key (printed by `cortex-claude "
                "serve`) as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
            )
        self.check_request_size()


class _NotFound(KeyOnlyAuthBase):
    def prepare(self) -> None:
        raise GatewayError(404, f"No cortex-claude endpoint at {self.request.path}.")


def make_app(service: GatewayService) -> web.Application:
    """A tornado application serving the gateway under ``/cortex-claude/...``."""
    handlers: list[Any] = [
        ("/" + pattern, handler, kwargs)
        for pattern, handler, kwargs in routes(service, KeyOnlyAuthBase)
    ]
    return web.Application(
        handlers,
        default_handler_class=_NotFound,
        default_handler_args={"service": service},
        cortex_claude_service=service,
    )


@dataclass
class RunningGatewayServer:
    """A listening gateway: ``url`` is the origin, ``gateway_url`` the ``/cortex-claude`` root."""

    url: str
    port: int
    service: GatewayService
    _server: HTTPServer

    @property
    def gateway_url(self) -> str:
        return self.url + "/cortex-claude"

    @property
    def anthropic_url(self) -> str:
        return anthropic_url(self.gateway_url)

    @property
    def openai_url(self) -> str:
        return openai_url(self.gateway_url)

    @property
    def key(self) -> str:
        return self.service.key.value

    async def stop(self, *, stop_service: bool = True) -> None:
        self._server.stop()
        await self._server.close_all_connections()
        if stop_service:
            await self.service.stop()


async def start_gateway_server(
    service: GatewayService, host: str = "127.0.0.1", port: int = 0
) -> RunningGatewayServer:
    """Start the service and serve it on ``host:port`` (0: a free port) in the running loop."""
    await service.start()
    sockets = bind_sockets(port, host)
    config = service.config
    server = HTTPServer(
        make_app(service),
        xheaders=False,
        # The gateway routes set their own body limit and timeout per request
        # (server/request_body.py); these bound everything else, such as the 404 route.
        max_body_size=_body_limit(service),
        body_timeout=config.request_body_timeout,
        # Also the wait for a request's headers: a connection that sends none is closed.
        idle_connection_timeout=IDLE_CONNECTION_TIMEOUT,
    )
    server.add_sockets(sockets)
    bound_port = sockets[0].getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    running = RunningGatewayServer(
        url=f"http://{url_host}:{bound_port}", port=bound_port, service=service, _server=server
    )
    log.debug("cortex-claude gateway listening on %s", running.url)
    return running


def _body_limit(service: GatewayService) -> int:
    # Leave room above Cortex's limit so the handler answers a clear 413 instead of tornado
    # closing the connection.
    return int(service.config.max_request_bytes) + 1024 * 1024
