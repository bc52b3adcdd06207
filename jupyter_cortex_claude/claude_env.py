"""The environment that points Claude Code (and our own tools) at a running gateway.

Shared by the Jupyter terminals (:mod:`.server.terminals`), the standalone ``cortex-claude``
command and the magics, so every way of starting Claude Code sees the same variables.
Claude Code reads ``ANTHROPIC_BASE_URL`` and sends ``ANTHROPIC_AUTH_TOKEN`` as
``Authorization: Bearer``; the model variables pick what ``/model`` and its sub-agents use
(see /work/shared/clients.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .config import CortexClaude
from .gateway.model_ids import DEFAULT_FAMILY_MODELS, resolve_model
from .snowflake.models import ModelCatalogue

GATEWAY_URL_VAR = "CORTEX_CLAUDE_GATEWAY_URL"  # the gateway root, ".../cortex-claude"
GATEWAY_KEY_VAR = "CORTEX_CLAUDE_GATEWAY_KEY"
GATEWAY_MODE_VAR = "CORTEX_CLAUDE_GATEWAY_MODE"  # "server-extension" | "standalone" | "in-kernel"

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
    catalogue: ModelCatalogue,
    *,
    gateway_url: str,
    key: str,
    mode: str,
    model: str | None = None,
    codex_home: str | None = None,
) -> dict[str, str]:
    """Every variable we would like Claude Code (and Codex, given the CODEX_HOME the gateway
    wrote, see :mod:`.codex_home`) to see, before user settings are respected."""
    models = claude_model_settings(config, model)
    codex = {"CODEX_HOME": codex_home} if codex_home else {}
    return {
        "ANTHROPIC_BASE_URL": anthropic_url(gateway_url),
        "ANTHROPIC_AUTH_TOKEN": key,
        **models,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(
            output_token_ceiling(config, catalogue, models.values())
        ),
        # Claude Code otherwise calls Anthropic's own services (statsig, Sentry, auto-update),
        # which are not reachable from most Snowflake/Jupyter deployments and leak usage.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        GATEWAY_URL_VAR: gateway_url.rstrip("/"),
        GATEWAY_KEY_VAR: key,
        GATEWAY_MODE_VAR: mode,
        # Codex reads the gateway key from this variable (its provider's env_key).
        **codex,
    }


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
    hidden_names: Iterable[str] = (),
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
    for name in hidden_names:
        if name in inherited and name not in explicit:
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
