"""``%cortex_claude [open]`` and ``%cortex_claude codex``: Claude Code or Codex in a terminal, in
the notebook's folder.

A kernel cannot open a JupyterLab tab. It displays a bundle of
:data:`OPEN_TERMINAL_MIME_TYPE`; our JupyterLab extension renders it by calling
``POST cortex-claude/terminals`` and ``terminal:open``. Frontends without the extension (or an
untrusted notebook, whose unsafe renderers JupyterLab skips) show the ``text/html`` fallback: a
link to Jupyter and the exact command, or ``text/plain`` with the command.

The bundle is offered only when a server extension serves the gateway: in-kernel or standalone
mode has no ``cortex-claude/terminals`` endpoint, and terminals there are not preconfigured, so
the command given is ``cortex-claude``, which brings its own gateway.
"""

from __future__ import annotations

import html
import os
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .discovery import IN_KERNEL, SERVER_EXTENSION, GatewayEndpoint, jupyter_server_info

OPEN_TERMINAL_MIME_TYPE = "application/vnd.jupyter-cortex-claude.open-terminal+json"


@dataclass(frozen=True)
class OpenRequest:
    folder: Path  # absolute
    model: str | None
    prompt: str | None
    agent: str = "claude"  # or "codex"


AGENT_TITLES = {"claude": "Claude Code", "codex": "Codex"}


def resolve_folder(cwd: str | None, base: str | None = None) -> Path:
    """``--cwd`` relative to the notebook's folder (the kernel's working directory)."""
    start = Path(base or os.getcwd())
    if not cwd:
        return start.resolve()
    return (start / os.path.expanduser(cwd)).resolve()


def server_relative(folder: Path, root_dir: str | None) -> str:
    """The folder as the terminals endpoint wants it: relative to the server root when inside."""
    if root_dir:
        root = Path(root_dir).expanduser().resolve()
        if folder == root:
            return ""
        if root in folder.parents:
            return folder.relative_to(root).as_posix()
    return str(folder)


def shell_command(request: OpenRequest, mode: str) -> str:
    """What a person would type in a terminal to get the same thing."""
    codex = request.agent == "codex"
    if mode == SERVER_EXTENSION:
        words = ["codex"] if codex else ["claude"]
        if request.model:
            words += ["-m" if codex else "--model", request.model]
        if request.prompt:
            words.append(request.prompt)
    else:
        words = ["cortex-claude", "codex"] if codex else ["cortex-claude"]
        if request.model:
            words += ["--model", request.model]
        if request.prompt:
            words += ["--", request.prompt]
    return f"cd {shlex.quote(str(request.folder))} && {shlex.join(words)}"


def open_terminal_bundle(request: OpenRequest, endpoint: GatewayEndpoint) -> dict[str, Any]:
    """The display bundle: our MIME type (server extension only), HTML and plain-text fallbacks."""
    command = shell_command(request, endpoint.mode)
    info = jupyter_server_info() or {}
    # Only a Jupyter server is worth a link: in-kernel and standalone gateways live on the
    # kernel's own 127.0.0.1 port, which is no page to open (and, in a Snowflake Notebook, not
    # even reachable from the user's browser).
    jupyter_url = info.get("url") or (
        endpoint.server_url if endpoint.mode == SERVER_EXTENSION else None
    )
    if endpoint.mode == IN_KERNEL:
        jupyter_url = None  # Snowflake Notebooks, VS Code: whatever server runs the kernel, its
        # URL as the kernel sees it is not one the user's browser opens
    bundle: dict[str, Any] = {}
    if endpoint.mode == SERVER_EXTENSION:
        bundle[OPEN_TERMINAL_MIME_TYPE] = {
            "cwd": server_relative(request.folder, info.get("root_dir")),
            "model": request.model,
            "prompt": request.prompt,
            "agent": request.agent,
            # The renderer opens one terminal per nonce, however often the output is re-rendered.
            "nonce": uuid.uuid4().hex,
            "created_at": time.time(),
        }
        where = "in a Jupyter terminal (File → New → Terminal)"
        note = "Jupyter's terminals are already set up for the cortex-claude gateway."
    else:
        where = "in a terminal"
        note = (
            f"This kernel uses the {endpoint.mode} gateway, which terminals do not share; "
            "`cortex-claude` starts its own gateway with your Snowflake settings."
        )
    link = (
        f' (<a href="{html.escape(jupyter_url)}" target="_blank" rel="noopener">open Jupyter</a>)'
        if jupyter_url and jupyter_url.startswith(("http://", "https://"))
        else ""
    )
    bundle["text/html"] = (
        '<div class="jp-CortexClaude-fallback">'
        f"<p>To start {AGENT_TITLES[request.agent]} on Cortex, run this {html.escape(where)}{link}:</p>"
        f"<pre>{html.escape(command)}</pre>"
        f"<p><small>{html.escape(note)}</small></p></div>"
    )
    title = AGENT_TITLES[request.agent]
    bundle["text/plain"] = f"Run {where} to start {title} on Cortex:\n  {command}"
    return bundle
