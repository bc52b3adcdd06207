"""The environment of every process we start that runs an agent on the gateway.

:func:`agent_environment` (and :func:`plan_agent_environment`, its form for terminado's
``extra_env``) is the one place that decides it, for the Jupyter terminals
(:mod:`.server.terminals`), ``%%cortex_claude --agent``, the standalone ``cortex-claude`` launching
``claude``, and any other launcher (a Jupyter AI persona): the gateway variables go in, the
Snowflake secrets of the launcher's own environment (``c.CortexClaude.terminal_hidden_env``) go
out. The gateway holds the Snowflake credential; an agent needs only the gateway key, which opens
``cortex-claude/`` alone, and an agent that runs shell commands would otherwise read the secrets
with ``env``.

Claude Code reads ``ANTHROPIC_BASE_URL`` and sends ``ANTHROPIC_AUTH_TOKEN`` as
``Authorization: Bearer``; the model variables pick what ``/model`` and its sub-agents use
(see /work/shared/clients.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .config import CortexClaude
from .gateway.model_ids import DEFAULT_FAMILY_MODELS, resolve_model
from .snowflake.models import ModelCatalogue

GATEWAY_URL_VAR = "CORTEX_CLAUDE_GATEWAY_URL"  # the gateway root, ".../cortex-claude"
GATEWAY_KEY_VAR = "CORTEX_CLAUDE_GATEWAY_KEY"
GATEWAY_MODE_VAR = "CORTEX_CLAUDE_GATEWAY_MODE"  # one of the three modes below

SERVER_EXTENSION_MODE = "server-extension"  # the Jupyter server runs the gateway
STANDALONE_MODE = "standalone"  # `cortex-claude` runs it
IN_KERNEL_MODE = "in-kernel"  # a kernel runs it (Snowflake Notebooks, VS Code, no extension)

# Together they decide where Claude Code sends requests: a user who set ANTHROPIC_BASE_URL keeps
# their endpoint and their token, never our token on their endpoint.
CONNECTION_VARS = ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN")

# A key for api.anthropic.com. With ANTHROPIC_BASE_URL pointing at the gateway it would be sent
# there, and interactive Claude Code stops to ask whether to use it; it is removed instead.
FOREIGN_KEY_VARS = ("ANTHROPIC_API_KEY",)


def anthropic_url(gateway_url: str) -> str:
    return gateway_url.rstrip("/") + "/anthropic"


def openai_url(gateway_url: str) -> str:
    return gateway_url.rstrip("/") + "/openai/v1"


def claude_model_settings(config: CortexClaude, model: str | None = None) -> dict[str, str]:
    """ANTHROPIC_MODEL and the per-family defaults, as configured."""
    families = {**DEFAULT_FAMILY_MODELS, **dict(config.family_models)}
    return {
        "ANTHROPIC_MODEL": model or config.terminal_model or config.default_model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": families["opus"],
        "ANTHROPIC_DEFAULT_SONNET_MODEL": families["sonnet"],
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": families["haiku"],
    }


def output_token_ceiling(
    config: CortexClaude, catalogue: ModelCatalogue, requested_models: Iterable[str]
) -> int:
    """The smallest Cortex output ceiling among the models Claude Code may ask for.

    Claude Code uses one CLAUDE_CODE_MAX_OUTPUT_TOKENS for the main model and its sub-agents; the
    smallest ceiling keeps every one of them inside what Cortex accepts.
    """
    ceilings = [
        catalogue.output_ceiling(
            resolve_model(
                requested,
                model_map=dict(config.model_map),
                family_models=dict(config.family_models),
                default_model=config.default_model,
                catalogue=catalogue,
            )
        )
        for requested in requested_models
    ]
    return min(ceilings) if ceilings else config.output_token_ceiling


def claude_code_environment(
    config: CortexClaude,
    catalogue: ModelCatalogue | None,
    *,
    gateway_url: str,
    key: str,
    mode: str,
    model: str | None = None,
    codex_home: str | None = None,
) -> dict[str, str]:
    """Every variable we would like Claude Code (and Codex, given the CODEX_HOME the gateway
    wrote, see :mod:`.codex_home`) to see, before user settings are respected.

    Without a ``catalogue`` (a kernel, which does not know the serving gateway's settings) the
    model variables are left to the gateway's own mapping, except an explicit ``model``.
    """
    if catalogue is not None:
        models = claude_model_settings(config, model)
        model_settings = {
            **models,
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(
                output_token_ceiling(config, catalogue, models.values())
            ),
        }
    else:
        model_settings = {"ANTHROPIC_MODEL": model} if model else {}
    codex = {"CODEX_HOME": codex_home} if codex_home else {}
    return {
        "ANTHROPIC_BASE_URL": anthropic_url(gateway_url),
        "ANTHROPIC_AUTH_TOKEN": key,
        **model_settings,
        # Claude Code otherwise calls Anthropic's own services (statsig, Sentry, auto-update),
        # which are not reachable from most Snowflake/Jupyter deployments and leak usage.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        GATEWAY_URL_VAR: gateway_url.rstrip("/"),
        GATEWAY_KEY_VAR: key,
        GATEWAY_MODE_VAR: mode,
        # Codex reads the gateway key from this variable (its provider's env_key).
        **codex,
    }


def hidden_variables(environ: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The names in ``environ`` that match a ``c.CortexClaude.terminal_hidden_env`` pattern.

    Patterns are shell globs matched without regard to case (``SNOWFLAKE_CONNECTIONS_*_PASSWORD``),
    so the Snowflake CLI's per-connection overrides are covered whatever the connection is named.
    """
    compiled = [pattern.upper() for pattern in patterns]
    return [
        name for name in environ if any(fnmatchcase(name.upper(), pattern) for pattern in compiled)
    ]


@dataclass
class EnvironmentPlan:
    """What to merge into an environment: ``None`` removes a variable (terminado's convention)."""

    changes: dict[str, str | None] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # names the user had set, left alone
    hidden: list[str] = field(default_factory=list)  # secrets removed


def plan_environment(
    desired: Mapping[str, str],
    *,
    inherited: Mapping[str, str],
    explicit: Mapping[str, str | None] | None = None,
    hidden_patterns: Iterable[str] = (),
    force: Iterable[str] = (),
) -> EnvironmentPlan:
    """Merge ``desired`` into an environment without overwriting what the user set.

    ``inherited`` is the environment the process would get anyway (the server's ``os.environ``);
    ``explicit`` are values an administrator put in on purpose (``TerminalManager.extra_env``):
    never touched. Names in ``force`` are set even when inherited (our own CORTEX_CLAUDE_*
    variables, which must describe this gateway).
    """
    explicit = explicit or {}
    forced = set(force)
    plan = EnvironmentPlan()

    def user_has(name: str) -> bool:
        return name in explicit or name in inherited

    own_connection = "ANTHROPIC_BASE_URL" in forced or not user_has("ANTHROPIC_BASE_URL")
    for name, value in desired.items():
        if name in explicit:
            plan.kept.append(name)
        elif name in forced:
            plan.changes[name] = value
        elif name in CONNECTION_VARS:
            if own_connection:
                plan.changes[name] = value  # an inherited token was meant for another endpoint
            else:
                plan.kept.append(name)
        elif name in inherited:
            plan.kept.append(name)
        else:
            plan.changes[name] = value
    if own_connection:
        for name in FOREIGN_KEY_VARS:
            if name in inherited and name not in explicit:
                plan.changes[name] = None
    for name in hidden_variables(inherited, hidden_patterns):
        if name not in explicit:
            plan.changes[name] = None
            plan.hidden.append(name)
    return plan


def apply_plan(environ: Mapping[str, str], plan: EnvironmentPlan) -> dict[str, str]:
    result = dict(environ)
    for name, value in plan.changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def plan_agent_environment(
    config: CortexClaude,
    *,
    gateway_url: str,
    key: str,
    mode: str,
    catalogue: ModelCatalogue | None = None,
    model: str | None = None,
    inherited: Mapping[str, str] | None = None,
    explicit: Mapping[str, str | None] | None = None,
    own_connection: bool = True,
    codex_home: str | None = None,
) -> EnvironmentPlan:
    """The changes that turn ``inherited`` into an agent's environment (see :func:`agent_environment`).

    ``own_connection=False`` keeps a user's own ``ANTHROPIC_BASE_URL``/``ANTHROPIC_AUTH_TOKEN``
    (terminals: the user's profile may point Claude Code elsewhere on purpose); a launcher that
    starts an agent *for* the gateway forces them. An explicit ``model`` beats the user's
    ``ANTHROPIC_MODEL``. Secrets are removed either way.
    """
    inherited = os.environ if inherited is None else inherited
    desired = claude_code_environment(
        config,
        catalogue,
        gateway_url=gateway_url,
        key=key,
        mode=mode,
        model=model,
        codex_home=codex_home,
    )
    forced = [name for name in desired if name.startswith("CORTEX_CLAUDE_")]
    if own_connection:
        forced += CONNECTION_VARS
        if codex_home:
            forced.append("CODEX_HOME")
    if model:
        forced.append("ANTHROPIC_MODEL")
    return plan_environment(
        desired,
        inherited=inherited,
        explicit=explicit,
        hidden_patterns=config.terminal_hidden_env,
        force=forced,
    )


def agent_environment(
    config: CortexClaude,
    *,
    gateway_url: str,
    key: str,
    mode: str,
    catalogue: ModelCatalogue | None = None,
    model: str | None = None,
    inherited: Mapping[str, str] | None = None,
    own_connection: bool = True,
    codex_home: str | None = None,
) -> dict[str, str]:
    """The whole environment for a process that runs an agent on the gateway.

    ``inherited`` (default: this process's environment) with the gateway's URL and key, the model
    settings, Claude Code's no-phone-home switches and our ``CORTEX_CLAUDE_GATEWAY_*`` variables
    added, and every variable matching ``config.terminal_hidden_env`` (the Snowflake secrets) and
    ``ANTHROPIC_API_KEY`` removed. Pass it as ``env=`` to ``subprocess``/``asyncio`` launchers.
    """
    inherited = os.environ if inherited is None else inherited
    plan = plan_agent_environment(
        config,
        gateway_url=gateway_url,
        key=key,
        mode=mode,
        catalogue=catalogue,
        model=model,
        inherited=inherited,
        own_connection=own_connection,
        codex_home=codex_home,
    )
    return apply_plan(inherited, plan)
