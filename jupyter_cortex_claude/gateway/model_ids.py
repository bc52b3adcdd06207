"""Client model ids (Claude Code, the SDKs, Bedrock-style ids) turned into Cortex model ids.

Claude Code sends ids Cortex does not know: its default ``claude-opus-5-5``, dated ids such as
``claude-sonnet-4-5-20250929``, context suffixes such as ``[1m]``, the bare aliases ``opus``,
``sonnet`` and ``haiku``, and Anthropic's naming of the Claude 4 models
(``claude-sonnet-4-20250514``) where Cortex says ``claude-4-sonnet``. Cortex answers an unknown
name with a 400, so the gateway maps them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jupyter_cortex_claude.snowflake.models import ModelCatalogue

DEFAULT_MODEL = "claude-sonnet-4-6"

DEFAULT_FAMILY_MODELS: Mapping[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
}

CLAUDE_FAMILY_WORDS = ("opus", "sonnet", "haiku")

# "anthropic." or a Bedrock inference profile's "us.anthropic.", "global.anthropic." ...
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")
# "-v1:0", "-v2" (Bedrock model versions).
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
# "[1m]" and similar context-size suffixes Claude Code appends.
_BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")
# "-20250929" (Anthropic) or "@20250929" (Vertex).
_DATE_SUFFIX = re.compile(r"[-@]\d{8}$")

# Anthropic's names for models Cortex names differently (after date suffixes are stripped).
_ANTHROPIC_TO_CORTEX = {
    "claude-sonnet-4": "claude-4-sonnet",
    "claude-sonnet-4-0": "claude-4-sonnet",
    "claude-opus-4": "claude-4-opus",
    "claude-opus-4-0": "claude-4-opus",
    "claude-3-7-sonnet": "claude-3-7-sonnet",
    "claude-3-5-sonnet": "claude-3-5-sonnet",
}


def normalize_model_id(requested: str) -> str:
    """Lower-case ``requested`` and strip what is not part of a Cortex name.

    >>> normalize_model_id("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    'claude-sonnet-4-5'
    >>> normalize_model_id("claude-sonnet-4-20250514")
    'claude-4-sonnet'
    """
    model = requested.strip().lower()
    model = _BRACKET_SUFFIX.sub("", model).strip()
    model = _BEDROCK_PREFIX.sub("", model)
    model = _BEDROCK_VERSION.sub("", model)
    if model.endswith("-latest"):
        model = model[: -len("-latest")]
    model = _DATE_SUFFIX.sub("", model)
    return _ANTHROPIC_TO_CORTEX.get(model, model)


def claude_family_word(model: str) -> str | None:
    """``opus``, ``sonnet`` or ``haiku`` when ``model`` (normalized) is a Claude alias or id."""
    if model in CLAUDE_FAMILY_WORDS:
        return model
    if not model.startswith("claude"):
        return None
    parts = re.split(r"[-_.]", model)
    return next((word for word in CLAUDE_FAMILY_WORDS if word in parts), None)


def resolve_model(
    requested: str,
    *,
    model_map: Mapping[str, str],
    family_models: Mapping[str, str],
    default_model: str,
    catalogue: ModelCatalogue,
) -> str:
    """The Cortex model to call for the model id a client sent.

    Rules, first match wins:

    1. The user's ``model_map`` (``c.CortexClaude.model_map``): an exact match on the id as sent,
       then on the normalized id (rule 2).
    2. Normalize: lower-case; strip a context suffix such as ``[1m]``, a date suffix
       ``-YYYYMMDD`` (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``), ``-latest``,
       Bedrock's ``-v1:0`` and ``anthropic.``/``us.anthropic.`` prefixes; translate Anthropic's
       names for the Claude 4 models to Cortex's (``claude-sonnet-4-20250514`` and
       ``claude-sonnet-4-0`` → ``claude-4-sonnet``, ``claude-opus-4-0`` → ``claude-4-opus``,
       ``claude-3-7-sonnet-20250219`` → ``claude-3-7-sonnet``).
    3. A normalized id the catalogue knows is used as is.
    4. Claude Code's aliases ``opus``/``sonnet``/``haiku``, and any Claude id the catalogue does
       not know (``claude-opus-5-5``, ``claude-sonnet-5``, ``claude-opus-4-1``), go by the family
       word they contain through ``family_models`` (default: opus → claude-opus-4-6,
       sonnet → claude-sonnet-4-6, haiku → claude-haiku-4-5). A Claude id without a family word
       goes to ``default_model``.
    5. Any other id (``llama3.1-70b``, a fine-tuned ``db.schema.my-finetune``) is passed to
       Cortex as sent, so Cortex can judge it.
    6. An empty id goes to ``default_model``.
    """
    raw = requested.strip()
    if not raw:
        return default_model
    if raw in model_map:
        return model_map[raw]
    normalized = normalize_model_id(raw)
    if normalized in model_map:
        return model_map[normalized]
    if not normalized:
        return default_model
    if catalogue.knows(normalized):
        return catalogue.get(normalized).name
    family = claude_family_word(normalized)
    if family is not None:
        return family_models.get(family) or DEFAULT_FAMILY_MODELS[family]
    if normalized.startswith("claude"):
        return default_model
    return raw
