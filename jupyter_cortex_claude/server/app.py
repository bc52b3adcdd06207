"""The Jupyter server extension: start the gateway with the server, stop it with the server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join

from .._version import __version__
from ..config import CortexClaude
from ..gateway_key import (
    UnsafeKeyFile,
    load_or_create_persistent_key,
    persistent_key_path,
    read_persistent_key,
)
from ..service import GatewayService
from .frontend import frontend_status
from .handlers import JupyterAuthBase, routes
from .jupyternaut import offer_or_seed_jupyternaut
from .server_log import follow_server_log
from .terminals import configure_terminal_environment


class CortexClaudeApp(ExtensionApp):
    name = "jupyter_cortex_claude"
    description = "Claude Code and other agents on Snowflake Cortex, behind Jupyter's auth."
    version = __version__
    load_other_extensions = True
    classes = [CortexClaude]  # noqa: RUF012 - traitlets' convention

    service: GatewayService

    def initialize_settings(self) -> None:
        self._stop_following_log = follow_server_log(self.serverapp.log, self.serverapp.log_level)
        self.service = GatewayService(CortexClaude(parent=self), logger=self.log)
        self.settings["cortex_claude_service"] = self.service
        self.settings["cortex_claude_frontend"] = frontend_status(self.log)
        # Written now, before the server listens, so a kernel or terminal started at once finds it.
        key_file = Path(self.serverapp.runtime_dir) / f"cortex-claude-gateway-{os.getpid()}.json"
        self.service.key.write(key_file, url=self.gateway_url(self.serverapp))
        self.service.persistent_key = self._persistent_key()

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes(self.service, JupyterAuthBase))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await self.service.start()
        configure_terminal_environment(serverapp, self.service)
        offer_or_seed_jupyternaut(serverapp, self.service)

    async def stop_extension(self) -> None:
        # Loaded only by Jupyter AI's persona manager: looked up, never imported from here.
        persona = sys.modules.get(f"{__package__}.cortex_persona")
        if persona is not None:
            await persona.stop_adapter()
        await self.service.stop()
        self._stop_following_log()

    def _persistent_key(self) -> Any:
        """Minted when Jupyternaut is to use it, else accepted if a previous start minted it."""
        path = persistent_key_path()
        try:
            if self.service.config.jupyternaut_model:
                return load_or_create_persistent_key(path)
            return read_persistent_key(path)
        except UnsafeKeyFile as refused:
            self.log.error("%s", refused)
        except OSError as error:
            self.log.error("cortex-claude: the persistent key %s is unusable: %s", path, error)
        return None

    @staticmethod
    def gateway_url(serverapp: Any) -> str:
        """The Anthropic base URL of this server's gateway, reachable from its own machine."""
        scheme = "https" if serverapp.certfile else "http"
        return url_path_join(
            f"{scheme}://127.0.0.1:{serverapp.port}", serverapp.base_url, "cortex-claude/anthropic"
        )
