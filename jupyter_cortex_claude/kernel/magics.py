"""The ``%cortex_claude`` and ``%%cortex_claude`` magics.

Line mode: ``%cortex_claude [open] [--model M] [--cwd DIR] [PROMPT]`` opens Claude Code in a
terminal, ``%cortex_claude codex ...`` the Codex CLI; ``status``, ``models``, ``usage`` and ``help``. Cell mode (the cell is a prompt) and
``usage`` live in :mod:`.cell_chat` and :mod:`.usage_view`, imported only when used, so loading the
extension costs almost nothing in every kernel.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

SUBCOMMANDS = ("open", "codex", "status", "models", "usage", "help")
HTTP_TIMEOUT = 15.0

HELP = """\
%cortex_claude                        open Claude Code in a terminal in this notebook's folder
%cortex_claude [open] [--model M] [--cwd DIR] [PROMPT]
                                      ... with a model, another folder, an initial prompt
%cortex_claude codex [--model M] [--cwd DIR] [PROMPT]
                                      open the Codex CLI instead, on the same gateway
%cortex_claude status                 connection, identity, models, gateway URL and mode
%cortex_claude models                 the models this account can use
%cortex_claude usage [--since 7d]     tokens, estimated cost and budget recorded by the gateway
%cortex_claude usage --snowflake [--by-user]
                                      ... beside Snowflake's own account (by user: the team's)
%cortex_claude help                   this text

%%cortex_claude [--model M] [--new] ...   (cell magic) the cell is a prompt; the answer streams
                                      below. `%%cortex_claude --help` lists its options.

Modes: "server-extension" (the Jupyter server runs the gateway; terminals are preconfigured),
"in-kernel" (no extension here: this kernel runs the gateway), "standalone" (`cortex-claude`)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n\n{HELP}")


def _open_parser() -> _Parser:
    parser = _Parser(prog="%cortex_claude open", add_help=False)
    parser.add_argument("--model", help="model Claude Code starts with")
    parser.add_argument("--cwd", help="folder, relative to the notebook's folder")
    parser.add_argument("prompt", nargs="*", help="initial prompt")
    return parser


def split_line(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        # An unquoted apostrophe ("what's wrong") must not make the magic unusable.
        return line.split()


@magics_class
class CortexClaudeMagics(Magics):
    @line_cell_magic
    def cortex_claude(self, line: str, cell: str | None = None) -> None:
        if cell is not None:
            try:
                from .cell_chat import run_cell
            except ImportError:
                print("%%cortex_claude (chat in a cell) is not available yet in this version.")
                return
            run_cell(line, cell, self.shell)
            return
        words = split_line(line)
        command = words[0] if words and words[0] in SUBCOMMANDS else "open"
        rest = words[1:] if words and words[0] == command else words
        if command == "help" or rest[:1] in (["-h"], ["--help"]):
            print(HELP)
        elif command == "status":
            show_status()
        elif command == "models":
            show_models()
        elif command == "usage":
            try:
                from .usage_view import show_usage
            except ImportError:
                print("%cortex_claude usage is not available yet in this version.")
                return
            show_usage(shlex.join(rest), self.shell)
        elif command == "codex":
            open_claude(rest, agent="codex")
        else:
            open_claude(rest)


def _endpoint() -> Any:
    from .discovery import GatewayNotFound, find_gateway

    try:
        return find_gateway(start_in_kernel=True)
    except GatewayNotFound as error:
        raise UsageError(str(error)) from None


def open_claude(words: list[str], agent: str = "claude") -> None:
    from IPython.display import display

    from .open_claude import OpenRequest, open_terminal_bundle, resolve_folder

    args = _open_parser().parse_args(words)
    folder = resolve_folder(args.cwd)
    if not folder.is_dir():
        raise UsageError(f"--cwd {args.cwd!r}: {folder} is not a folder.")
    request = OpenRequest(
        folder=folder, model=args.model, prompt=" ".join(args.prompt) or None, agent=agent
    )
    display(open_terminal_bundle(request, _endpoint()), raw=True)


# -- status and models ---------------------------------------------------------------------------


def _get_json(endpoint: Any, url: str) -> dict[str, Any]:
    import httpx

    response = httpx.get(
        url, headers={"Authorization": f"Bearer {endpoint.key}"}, timeout=HTTP_TIMEOUT
    )
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        raise RuntimeError(f"{url} answered {response.status_code}: {message or response.text}")
    return body


def _model_names(endpoint: Any) -> list[str]:
    body = _get_json(endpoint, endpoint.anthropic_url.rstrip("/") + "/v1/models")
    return [str(item.get("id")) for item in body.get("data", []) if isinstance(item, dict)]


def status_text(endpoint: Any, health: dict[str, Any], models: list[str] | None) -> str:
    """A plain-text report: never a key or a token, only where and as whom."""
    state = health.get("status", "?")
    lines = [f"cortex-claude: {state} ({endpoint.mode} gateway)"]
    if health.get("notice"):
        lines.append(f"  {health['notice']}")
    if health.get("error"):
        lines.append(f"  error:         {health['error']}")
    rows = [
        ("gateway", endpoint.gateway_url),
        ("mode", endpoint.mode),
        ("account", health.get("account")),
        ("host", health.get("account_host")),
        ("user", health.get("user")),
        ("role", health.get("role")),
        ("auth", health.get("auth_method")),
        ("credential", _describe_credential(health.get("credential"))),
        ("configured by", health.get("config_source")),
        ("default model", health.get("default_model")),
        ("budget", _describe_budget(health.get("budget"))),
        ("models", ", ".join(models) if models else None),
        ("version", health.get("version")),
    ]
    lines += [f"  {name + ':':<15}{value}" for name, value in rows if value]
    lines += _upstream_lines(health.get("upstream"))
    if health.get("claude_installed") is False and health.get("claude_install_hint"):
        lines.append(f"  Claude Code:   {health['claude_install_hint']}")
    if health.get("labextension_installed") is False and health.get("labextension_hint"):
        lines.append(f"  JupyterLab:    {health['labextension_hint']}")
    return "\n".join(lines)


def _describe_budget(budget: Any) -> str | None:
    if not isinstance(budget, dict):
        return None
    from .usage_view import budget_line

    return budget_line(budget)


def _upstream_lines(upstream: Any) -> list[str]:
    """What the gateway last heard from Snowflake: the last call's outcome and the last probe's."""
    if not isinstance(upstream, dict):
        return []
    lines = []
    for label, key in (("last request", "last_call"), ("last check", "probe")):
        outcome = upstream.get(key)
        if not isinstance(outcome, dict):
            continue
        text = f"{outcome.get('state')} at {outcome.get('at')}"
        if outcome.get("state") != "ok" and outcome.get("reason"):
            text += f": {outcome['reason']}"
        lines.append(f"  {label + ':':<15}{text}")
    return lines


def _describe_credential(credential: Any) -> str | None:
    if not isinstance(credential, dict):
        return str(credential) if credential else None
    text = str(credential.get("kind") or "credential")
    if credential.get("expires_at"):
        text += f", expires {credential['expires_at']}"
    return text


def show_status() -> None:
    endpoint = _endpoint()
    try:
        # probe=1: check the way to Snowflake now (a connection, no request, no login).
        health = _get_json(endpoint, endpoint.gateway_url + "/health?probe=1")
    except Exception as error:
        print(
            f"cortex-claude: the {endpoint.mode} gateway at {endpoint.gateway_url} did not answer: "
            f"{error}",
            file=sys.stderr,
        )
        return
    try:
        models: list[str] | None = _model_names(endpoint)
    except Exception:
        models = None  # health already says why, when the account is not configured
    print(status_text(endpoint, health, models))


def show_models() -> None:
    endpoint = _endpoint()
    try:
        names = _model_names(endpoint)
    except Exception as error:
        print(f"cortex-claude: could not list models: {error}", file=sys.stderr)
        return
    print(models_text(names))


def models_text(names: list[str]) -> str:
    """The account's models, split by what they can do: Claude Code needs tool use."""
    from ..snowflake.models import ModelCatalogue

    catalogue = ModelCatalogue()
    agents = [name for name in names if catalogue.get(name).supports_tools]
    chat_only = [name for name in names if name not in agents]
    lines = ["Models that can drive Claude Code (tool use; --model or /model in Claude Code):"]
    lines += [f"  {name}" for name in agents] or ["  (none on this account)"]
    if chat_only:
        lines.append(
            "Chat only (no tool use on Cortex, so Claude Code fails with them; fine for "
            "%%cortex_claude cells and chats without tools):"
        )
        lines += [f"  {name}" for name in chat_only]
    return "\n".join(lines)


def register_magics(shell: Any) -> None:
    shell.register_magics(CortexClaudeMagics)


def load_ipython_extension(shell: Any) -> None:
    register_magics(shell)
