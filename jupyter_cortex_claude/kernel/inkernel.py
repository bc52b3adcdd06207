"""The gateway inside the kernel, for places where the server extension cannot load.

Snowflake Notebooks, plain Jupyter servers without our extension and VS Code give the user a kernel
but no server they control (jupyter-notes.md, "Snowflake notebooks"). There the kernel serves the
same :class:`GatewayService` and handlers itself, on 127.0.0.1 with a random key, from a background
thread with its own event loop: the kernel's own loop is busy running cells, and a cell that waits
for an answer must not block the server that produces it.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import threading
from concurrent.futures import Future
from typing import Any

from ..claude_env import IN_KERNEL_MODE
from .endpoint import GatewayEndpoint

log = logging.getLogger("jupyter_cortex_claude.kernel")

MODE = IN_KERNEL_MODE
START_TIMEOUT = 60.0


class InKernelGateway:
    """A GatewayService served on a private loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self._run, name="cortex-claude-in-kernel-gateway", daemon=True
        )
        self.service: Any = None
        self.server: Any = None
        self.endpoint: Any = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> Any:
        self.thread.start()
        future: Future[Any] = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        try:
            self.endpoint = future.result(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    async def _start(self) -> Any:
        from ..config import CortexClaude
        from ..service import GatewayService
        from ..standalone import start_gateway_server

        self.service = GatewayService(CortexClaude())
        await self.service.start()
        server = start_gateway_server(self.service, host="127.0.0.1", port=0)
        if inspect.isawaitable(server):
            server = await server
        self.server = server
        return GatewayEndpoint(
            anthropic_url=server.anthropic_url,
            openai_url=server.openai_url,
            key=self.service.key.value,
            mode=MODE,
            server_url=server.url,
        )

    async def _stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            stopped = server.stop()  # also stops the service
            if inspect.isawaitable(stopped):
                await stopped
        elif self.service is not None:
            await self.service.stop()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        except Exception:
            log.debug("in-kernel gateway did not stop cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and self.endpoint is not None


_lock = threading.Lock()
_gateway: InKernelGateway | None = None


def start_in_kernel_gateway() -> GatewayEndpoint:
    """Starts the in-kernel gateway once per kernel; returns its ``GatewayEndpoint``."""
    global _gateway
    with _lock:
        if _gateway is not None and _gateway.running:
            endpoint: GatewayEndpoint = _gateway.endpoint
            return endpoint
        gateway = InKernelGateway()
        endpoint = gateway.start()
        _gateway = gateway
        atexit.register(gateway.stop)
        return endpoint


def in_kernel_gateway() -> InKernelGateway | None:
    """The running in-kernel gateway, if this kernel started one (its service has health())."""
    return _gateway if _gateway is not None and _gateway.running else None


def stop_in_kernel_gateway() -> None:
    global _gateway
    with _lock:
        if _gateway is not None:
            _gateway.stop()
            _gateway = None
