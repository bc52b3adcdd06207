"""Opt-in Claude Code permission rules that keep its file tools away from this machine's secrets.

With ``c.CortexClaude.deny_agent_secret_reads`` on, the Claude Code we launch (the terminal
button, ``cortex-claude``) gets ``--settings '{"permissions": {"deny": [...]}}'``: ``Read(...)``
and ``Edit(...)`` rules for the places where a process of this OS user can find Snowflake or
Jupyter secrets (docs/reliability.md, "Trust model").

What it guards and what it does not, per Claude Code's permissions documentation
(code.claude.com/docs/en/permissions): deny rules win over allow rules and over every permission
mode, ``--settings`` is merged with the user's own settings files, and ``Read`` rules cover the
built-in Read tool and, as far as Claude Code can tell, Grep/Glob. They do not apply to Bash:
``cat ~/.snowflake/connections.toml`` or a Python script still reads the file. Only an OS-level
boundary (another OS user, a container, Claude Code's sandbox) stops that. Path rules follow
gitignore syntax; ``//`` starts an absolute path, ``~/`` the home directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .config import CortexClaude


def _absolute_rule(path: Path, *, folder: bool) -> str:
    text = "//" + str(path).lstrip("/")
    return text.rstrip("/") + "/**" if folder else text


def secret_paths(config: CortexClaude, environ: Mapping[str, str] | None = None) -> list[str]:
    """Path patterns (Claude Code rule syntax) where this user's secrets live."""
    environ = os.environ if environ is None else environ
    patterns = [
        "//proc/**/environ",  # any process's environment: the server's SNOWFLAKE_TOKEN
        "~/.snowflake/**",  # connections.toml, config.toml (connector and Snowflake CLI)
        "~/.config/snowflake/**",
        "~/Library/Application Support/snowflake/**",
    ]
    if environ.get("SNOWFLAKE_HOME"):
        patterns.append(_absolute_rule(Path(environ["SNOWFLAKE_HOME"]).expanduser(), folder=True))
    files = [
        config.private_key_file,
        config.token_file_path,
        config.spcs_token_path,
        *(
            environ.get(name, "")
            for name in (
                "SNOWFLAKE_PRIVATE_KEY_FILE",
                "SNOWFLAKE_PRIVATE_KEY_PATH",
                "SNOWFLAKE_TOKEN_FILE_PATH",
            )
        ),
    ]
    for file in files:
        if file:
            patterns.append(_absolute_rule(Path(file).expanduser().absolute(), folder=False))
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        # jpserver-*.json (the Jupyter token), kernel-*.json (kernel HMAC keys), our key file.
        patterns.append(_absolute_rule(Path(jupyter_runtime_dir()).absolute(), folder=True))
    except ImportError:  # the standalone command may run without jupyter_core
        pass
    return list(dict.fromkeys(patterns))  # in order, each once


def secret_read_denials(
    config: CortexClaude, environ: Mapping[str, str] | None = None
) -> dict[str, object]:
    """The settings object: deny reading and editing each of :func:`secret_paths`."""
    paths = secret_paths(config, environ)
    rules = [f"{tool}({path})" for tool in ("Read", "Edit") for path in paths]
    return {"permissions": {"deny": rules}}


def claude_settings_arguments(
    config: CortexClaude, environ: Mapping[str, str] | None = None
) -> list[str]:
    """``["--settings", json]`` when ``deny_agent_secret_reads`` is on, else nothing."""
    if not config.deny_agent_secret_reads:
        return []
    return ["--settings", json.dumps(secret_read_denials(config, environ), separators=(",", ":"))]
