"""Any Anthropic Messages request made acceptable to Cortex's Messages API.

Claude Code (clients.md) sends betas, fields, model ids and limits that Cortex (cortex-api.md)
refuses with a 400: nine betas of which Cortex knows three, ``metadata``, ``max_tokens: 128000``
against a ceiling of 16,384, ``thinking.display``, a ``role: "system"`` message inside
``messages``, deferred tools, and the model ``claude-opus-5-5``. :func:`shape_messages_request`
fixes all of that in one pass and says what it did in ``changes`` (for debug logs; never prompt
text).

The input body is never modified. The shaped body shares every sub-object that needed no change
with the input (tool schemas, thinking blocks, texts): treat both as read-only afterwards.

Cost, measured with ``min(timeit.repeat(..., number=2000, repeat=3))`` on the captured Claude
Code request ``2.1.330-turn2-thinking-tool-result.json`` inflated to 48 KB with twelve more text
turns: 0.1 to 0.2 ms per call on the 2-CPU build machine, less than the 0.28 ms ``json.dumps``
of that same body takes there. Nothing is deep-copied: only changed blocks and the lists that
hold them are new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_cortex_claude.gateway.content_blocks import (
    EPHEMERAL,
    BlockCleaner,
    limit_cache_breakpoints,
)
from jupyter_cortex_claude.gateway.conversation import shape_conversation
from jupyter_cortex_claude.gateway.json_bodies import is_large, parse_request_body
from jupyter_cortex_claude.gateway.limits import DEFAULT_MAX_MESSAGES, check_model_id
from jupyter_cortex_claude.gateway.model_ids import (
    DEFAULT_FAMILY_MODELS,
    DEFAULT_MODEL,
    resolve_model,
)
from jupyter_cortex_claude.gateway.thinking import (
    EFFORT_BETA,
    drop_sampling_incompatible_with_thinking,
    shape_context_management,
    shape_output_config,
    shape_thinking,
)
from jupyter_cortex_claude.snowflake.models import ModelCatalogue

from ..betas import DOCUMENTED_BETAS
from ..errors import invalid_request

TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "context_management",
    }
)
TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control"})
TOOL_CHOICE_KEYS = frozenset({"type", "name", "disable_parallel_tool_use"})
TOOL_CHOICE_TYPES = frozenset({"auto", "any", "tool", "none"})
# Claude Code's first system block; it only means something to Anthropic's billing.
BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"


@dataclass(frozen=True)
class ShapingPolicy:
    """How requests are shaped; built once from the ``CortexClaude`` settings.

    ``model_map``, ``family_models`` and ``default_model``: see :func:`resolve_model`.
    ``beta_allowlist``: the ``anthropic-beta`` values forwarded; the others are dropped.
    ``drop_billing_header``: drop Claude Code's ``x-anthropic-billing-header:`` system line.
    ``fold_system_messages``: move ``role: "system"`` messages into the top-level ``system``.
    ``max_cache_breakpoints``: ``cache_control`` markers kept, the last ones (Cortex: 4).
    ``max_messages``: more messages in one request are refused (``c.CortexClaude.max_messages``).
    """

    catalogue: ModelCatalogue
    model_map: Mapping[str, str] = field(default_factory=dict)
    family_models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FAMILY_MODELS))
    default_model: str = DEFAULT_MODEL
    beta_allowlist: frozenset[str] = DOCUMENTED_BETAS
    drop_billing_header: bool = True
    fold_system_messages: bool = True
    max_cache_breakpoints: int = 4
    max_messages: int = DEFAULT_MAX_MESSAGES


@dataclass
class ShapedMessagesRequest:
    """A request ready for Cortex.

    ``body`` goes to Cortex as JSON; ``betas`` as the ``anthropic-beta`` header (none when empty);
    ``client_model`` is what the client asked for, to show back in responses; ``changes`` lists
    what shaping did, for debug logs (names and numbers only, never prompt text); ``large``:
    the client's body was large enough that encoding it belongs off the event loop.
    """

    body: dict[str, Any]
    client_model: str
    cortex_model: str
    betas: list[str]
    stream: bool
    changes: list[str]
    large: bool = False


def shape_messages_body(
    raw_body: bytes, beta_header: str | None, policy: ShapingPolicy
) -> ShapedMessagesRequest:
    """Parse and shape a client's raw Messages body (see :func:`.json_bodies.off_loop`)."""
    body = parse_request_body(raw_body, max_messages=policy.max_messages)
    shaped = shape_messages_request(body, beta_header, policy)
    shaped.large = is_large(raw_body)
    return shaped


def shape_messages_request(
    body: Any, beta_header: str | None, policy: ShapingPolicy
) -> ShapedMessagesRequest:
    """Shape a client's Messages request for Cortex; a bad request raises a 400 ``GatewayError``."""
    if not isinstance(body, dict):
        raise invalid_request("the request body must be a JSON object")
    changes: list[str] = []

    client_model = body.get("model")
    if not isinstance(client_model, str) or not client_model.strip():
        raise invalid_request("model must be a non-empty string", param="model")
    check_model_id(client_model)
    cortex_model = resolve_model(
        client_model,
        model_map=policy.model_map,
        family_models=policy.family_models,
        default_model=policy.default_model,
        catalogue=policy.catalogue,
    )
    if cortex_model != client_model:
        changes.append(f"model {client_model}→{cortex_model}")
    info = policy.catalogue.get(cortex_model)

    max_tokens = body.get("max_tokens")
    if "max_tokens" not in body:
        raise invalid_request("max_tokens is required", param="max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid_request("max_tokens must be a positive integer", param="max_tokens")
    ceiling = policy.catalogue.output_ceiling(cortex_model)
    if max_tokens > ceiling:
        changes.append(f"max_tokens {max_tokens}→{ceiling}")
        max_tokens = ceiling
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_request("stream must be true or false", param="stream")

    betas = _shape_betas(beta_header, policy.beta_allowlist, changes)
    dropped_fields = [key for key in body if key not in TOP_LEVEL_FIELDS]
    if dropped_fields:
        changes.append(f"dropped fields: {','.join(sorted(dropped_fields))}")
    shaped = {key: value for key, value in body.items() if key in TOP_LEVEL_FIELDS}
    shaped["model"] = cortex_model
    shaped["max_tokens"] = max_tokens

    cleaner = BlockCleaner()
    conversation = shape_conversation(
        body.get("messages"),
        cleaner,
        fold_system_messages=policy.fold_system_messages,
        max_messages=policy.max_messages,
    )
    shaped["messages"] = conversation.messages
    changes.extend(conversation.notes)
    system = _shape_system(body.get("system"), conversation.system_blocks, policy, cleaner, changes)
    _set_or_drop(shaped, "system", system)
    tools, tool_choice = _shape_tools(body.get("tools"), body.get("tool_choice"), cleaner, changes)
    _set_or_drop(shaped, "tools", tools)
    _set_or_drop(shaped, "tool_choice", tool_choice)

    thinking = shape_thinking(body.get("thinking"), info, max_tokens, shaped, changes)
    _set_or_drop(shaped, "thinking", thinking)
    if thinking is not None:
        drop_sampling_incompatible_with_thinking(shaped, changes)
    output_config = shape_output_config(body.get("output_config"), info, changes)
    _set_or_drop(shaped, "output_config", output_config)
    effort_kept = bool(output_config and "effort" in output_config)
    if effort_kept and EFFORT_BETA not in betas and EFFORT_BETA in policy.beta_allowlist:
        # Bedrock takes output_config.effort on claude-opus-4-5 only with this beta.
        betas.append(EFFORT_BETA)
        changes.append(f"added beta {EFFORT_BETA}")
    context_management = shape_context_management(
        body.get("context_management"), betas, thinking, changes
    )
    _set_or_drop(shaped, "context_management", context_management)

    removed = limit_cache_breakpoints(
        tools,
        system if isinstance(system, list) else None,
        conversation.messages,
        policy.max_cache_breakpoints,
    )
    if removed:
        changes.append(
            f"dropped {removed} earliest cache_control breakpoint(s) "
            f"(max {policy.max_cache_breakpoints})"
        )
    changes.extend(cleaner.notes())
    return ShapedMessagesRequest(
        body=shaped,
        client_model=client_model,
        cortex_model=cortex_model,
        betas=betas,
        stream=stream,
        changes=changes,
    )


def _set_or_drop(shaped: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        shaped.pop(key, None)
    else:
        shaped[key] = value


def _shape_betas(header: str | None, allowlist: frozenset[str], changes: list[str]) -> list[str]:
    kept: list[str] = []
    dropped: list[str] = []
    for value in (header or "").split(","):
        beta = value.strip()
        if not beta or beta in kept or beta in dropped:
            continue
        (kept if beta in allowlist else dropped).append(beta)
    if dropped:
        changes.append(f"dropped betas: {','.join(dropped)}")
    return kept


def _shape_system(
    system: Any,
    folded: list[dict[str, Any]],
    policy: ShapingPolicy,
    cleaner: BlockCleaner,
    changes: list[str],
) -> str | list[dict[str, Any]] | None:
    blocks: list[dict[str, Any]] = []
    if isinstance(system, str):
        if policy.drop_billing_header and system.startswith(BILLING_HEADER_PREFIX):
            system = system.partition("\n")[2]
            changes.append("dropped billing header line")
        if not folded:
            return system or None
        if system:
            blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise invalid_request(f"system[{index}] must be a text block", param="system")
            text = block.get("text")
            if policy.drop_billing_header and str(text).startswith(BILLING_HEADER_PREFIX):
                changes.append("dropped billing header block")
                continue
            blocks.append(cleaner.block(block, f"system[{index}]"))
    elif system is not None:
        raise invalid_request("system must be a string or a list of text blocks", param="system")
    blocks.extend(folded)
    return blocks or None


def _shape_tools(
    tools: Any, tool_choice: Any, cleaner: BlockCleaner, changes: list[str]
) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    if tools is None:
        kept: list[dict[str, Any]] = []
    elif not isinstance(tools, list):
        raise invalid_request("tools must be a list", param="tools")
    else:
        kept = []
        deferred: list[str] = []
        builtin: list[str] = []
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid_request(f"tools[{index}] must be an object", param="tools")
            if tool.get("defer_loading") is True:
                # Deferred tools need Anthropic's tool search, which Cortex lacks; Claude Code
                # itself re-sends without them after a 400.
                deferred.append(str(tool.get("name")))
                continue
            kind = tool.get("type")
            if kind is not None and kind != "custom":
                # Server and Anthropic-defined tools (web_search, bash_2025...): Cortex runs none.
                builtin.append(str(kind))
                continue
            kept.append(_shape_tool(tool, index, cleaner))
        if deferred:
            changes.append(f"dropped deferred tools: {','.join(deferred)}")
        if builtin:
            changes.append(f"dropped server tools: {','.join(builtin)}")
    if not kept:
        if tool_choice is not None:
            changes.append("dropped tool_choice: no tools left")
        return None, None
    return kept, _shape_tool_choice(tool_choice, {tool["name"] for tool in kept}, changes)


def _shape_tool(tool: dict[str, Any], index: int, cleaner: BlockCleaner) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"tools[{index}].name must be a non-empty string", param="tools")
    if not isinstance(tool.get("input_schema"), dict):
        raise invalid_request(f"tools[{index}].input_schema must be an object", param="tools")
    cache_control = tool.get("cache_control", EPHEMERAL)
    if tool.keys() <= TOOL_KEYS and cache_control == EPHEMERAL:
        return tool
    shaped = {key: value for key, value in tool.items() if key in TOOL_KEYS}
    if "cache_control" in shaped:
        normalized = cleaner.cache_control(shaped.pop("cache_control"))
        if normalized is not None:
            shaped["cache_control"] = normalized
    return shaped


def _shape_tool_choice(
    tool_choice: Any, tool_names: set[str], changes: list[str]
) -> dict[str, Any] | None:
    if tool_choice is None:
        return None
    kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
    if (
        not isinstance(tool_choice, dict)
        or not isinstance(kind, str)
        or kind not in TOOL_CHOICE_TYPES
    ):
        raise invalid_request(
            "tool_choice must be an object with type auto, any, tool or none", param="tool_choice"
        )
    name = tool_choice.get("name")
    if kind == "tool" and (not isinstance(name, str) or name not in tool_names):
        changes.append("dropped tool_choice: its tool was dropped or is unknown")
        return None
    if tool_choice.keys() <= TOOL_CHOICE_KEYS:
        return tool_choice
    return {key: value for key, value in tool_choice.items() if key in TOOL_CHOICE_KEYS}
