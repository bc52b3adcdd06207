"""Claude Code and other coding agents on Snowflake Cortex, from inside Jupyter."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "chat"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (the server extension does) must not import ipywidgets.
    if name == "chat":
        from .kernel.chat_widget import chat

        return chat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import CortexClaudeApp

    return [{"module": "jupyter_cortex_claude", "app": CortexClaudeApp}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_cortex_claude``: registers ``%cortex_claude`` / ``%%cortex_claude``."""
    from .kernel.magics import load_ipython_extension as load_magics

    load_magics(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-cortex-claude"}]
