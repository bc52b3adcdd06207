"""Codex CLI preconfigured for the gateway: a CODEX_HOME of our own, never the user's ``~/.codex``.

Codex reaches a gateway only through a ``[model_providers.X]`` table in ``$CODEX_HOME/config.toml``
(``OPENAI_BASE_URL`` is ignored, and its built-in provider first tries a WebSocket; ``clients.md``,
"Codex CLI"). So the gateway writes a folder with a ``config.toml`` that selects the provider
``cortex`` (our Responses endpoint, ``wire_api = "responses"``), and the environment of launched
processes sets ``CODEX_HOME`` to it (:func:`.claude_env.claude_code_environment`). The provider
reads the gateway key from ``CORTEX_CLAUDE_GATEWAY_KEY`` (its ``env_key``), which that environment
sets too: the key is never written to disk.

One folder per gateway address (``<jupyter data dir>/cortex_claude/codex/<host>-<port>``), because
the address is in the file and two Jupyter servers must not overwrite each other's; Codex keeps its
sessions there, so ``codex resume`` works across restarts of a server on the same port.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from .claude_env import GATEWAY_KEY_VAR, openai_url
from .config import CortexClaude

PROVIDER_ID = "cortex"
# Retries are Codex's own (clients.md: a 429 with Retry-After is waited out, 5xx and a cut stream
# or response.failed are retried): a few, since the gateway already retried Cortex before answering.
REQUEST_MAX_RETRIES = 4
STREAM_MAX_RETRIES = 5


def codex_config_toml(gateway_url: str, model: str) -> str:
    """The ``config.toml`` that points Codex at the gateway's Responses endpoint."""

    def string(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    return "\n".join(
        [
            "# Written by jupyter-cortex-claude for this gateway; rewritten when it starts.",
            "# Your own ~/.codex/config.toml is not used while CODEX_HOME points here.",
            f"model = {string(model)}",
            f"model_provider = {string(PROVIDER_ID)}",
            "",
            f"[model_providers.{PROVIDER_ID}]",
            f"name = {string('Snowflake Cortex (jupyter-cortex-claude)')}",
            # Codex appends /responses to base_url.
            f"base_url = {string(openai_url(gateway_url))}",
            f"env_key = {string(GATEWAY_KEY_VAR)}",
            'wire_api = "responses"',
            f"request_max_retries = {REQUEST_MAX_RETRIES}",
            f"stream_max_retries = {STREAM_MAX_RETRIES}",
            "",
        ]
    )


def default_codex_home(gateway_url: str) -> Path:
    from jupyter_core.paths import jupyter_data_dir

    address = urlsplit(gateway_url)
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{address.hostname}-{address.port or 0}")
    return Path(jupyter_data_dir()) / "cortex_claude" / "codex" / name


def write_codex_home(config: CortexClaude, gateway_url: str, folder: Path | None = None) -> Path:
    """Write (or rewrite) the CODEX_HOME for the gateway at ``gateway_url``; return its path."""
    if folder is None:
        folder = (
            Path(os.path.expanduser(config.codex_home))
            if config.codex_home
            else default_codex_home(gateway_url)
        )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    model = config.terminal_model or config.default_model
    target = folder / "config.toml"
    partial = folder / "config.toml.partial"
    partial.write_text(codex_config_toml(gateway_url, model))
    partial.replace(target)  # a Codex starting right now reads the old file or the new one
    return folder
