"""``POST cortex-claude/terminals``: open a terminal with Claude Code (or Codex) started in it.

The JupyterLab extension calls it (launcher tile, palette, the ``%cortex_claude`` output) and then
runs ``terminal:open {name}``. The terminal is an ordinary one from the terminal manager, so it has
the preconfigured environment (:mod:`.terminals`) and the user keeps their shell when Claude Code
exits. ``claude`` is typed into the shell rather than started as the terminal's program for the
same reason, and so it lands in the shell history.

Nothing of the request is typed. The prompt and model come from notebook content (a shared notebook's
``%cortex_claude`` output feeds this endpoint), and a pty turns control characters into actions:
``\x03`` interrupts, ``\r`` runs what was typed so far, whatever the shell quoting. So they go into
the new terminal's own environment (:data:`PROMPT_VAR`, :data:`MODEL_VAR`, terminado's per-terminal
``extra_env``) and the typed line only names those variables; the folder goes to the terminal
manager as its ``cwd``. Fields with control characters are refused with a 400 all the same.

When Claude Code is missing, the terminal shows a one-command install (the pinned package into the
user-local prefix, :mod:`..claude_binary`) typed at the prompt but not run: installing software is
the user's decision, one Enter away.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..claude_binary import NODE_HINT, find_claude, install_command, install_hint, install_prefix
from ..claude_settings import claude_settings_arguments
from ..config import CortexClaude
from ..errors import GatewayError, invalid_request
from ..gateway.replies import JsonReply
from .request_body import StreamedBody

if TYPE_CHECKING:
    from .handlers import GatewayHandlerMixin as _EndpointBase
else:
    # routes() combines this mixin with an auth base that is a GatewayHandlerMixin; importing
    # handlers here would be circular (handlers lists this endpoint in ENDPOINTS).
    _EndpointBase = object

TERMINAL_NAME_PREFIX = "claude_"  # terminal names must match jupyter's websocket route, \w+
PROMPT_VAR = "CORTEX_CLAUDE_TERMINAL_PROMPT"
MODEL_VAR = "CORTEX_CLAUDE_TERMINAL_MODEL"

# One argument or environment string may not exceed 128 KiB on Linux (MAX_ARG_STRLEN); the prompt
# is both. Refused with a 400 rather than failing in the terminal.
MAX_PROMPT_CHARS = 100_000
MAX_FIELD_CHARS = 4096

# C0 controls and DEL. A prompt may hold line breaks and tabs (it is text from a cell, and it is
# never typed); nothing else of them is text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROMPT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class ClaudeLaunch:
    """What to type into a new terminal, with which variables, and what to tell the caller."""

    typed: str  # bytes for the pty: only our own words and variable names, never request text
    env: dict[str, str]  # the new terminal's own variables (the prompt and model)
    command: str  # the command line that starts Claude Code, for people to read or copy
    claude_installed: bool
    install_command: str | None = None
    message: str | None = None


def claude_prompt_argument(prompt: str) -> str:
    """The prompt as Claude Code's positional argument.

    Claude Code dispatches a first argument equal to a subcommand name (``update``, ``install``,
    ``purge``...) as that subcommand even after ``--`` (checked with the pinned 2.1.330: ``claude
    -- mcp`` prints the mcp help). A one-word prompt gets a trailing space, which no subcommand
    name has and which changes nothing for the model.
    """
    return prompt if any(c.isspace() for c in prompt.strip()) else prompt + " "


def handover(
    model_option: str, model: str | None, prompt: str | None
) -> tuple[dict[str, str], list[str], list[str]]:
    """The request's model and prompt as the new terminal's variables.

    Returns the variables, the shell words that expand them (in double quotes: one argument each,
    nothing in them interpreted) and the same arguments written out for people.
    """
    env: dict[str, str] = {}
    variables: list[str] = []
    shown: list[str] = []
    if model:
        env[MODEL_VAR] = model
        variables += [model_option, f'"${MODEL_VAR}"']
        shown += [model_option, model]
    if prompt:
        # After `--` a prompt that starts with a dash stays a prompt, not an option.
        env[PROMPT_VAR] = claude_prompt_argument(prompt)
        variables += ["--", f'"${PROMPT_VAR}"']
        shown += ["--", prompt]
    return env, variables, shown


def plan_claude_launch(
    config: CortexClaude, *, model: str | None, prompt: str | None, path: str | None
) -> ClaudeLaunch:
    env, variables, shown = handover("--model", model, prompt)
    settings = claude_settings_arguments(config)

    claude = find_claude(config, path=path)
    if claude is not None:
        words = shlex.join([*claude, *settings])
        typed = " ".join([words, *variables])
        return ClaudeLaunch(
            typed=typed + "\r",
            env=env,
            command=shlex.join(claude + shown),
            claude_installed=True,
        )

    command = shlex.join(["claude", *shown])
    if shutil.which("npm", path=path) is None:
        return ClaudeLaunch(
            typed=shlex.join(["echo", NODE_HINT]) + "\r",
            env=env,
            command=command,
            claude_installed=False,
            message=NODE_HINT,
        )
    install = install_command(config)
    installed_claude = shlex.join([str(install_prefix(config) / "bin" / "claude"), *settings])
    # `:` is the shell's no-op: a readable note that works in bash, zsh and sh alike (zsh treats
    # `#` as a comment only with INTERACTIVE_COMMENTS).
    note = shlex.join([":", "Claude Code is not installed; press Enter to install it"])
    return ClaudeLaunch(
        typed=f"{note} && {install} && " + " ".join([installed_claude, *variables]),
        env=env,
        command=command,
        claude_installed=False,
        install_command=install,
        message=install_hint(config),
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
    """Codex in a terminal: its CODEX_HOME (:mod:`..codex_home`) goes into the terminal's own
    variables when the terminal's environment does not already carry it (a user's own CODEX_HOME
    is kept there); model and prompt are handed over as for Claude Code."""
    env, variables, shown = handover("-m", model, prompt)
    prefix = [f"CODEX_HOME={shlex.quote(codex_home)}"] if codex_home else []  # for people
    if codex_home:
        env["CODEX_HOME"] = codex_home
    codex = find_codex(config, path)
    if codex is not None:
        return ClaudeLaunch(
            typed=" ".join([shlex.join(codex), *variables]) + "\r",
            env=env,
            command=" ".join([*prefix, shlex.join(codex + shown)]),
            claude_installed=True,
        )
    install_prefix = os.path.expanduser(config.claude_install_prefix)
    command = " ".join([*prefix, shlex.join(["codex", *shown])])
    if shutil.which("npm", path=path) is None:
        hint = NODE_HINT.replace("Claude Code", "Codex")
        return ClaudeLaunch(
            typed=shlex.join(["echo", hint]) + "\r",
            env=env,
            command=command,
            claude_installed=False,
            message=hint,
        )
    install = shlex.join(["npm", "install", "-g", "--prefix", install_prefix, config.codex_package])
    installed = " ".join([shlex.quote(str(Path(install_prefix) / "bin" / "codex")), *variables])
    note = shlex.join([":", "Codex is not installed; press Enter to install it"])
    return ClaudeLaunch(
        typed=f"{note} && {install} && {installed}",
        env=env,
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
    limit = MAX_PROMPT_CHARS if name == "prompt" else MAX_FIELD_CHARS
    if len(value) > limit:
        raise invalid_request(f"`{name}` is longer than {limit} characters.")
    control = (_PROMPT_CONTROL if name == "prompt" else _CONTROL).search(value)
    if control is not None:
        allowed = " (line breaks and tabs are fine)" if name == "prompt" else ""
        raise invalid_request(
            f"`{name}` contains the control character U+{ord(control.group()):04X} at position "
            f"{control.start()}: control characters are refused{allowed}."
        )
    return value


class ClaudeTerminal(StreamedBody, _EndpointBase):
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
            body = json.loads(self.request_body or b"{}")
        except ValueError:
            raise invalid_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object.")
        model = _optional_string(body, "model")
        prompt = _optional_string(body, "prompt")
        cwd = resolve_terminal_cwd(
            self.settings.get("server_root_dir") or os.getcwd(), _optional_string(body, "cwd")
        )
        extra_env = manager.extra_env or {}
        agent = _optional_string(body, "agent") or "claude"
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
        # terminado >= 0.15 merges a per-terminal extra_env over the manager's (pyproject.toml).
        manager.create(name=name, cwd=str(cwd), extra_env=launch.env)
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
