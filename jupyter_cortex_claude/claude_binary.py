"""Where the ``claude`` binary is, and the one pinned command that installs it.

Every entry point that starts or reports on Claude Code asks here: the status check
(``GET cortex-claude/health``, ``%cortex_claude status``), ``%%cortex_claude --agent``, the terminal
launcher (``POST cortex-claude/terminals``) and the standalone ``cortex-claude``. A Jupyter server
started from a desktop launcher or a service manager rarely has the user's login PATH, so PATH alone
misses most installs; the places looked at, in order:

1. ``c.CortexClaude.claude_command`` when set to something else than ``claude``, else the
   ``CORTEX_CLAUDE_COMMAND`` environment variable (a kernel has no Jupyter configuration);
2. ``claude`` on PATH (the terminal's PATH when a terminal launches it);
3. ``<c.CortexClaude.claude_install_prefix>/bin/claude``: where our install hint puts it
   (``~/.local/bin/claude`` by default, which is also where Claude Code's native installer links it);
4. ``~/.claude/local/claude``: Claude Code's own per-user npm install (``claude migrate-installer``);
5. ``<npm prefix>/bin/claude`` for an ``npm install -g`` into a prefix set by ``NPM_CONFIG_PREFIX``
   or ``prefix=`` in ``~/.npmrc`` (npm's documented config sources; ``npm prefix -g`` itself would
   cost a Node start per status check).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from .config import CortexClaude

DEFAULT_COMMAND = "claude"
COMMAND_VAR = "CORTEX_CLAUDE_COMMAND"

NODE_HINT = (
    "Claude Code needs Node.js 18 or newer with npm, and npm was not found on this server's PATH. "
    "Install Node.js (https://nodejs.org, or `apt-get install nodejs npm`, or `conda install "
    "nodejs`), then open Claude Code again."
)


def configured_command(config: CortexClaude, environ: Mapping[str, str] | None = None) -> list[str]:
    """The words that start Claude Code as configured, before anything is looked up."""
    environ = os.environ if environ is None else environ
    command = config.claude_command.strip()
    if command in ("", DEFAULT_COMMAND) and environ.get(COMMAND_VAR, "").strip():
        command = environ[COMMAND_VAR].strip()
    return shlex.split(command) or [DEFAULT_COMMAND]


def install_prefix(config: CortexClaude, environ: Mapping[str, str] | None = None) -> Path:
    return _expand(config.claude_install_prefix, environ)


def _expand(path: str, environ: Mapping[str, str] | None) -> Path:
    environ = os.environ if environ is None else environ
    home = environ.get("HOME")
    if home and (path == "~" or path.startswith("~/")):
        return Path(home + path[1:])
    return Path(os.path.expanduser(path))


def _npm_prefixes(environ: Mapping[str, str]) -> list[Path]:
    prefixes = []
    if environ.get("NPM_CONFIG_PREFIX"):
        prefixes.append(_expand(environ["NPM_CONFIG_PREFIX"], environ))
    npmrc = _expand("~/.npmrc", environ)
    try:
        lines = npmrc.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == "prefix" and value.strip():
            prefixes.append(_expand(value.strip().strip("\"'"), environ))
    return prefixes


def candidate_paths(config: CortexClaude, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The install locations looked at after PATH, in order."""
    environ = os.environ if environ is None else environ
    places = [
        install_prefix(config, environ) / "bin" / "claude",
        _expand("~/.local/bin/claude", environ),
        _expand("~/.claude/local/claude", environ),
        *(prefix / "bin" / "claude" for prefix in _npm_prefixes(environ)),
    ]
    return list(dict.fromkeys(places))  # in order, each once


def find_claude(
    config: CortexClaude,
    *,
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str] | None:
    """The words that start Claude Code here, or None when it is not installed.

    ``path`` is the PATH to search (default: ``environ``'s). An explicitly configured command is
    looked up on that PATH only: a configured name that is missing must not silently become some
    other ``claude``.
    """
    environ = os.environ if environ is None else environ
    words = configured_command(config, environ)
    search_path = path if path is not None else environ.get("PATH")
    found = shutil.which(words[0], path=search_path)
    if found:
        return [found if os.sep in words[0] else words[0], *words[1:]]
    if words != [DEFAULT_COMMAND]:
        return None
    for candidate in candidate_paths(config, environ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    return None


def install_command(config: CortexClaude, environ: Mapping[str, str] | None = None) -> str:
    """The pinned, user-local install: no root needed, lands where :func:`find_claude` looks."""
    prefix = str(install_prefix(config, environ))
    return shlex.join(["npm", "install", "-g", "--prefix", prefix, config.claude_code_package])


def install_hint(config: CortexClaude, environ: Mapping[str, str] | None = None) -> str:
    """What to tell a user whose Claude Code was not found."""
    prefix = install_prefix(config, environ)
    return (
        f"Claude Code is not installed. Install it for this user with: "
        f"{install_command(config, environ)} (it goes to {prefix}/bin; add that to PATH, or "
        f"set c.CortexClaude.claude_command / {COMMAND_VAR} to where it is)."
    )
