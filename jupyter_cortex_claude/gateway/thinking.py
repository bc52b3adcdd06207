"""Thinking, effort, sampling and context management, fitted to what the Cortex model takes.

Claude Code asks for ``thinking: {"type": "adaptive", "display": ...}`` and ``output_config.effort``
on every model (clients.md); Cortex documents adaptive thinking and effort for the 4.6 models only,
``display`` nowhere, and a budget must stay below ``max_tokens``, which the gateway has just clamped
to 16,384. Anything Cortex would refuse is adjusted or dropped, and the reason noted in ``changes``.
"""

from __future__ import annotations

from typing import Any

from jupyter_cortex_claude.snowflake.models import ModelInfo

from ..errors import invalid_request

CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
EFFORT_BETA = "effort-2025-11-24"
EFFORT_LEVELS = frozenset({"low", "medium", "high", "max"})
# Anthropic's minimum budget for extended thinking.
MIN_THINKING_BUDGET = 1024


def shape_thinking(
    thinking: Any, info: ModelInfo, max_tokens: int, shaped: dict[str, Any], changes: list[str]
) -> dict[str, Any] | None:
    """The ``thinking`` to send for ``shaped`` (messages and tool_choice already shaped), or None.

    Only ``type`` and ``budget_tokens`` are kept (``display`` is Anthropic-only). ``adaptive`` on a
    model without it becomes ``enabled`` with ``max_tokens - 1``; a budget is kept below
    ``max_tokens``; under 1,024 tokens thinking is dropped, as on models without thinking.
    """
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise invalid_request("thinking must be an object", param="thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        changes.append("thinking disabled: removed")
        return None
    if kind not in ("enabled", "adaptive"):
        raise invalid_request(
            "thinking.type must be 'enabled', 'adaptive' or 'disabled'", param="thinking"
        )
    extra = sorted(thinking.keys() - {"type", "budget_tokens"})
    if extra:
        changes.append(f"dropped thinking keys: {','.join(extra)}")
    if not info.supports_thinking:
        changes.append(f"thinking dropped: {info.name} has no extended thinking")
        return None
    tool_choice = shaped.get("tool_choice")
    if tool_choice and tool_choice.get("type") in ("any", "tool"):
        # Anthropic: thinking cannot be combined with a tool_choice that forces tool use.
        changes.append("thinking dropped: tool_choice forces tool use")
        return None
    if kind == "adaptive":
        if info.supports_adaptive_thinking:
            return {"type": "adaptive"}
        budget = max_tokens - 1
        changes.append(f"thinking adaptive→enabled budget {budget}")
    else:
        requested = thinking.get("budget_tokens")
        if not isinstance(requested, int) or isinstance(requested, bool):
            raise invalid_request("thinking.budget_tokens must be an integer", param="thinking")
        budget = requested
        if budget >= max_tokens:
            changes.append(f"thinking budget_tokens {budget}→{max_tokens - 1}")
            budget = max_tokens - 1
    if budget < MIN_THINKING_BUDGET:
        changes.append(f"thinking dropped: budget {budget} below {MIN_THINKING_BUDGET}")
        return None
    if _tool_loop_without_thinking(shaped["messages"]):
        # Anthropic/Bedrock: with thinking enabled, the assistant turn of an ongoing tool loop must
        # start with a thinking block; a loop begun without thinking continues without it.
        changes.append("thinking dropped: the last assistant tool call has no thinking block")
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _tool_loop_without_thinking(messages: list[dict[str, Any]]) -> bool:
    if len(messages) < 2 or messages[-2]["role"] != "assistant":
        return False
    content = messages[-2]["content"]
    if not isinstance(content, list) or not any(b["type"] == "tool_use" for b in content):
        return False
    return content[0]["type"] not in ("thinking", "redacted_thinking")


def in_chat_tool_loop(messages: list[dict[str, Any]]) -> bool:
    """True when a Chat Completions conversation is inside a tool loop (its last assistant message
    called tools), where Claude with thinking on would need that message's signed thinking back.

    Anthropic/Bedrock refuse it ("a final `assistant` message must start with a thinking block");
    Cortex's Chat Completions returns Claude's thinking as plain text (``message.reasoning``) and
    documents no way to send it back, so the routes onto Chat turn thinking off for such a request:
    the loop goes on without it, and the next user turn thinks again.
    """
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return bool(message.get("tool_calls"))
    return False


def drop_sampling_incompatible_with_thinking(shaped: dict[str, Any], changes: list[str]) -> None:
    # Anthropic: thinking is incompatible with temperature other than 1, with top_k, and with top_p
    # below 0.95.
    temperature = shaped.get("temperature")
    if temperature is not None and temperature != 1:
        del shaped["temperature"]
        changes.append("dropped temperature (thinking on)")
    if "top_k" in shaped:
        del shaped["top_k"]
        changes.append("dropped top_k (thinking on)")
    top_p = shaped.get("top_p")
    if isinstance(top_p, (int, float)) and top_p < 0.95:
        del shaped["top_p"]
        changes.append("dropped top_p (thinking on)")


def shape_output_config(
    output_config: Any, info: ModelInfo, changes: list[str]
) -> dict[str, Any] | None:
    if output_config is None:
        return None
    if not isinstance(output_config, dict):
        raise invalid_request("output_config must be an object", param="output_config")
    shaped: dict[str, Any] = {}
    effort = output_config.get("effort")
    if effort is not None:
        level = effort.lower() if isinstance(effort, str) else ""
        if level == "xhigh" or (level == "max" and not info.supports_adaptive_thinking):
            # "xhigh" is newer than Cortex's models; "max" is documented for claude-opus-4-6 only.
            changes.append(f"effort {level}→high")
            level = "high"
        if not info.supports_effort:
            changes.append(f"dropped effort: {info.name} does not take it")
        elif level not in EFFORT_LEVELS:
            changes.append("dropped effort: unknown level")
        else:
            shaped["effort"] = level
    if "format" in output_config:
        shaped["format"] = output_config["format"]
    extra = sorted(output_config.keys() - {"effort", "format"})
    if extra:
        changes.append(f"dropped output_config keys: {','.join(extra)}")
    return shaped or None


def shape_context_management(
    value: Any, betas: list[str], thinking: dict[str, Any] | None, changes: list[str]
) -> dict[str, Any] | None:
    if value is None:
        return None
    if CONTEXT_MANAGEMENT_BETA not in betas:
        changes.append(f"dropped context_management: no {CONTEXT_MANAGEMENT_BETA} beta")
        return None
    if not isinstance(value, dict):
        raise invalid_request("context_management must be an object", param="context_management")
    edits = value.get("edits")
    if thinking is not None or not isinstance(edits, list):
        return value
    # Anthropic refuses clear_thinking edits when thinking is off (it may have been dropped above).
    kept = [
        edit
        for edit in edits
        if not (isinstance(edit, dict) and str(edit.get("type", "")).startswith("clear_thinking"))
    ]
    if len(kept) == len(edits):
        return value
    changes.append("dropped clear_thinking edits (thinking off)")
    return {**value, "edits": kept} if kept else None
