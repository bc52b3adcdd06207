"""Preconfigured terminals: every terminal this Jupyter server opens can run ``claude`` (and
``codex``, through the CODEX_HOME of :mod:`..codex_home`) at once.

The variables go into ``web_app.settings["terminal_manager"].extra_env`` (terminado's
``TermManager.extra_env``, merged into each new terminal's environment, where a ``None`` value
removes a variable). It is set in the extension's start hook, not at load time: extensions load
alphabetically, and jupyter_server_terminals may create its manager after us.

Terminado starts every terminal from ``os.environ`` of the server. Two consequences:
- a value the user already has there (``ANTHROPIC_MODEL`` in their profile) must win, so we only
  add what is missing;
- the server's Snowflake secrets (``SNOWFLAKE_TOKEN`` …, ``c.CortexClaude.terminal_hidden_env``)
  would reach every shell and so every agent; they are removed. The gateway already holds them,
  and the terminal's Claude Code needs only the gateway key, which opens ``cortex-claude/`` alone.
Both are decided by :func:`..claude_env.plan_agent_environment`, as for every agent we launch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from jupyter_server.utils import url_path_join

from ..claude_env import SERVER_EXTENSION_MODE, plan_agent_environment
from ..codex_home import write_codex_home

log = logging.getLogger("jupyter_cortex_claude.terminals")

# Binding to every interface (or to a name) still accepts loopback connections; only a server
# bound to one specific address must be reached at that address.
_LOOPBACK_REACHABLE = {"", "0.0.0.0", "*", "::", "localhost", "127.0.0.1", "::1"}


def local_gateway_url(serverapp: Any) -> str:
    """The gateway root (``.../cortex-claude``) as a process on the server's machine reaches it."""
    scheme = "https" if serverapp.certfile else "http"
    ip = serverapp.ip or ""
    host = "127.0.0.1" if ip in _LOOPBACK_REACHABLE else ip
    if ":" in host:
        host = f"[{host}]"
    return url_path_join(f"{scheme}://{host}:{serverapp.port}", serverapp.base_url, "cortex-claude")


def configure_terminal_environment(
    serverapp: Any, service: Any, environ: Mapping[str, str] | None = None
) -> dict[str, str | None] | None:
    """Add the Claude Code variables to the terminal manager's ``extra_env``.

    Returns the changes made, or None when this server has no terminals (disabled, or
    jupyter_server_terminals not installed) or ``c.CortexClaude.configure_terminals`` is off.
    """
    config = service.config
    manager = serverapp.web_app.settings.get("terminal_manager")
    if manager is None or not config.configure_terminals:
        log.debug("cortex-claude: no terminal manager to configure")
        return None
    environ = os.environ if environ is None else environ
    gateway_url = local_gateway_url(serverapp)
    # Codex reads its provider from a config.toml: written here, for this server's address.
    service.codex_home = str(write_codex_home(config, gateway_url))
    explicit: dict[str, str | None] = dict(manager.extra_env or {})
    plan = plan_agent_environment(
        config,
        gateway_url=gateway_url,
        key=service.key.value,
        mode=SERVER_EXTENSION_MODE,
        catalogue=service.catalogue,
        codex_home=service.codex_home,
        inherited=environ,
        explicit=explicit,
        own_connection=False,  # a user's own ANTHROPIC_BASE_URL in their profile wins
    )
    manager.extra_env = {**explicit, **plan.changes}
    if plan.kept:
        log.info("cortex-claude: terminals keep the user's own %s", ", ".join(sorted(plan.kept)))
    if plan.hidden:
        log.info("cortex-claude: terminals do not inherit the server's %s", ", ".join(plan.hidden))
    return plan.changes
