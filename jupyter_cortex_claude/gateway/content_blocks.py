"""Content blocks trimmed to what Cortex's Messages API accepts; prompt-cache breakpoints.

Cortex validates the Messages schema strictly (it follows Bedrock): unknown keys on a block, a
``cache_control`` with a one-hour ``ttl``, or more than four breakpoints are refused. Blocks that
need no change are returned as the same object, so shaping a 50 KB request copies almost nothing;
thinking blocks in particular must go back to Cortex byte for byte, their ``signature`` covers them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import invalid_request

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}

# The block types Cortex documents or that Claude sends back, with the keys each may carry.
BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}

# What a tool_result's content list may hold.
TOOL_RESULT_BLOCK_TYPES = frozenset({"text", "image", "document"})


class BlockCleaner:
    """Cleans blocks one by one and remembers, for the debug log, what it changed."""

    def __init__(self) -> None:
        self.dropped_types: Counter[str] = Counter()
        self.dropped_keys: set[str] = set()
        self.cache_controls_normalized = 0

    def cache_control(self, value: Any) -> dict[str, str] | None:
        """``{"type": "ephemeral"}`` for any ephemeral cache_control, ``None`` for anything else.

        Cortex: "cache_control (ephemeral only, 5-minute TTL)"; Claude Code may send ``ttl: "1h"``.
        """
        if value == EPHEMERAL:
            return EPHEMERAL
        self.cache_controls_normalized += 1
        if isinstance(value, dict) and value.get("type") == "ephemeral":
            return EPHEMERAL
        return None

    def block(self, block: Any, where: str, allowed_types: frozenset[str] | None = None) -> Any:
        """The block ready for Cortex (possibly ``block`` itself), or ``None`` to drop it."""
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid_request(f"{where} must be an object with a string 'type'")
        kind = block["type"]
        allowed = BLOCK_KEYS.get(kind)
        if allowed is None or (allowed_types is not None and kind not in allowed_types):
            # server_tool_use, web_search_tool_result, tool_reference, ...: results of tools Cortex
            # cannot run, meaningless without them.
            self.dropped_types[kind] += 1
            return None
        if kind == "text" and not isinstance(block.get("text"), str):
            raise invalid_request(f"{where}.text must be a string")
        if kind == "tool_use":
            for key in ("id", "name"):
                if not isinstance(block.get(key), str) or not block[key]:
                    raise invalid_request(f"{where}.{key} must be a non-empty string")
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            raise invalid_request(f"{where}.tool_use_id must be a string")

        extra = block.keys() - allowed
        content = block.get("content")
        nested = content
        if kind == "tool_result":
            nested = self.tool_result_content(content, f"{where}.content")
        cache_control_ok = "cache_control" not in block or block["cache_control"] == EPHEMERAL
        if not extra and cache_control_ok and nested is content:
            return block
        cleaned = {key: value for key, value in block.items() if key in allowed}
        self.dropped_keys.update(extra)
        if "cache_control" in cleaned:
            normalized = self.cache_control(cleaned.pop("cache_control"))
            if normalized is not None:
                cleaned["cache_control"] = normalized
        if nested is not content:
            cleaned["content"] = nested
        return cleaned

    def tool_result_content(self, content: Any, where: str) -> Any:
        if content is None or isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise invalid_request(f"{where} must be a string or a list of content blocks")
        cleaned = [
            self.block(item, f"{where}[{index}]", TOOL_RESULT_BLOCK_TYPES)
            for index, item in enumerate(content)
        ]
        if all(new is old for new, old in zip(cleaned, content, strict=True)):
            return content
        return [item for item in cleaned if item is not None]

    def blocks(self, blocks: list[Any], where: str) -> list[Any]:
        """A new list with every block cleaned and unknown blocks dropped."""
        cleaned = []
        for index, block in enumerate(blocks):
            new = self.block(block, f"{where}[{index}]")
            if new is not None:
                cleaned.append(new)
        return cleaned

    def notes(self) -> list[str]:
        notes = []
        if self.dropped_types:
            counts = ",".join(f"{kind}x{n}" for kind, n in sorted(self.dropped_types.items()))
            notes.append(f"dropped blocks: {counts}")
        if self.dropped_keys:
            notes.append(f"dropped block keys: {','.join(sorted(self.dropped_keys))}")
        if self.cache_controls_normalized:
            notes.append(f"cache_control normalized to ephemeral: {self.cache_controls_normalized}")
        return notes


def limit_cache_breakpoints(
    tools: list[Any] | None,
    system: list[Any] | None,
    messages: list[dict[str, Any]],
    maximum: int,
) -> int:
    """Keep only the last ``maximum`` cache_control breakpoints; return how many were removed.

    Cortex allows at most 4. Anthropic reads the prompt as tools, then system, then messages; the
    last breakpoints cover the longest prefix, so they are the ones worth keeping. The lists passed
    in must be the shaper's own (they are edited in place); their blocks are replaced, never edited.
    """
    # (list, index, nested index or -1) for every breakpoint, in prompt order.
    found: list[tuple[list[Any], int, int]] = []
    for container in (tools, system):
        if container:
            found.extend(
                (container, index, -1)
                for index, item in enumerate(container)
                if isinstance(item, dict) and "cache_control" in item
            )
    for message in messages:
        content = message["content"]
        if not isinstance(content, list):
            continue
        for index, block in enumerate(content):
            nested = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(nested, list):
                found.extend(
                    (content, index, inner)
                    for inner, item in enumerate(nested)
                    if isinstance(item, dict) and "cache_control" in item
                )
            if "cache_control" in block:
                found.append((content, index, -1))
    excess = len(found) - max(maximum, 0)
    # A tool_result's content list is copied once, however many of its breakpoints go (copying
    # it for each one was quadratic in its length).
    copied: dict[tuple[int, int], list[Any]] = {}  # (id of the container, index) -> its copy
    for container, index, inner in found[: max(excess, 0)]:
        item = container[index]
        if inner < 0:
            container[index] = {k: v for k, v in item.items() if k != "cache_control"}
            continue
        nested = copied.get((id(container), index))
        if nested is None:
            nested = list(item["content"])
            container[index] = {**item, "content": nested}
            copied[id(container), index] = nested
        nested[inner] = {k: v for k, v in nested[inner].items() if k != "cache_control"}
    return max(excess, 0)
