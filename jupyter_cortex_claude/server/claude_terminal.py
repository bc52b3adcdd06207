"""``POST cortex-claude/terminals``: open a terminal with Claude Code (or Codex) started in it.

The JupyterLab extension calls it (launcher tile, palette, the ``%cortex_claude`` output) and then
runs ``terminal:open {name}``. The terminal is an ordinary one from the terminal manager, so it has
the preconfigured environment (:mod:`.terminals`) and the user keeps their shell when Claude Code
exits. ``claude`` is typed into the shell rather than started as the terminal's program for the
same reason, and so it lands in the shell history.

When Claude Code is missing, the terminal shows a one-command install (npm into the user-local
prefix ``c.CortexClaude.claude_install_prefix``, no root needed) typed at the prompt but not run:
installing software is the user's decision, one Enter away.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import CortexClaude
from ..errors import GatewayError, invalid_request
from ..gateway.replies import JsonReply

if TYPE_CHECKING:
    from .handlers import GatewayHandlerMixin as _EndpointBase
else:
    # routes() combines this mixin with an auth base that is a GatewayHandlerMixin; importing
    # handlers here would be circular (handlers lists this endpoint in ENDPOINTS).
    _EndpointBase = object

TERMINAL_NAME_PREFIX = "claude_"  # terminal names must match jupyter's websocket route, \w+
NODE_HINT = (
    "Claude Code needs Node.js 18 or newer with npm, and npm was not found on this server's PATH. "
    "Install Node.js (https://nodejs.org, or `apt-get install nodejs npm`, or `conda install "
    "nodejs`), then open Claude Code again."
)


@dataclass(frozen=True)
class ClaudeLaunch:
    """What to type into a new terminal, and what to tell the caller."""

    typed: str  # bytes for the pty, with "\r" where Enter is pressed
    command: str  # the command line that starts Claude Code, for people to read or copy
    claude_installed: bool
    install_command: str | None = None
    message: str | None = None


def claude_arguments(model: str | None, prompt: str | None) -> list[str]:
    words: list[str] = []
    if model:
        words += ["--model", model]
    if prompt:
        words.append(prompt)
    return words


def find_claude(config: CortexClaude, path: str | None) -> list[str] | None:
    """The words that start Claude Code on this PATH (or in the install prefix), if it exists."""
    words = shlex.split(config.claude_command) or ["claude"]
    if shutil.which(words[0], path=path):
        return words
    installed = Path(os.path.expanduser(config.claude_install_prefix)) / "bin" / "claude"
    if words == ["claude"] and os.access(installed, os.X_OK):
        return [str(installed)]
    return None


def plan_claude_launch(
    config: CortexClaude, *, model: str | None, prompt: str | None, path: str | None
) -> ClaudeLaunch:
    arguments = claude_arguments(model, prompt)
    claude = find_claude(config, path)
    if claude is not None:
        command = shlex.join(claude + arguments)
        return ClaudeLaunch(typed=command + "\r", command=command, claude_installed=True)

    prefix = os.path.expanduser(config.claude_install_prefix)
    installed_claude = shlex.join([str(Path(prefix) / "bin" / "claude"), *arguments])
    command = shlex.join(["claude", *arguments])
    if shutil.which("npm", path=path) is None:
        return ClaudeLaunch(
            typed=shlex.join(["echo", NODE_HINT]) + "\r",
            command=command,
            claude_installed=False,
            message=NODE_HINT,
        )
    install = shlex.join(["npm", "install", "-g", "--prefix", prefix, config.claude_code_package])
    message = (
        f"Claude Code is not installed. Install it for this user with: {install} "
        f"(it goes to {prefix}/bin; add that to PATH)."
    )
    # `:` is the shell's no-op: a readable note that works in bash, zsh and sh alike (zsh treats
    # `#` as a comment only with INTERACTIVE_COMMENTS).
    note = shlex.join([":", "Claude Code is not installed; press Enter to install it"])
    return ClaudeLaunch(
        typed=f"{note} && {install} && {installed_claude}",
        command=command,
        claude_installed=False,
        install_command=install,
        message=message,
    )


def find_codex(config: CortexClaude, path: str | None) -> list[str] | None:
    """The words that start the Codex CLI on this PATH (or in the install prefix), if it exists."""
    words = shlex.split(config.codex_command) or ["codex"]
    if shutil.which(words[0], path=path):
        return words
    installed = Path(os.path.expanduser(config.claude_install_prefix)) / "bin" / "codex"
    if words == ["codex"] and os.access(installed, os.X_OK):
        return [str(installed)]
    return None


def plan_codex_launch(
    config: CortexClaude,
    *,
    model: str | None,
    prompt: str | None,
    path: str | None,
    codex_home: str | None,
) -> ClaudeLaunch:
    """Codex in a terminal: its CODEX_HOME (:mod:`..codex_home`) is given on the command line when
    the terminal's environment does not already carry it (a user's own CODEX_HOME is kept there)."""
    arguments = (["-m", model] if model else []) + ([prompt] if prompt else [])
    prefix = [f"CODEX_HOME={shlex.quote(codex_home)}"] if codex_home else []
    codex = find_codex(config, path)
    if codex is not None:
        command = " ".join([*prefix, shlex.join(codex + arguments)])
        return ClaudeLaunch(typed=command + "\r", command=command, claude_installed=True)
    install_prefix = os.path.expanduser(config.claude_install_prefix)
    command = " ".join([*prefix, shlex.join(["codex", *arguments])])
    if shutil.which("npm", path=path) is None:
        hint = NODE_HINT.replace("Claude Code", "Codex")
        return ClaudeLaunch(
            typed=shlex.join(["echo", hint]) + "\r",
            command=command,
            claude_installed=False,
            message=hint,
        )
    install = shlex.join(["npm", "install", "-g", "--prefix", install_prefix, config.codex_package])
    installed = " ".join(
        [*prefix, shlex.join([str(Path(install_prefix) / "bin" / "codex"), *arguments])]
    )
    note = shlex.join([":", "Codex is not installed; press Enter to install it"])
    return ClaudeLaunch(
        typed=f"{note} && {install} && {installed}",
        command=command,
        claude_installed=False,
        install_command=install,
        message=f"Codex is not installed. Install it for this user with: {install} "
        f"(it goes to {install_prefix}/bin; add that to PATH).",
    )


def resolve_terminal_cwd(root_dir: str, requested: str | None) -> Path:
    """``requested`` (relative to the server root, or absolute) if it is a folder inside the root."""
    root = Path(root_dir).expanduser().resolve()
    if not requested or requested in (".", "/"):
        return root
    candidate = Path(requested)
    if not candidate.is_absolute():
        candidate = root / requested
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise invalid_request(f"cwd {requested!r} is outside the Jupyter server's root directory.")
    if not resolved.is_dir():
        raise invalid_request(f"cwd {requested!r} is not a folder on this server.")
    return resolved


def fresh_terminal_name(manager: Any) -> str:
    """A name no terminal has: reusing one replaces that terminal and orphans its process."""
    number = 1
    while f"{TERMINAL_NAME_PREFIX}{number}" in manager.terminals:
        number += 1
    return f"{TERMINAL_NAME_PREFIX}{number}"


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid_request(f"`{name}` must be a string or null.")
    return value


class ClaudeTerminal(_EndpointBase):
    """``POST {"cwd", "model", "prompt", "agent"}`` → ``{"name", "command", "claude_installed",
    ...}``; ``agent`` is ``claude`` (the default) or ``codex``."""

    async def post(self) -> None:
        # A terminal is a shell: it needs a Jupyter login allowed to use terminals. The gateway
        # key is handed to agents and SDKs and must never open one.
        if getattr(self, "gateway_key_authenticated", True):
            raise GatewayError(
                403,
                "Opening a terminal needs a Jupyter login; the gateway key opens only the model "
                "endpoints.",
            )
        manager = self.settings.get("terminal_manager")
        if manager is None:
            raise GatewayError(
                404,
                "This Jupyter server has no terminals (disabled, or jupyter_server_terminals "
                "is not installed).",
            )
        authorizer = getattr(self, "authorizer", None)
        if authorizer is not None and not authorizer.is_authorized(
            self, self.current_user, "write", "terminals"
        ):
            raise GatewayError(403, "This Jupyter user is not allowed to open terminals.")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise invalid_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object.")
        cwd = resolve_terminal_cwd(
            self.settings.get("server_root_dir") or os.getcwd(), _optional_string(body, "cwd")
        )
        extra_env = manager.extra_env or {}
        agent = _optional_string(body, "agent") or "claude"
        model, prompt = _optional_string(body, "model"), _optional_string(body, "prompt")
        path = extra_env.get("PATH") or os.environ.get("PATH")
        if agent == "codex":
            codex_home = self.service.codex_home
            launch = plan_codex_launch(
                self.service.config,
                model=model,
                prompt=prompt,
                path=path,
                codex_home=None if extra_env.get("CODEX_HOME") == codex_home else codex_home,
            )
        elif agent == "claude":
            launch = plan_claude_launch(self.service.config, model=model, prompt=prompt, path=path)
        else:
            raise invalid_request("`agent` must be `claude` or `codex`.")
        name = fresh_terminal_name(manager)
        manager.create(name=name, cwd=str(cwd))
        manager.get_terminal(name).ptyproc.write(launch.typed)
        await self.send_reply(
            JsonReply(
                200,
                {
                    "name": name,
                    "agent": agent,
                    "command": launch.command,
                    "claude_installed": launch.claude_installed,
                    "install_command": launch.install_command,
                    "message": launch.message,
                },
            )
        )
