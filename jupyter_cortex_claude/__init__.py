"""Claude Code and other coding agents on Snowflake Cortex, from inside Jupyter."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import CortexClaudeApp

    return [{"module": "jupyter_cortex_claude", "app": CortexClaudeApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-cortex-claude"}]
