"""The ``messages`` list made into a conversation Cortex accepts.

Claude behind Cortex follows Bedrock's conversation rules, stricter than Anthropic's:

- roles are ``user`` and ``assistant`` only, alternating, starting with a user turn. Claude Code
  puts a ``role: "system"`` message right after the first user message (clients.md); it is folded
  into the top-level ``system``, and the two user turns around it are merged.
- the conversation must end with a user turn: Cortex refuses a prefill.
- every ``tool_use`` needs its ``tool_result`` in the next user turn, and a ``tool_result`` needs
  its ``tool_use``; Cortex's own message for this is an opaque Bedrock one, so the gateway says it
  first, naming the tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_cortex_claude.gateway.content_blocks import BlockCleaner
from jupyter_cortex_claude.gateway.limits import DEFAULT_MAX_MESSAGES, check_message_count

from ..errors import invalid_request

ROLES = frozenset({"user", "assistant", "system"})


@dataclass(slots=True)
class Turn:
    role: str
    content: str | list[Any]
    # Index in the client's ``messages`` of this turn's first message, for error messages.
    source_index: int


@dataclass
class Conversation:
    messages: list[dict[str, Any]]
    # Text blocks from role "system" messages, in order, for the end of the top-level system.
    system_blocks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def shape_conversation(
    messages: Any,
    cleaner: BlockCleaner,
    *,
    fold_system_messages: bool = True,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> Conversation:
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages must be a non-empty list of messages", param="messages")
    check_message_count(len(messages), max_messages)
    turns: list[Turn] = []
    system_blocks: list[dict[str, Any]] = []
    dropped_message_keys: set[str] = set()
    folded = 0
    for index, message in enumerate(messages):
        # Error texts are built only on error: this loop runs up to max_messages times.
        if not isinstance(message, dict):
            raise invalid_request(f"messages[{index}] must be an object with 'role' and 'content'")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise invalid_request(
                f"messages[{index}].role must be 'user' or 'assistant' (or 'system'), got "
                f"{_describe(role)}"
            )
        if len(message) > 2 or "content" not in message:
            dropped_message_keys.update(message.keys() - {"role", "content"})
        content = message.get("content")
        if isinstance(content, list):
            content = cleaner.blocks(content, f"messages[{index}].content")
        elif not isinstance(content, str):
            raise invalid_request(
                f"messages[{index}].content must be a string or a list of content blocks"
            )
        if role == "system" and fold_system_messages:
            system_blocks.extend(_as_system_blocks(content, f"messages[{index}]"))
            folded += 1
            continue
        turns.append(Turn(role, content, index))

    notes = []
    if folded:
        notes.append(f"folded {folded} system message(s) into system")
    if dropped_message_keys:
        notes.append(f"dropped message keys: {','.join(sorted(dropped_message_keys))}")
    merged = _merge_same_role(turns)
    if len(merged) < len(turns):
        notes.append(f"merged {len(turns) - len(merged)} consecutive same-role message(s)")
    _check_order(merged)
    _check_tool_pairs(merged)
    return Conversation(
        messages=[{"role": turn.role, "content": turn.content} for turn in merged],
        system_blocks=system_blocks,
        notes=notes,
    )


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) and len(value) <= 40 else type(value).__name__


def _as_system_blocks(content: str | list[Any], where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    for index, block in enumerate(content):
        if block["type"] != "text":
            raise invalid_request(
                f"{where}.content[{index}] is a {block['type']} block; a system message may only "
                "hold text"
            )
    return content


def _as_blocks(content: str | list[Any]) -> list[Any]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def _merge_same_role(turns: list[Turn]) -> list[Turn]:
    """Consecutive turns of one role as one turn, in time linear in the number of blocks.

    Each run of same-role turns is gathered first and joined once: joining on every merge copied
    the growing block list each time, and 40,000 consecutive user messages took a minute on the
    event loop (issue 11, finding 1).
    """
    merged: list[Turn] = []
    run: list[Turn] = []
    for turn in turns:
        if run and (run[-1].role != turn.role or turn.role == "system"):
            merged.append(_join_run(run))
            run = []
        run.append(turn)
    if run:
        merged.append(_join_run(run))
    return merged


def _join_run(run: list[Turn]) -> Turn:
    first = run[0]
    if len(run) == 1:
        return first
    blocks = [block for turn in run for block in _as_blocks(turn.content)]
    if first.role == "user":
        # Anthropic wants a user turn's tool_result blocks before its other blocks.
        results = [block for block in blocks if block["type"] == "tool_result"]
        if results:
            blocks = results + [block for block in blocks if block["type"] != "tool_result"]
    return Turn(first.role, blocks, first.source_index)


def _check_order(turns: list[Turn]) -> None:
    if not turns:
        raise invalid_request(
            "messages must contain at least one user message besides system messages",
            param="messages",
        )
    if turns[0].role != "user":
        raise invalid_request(
            f"messages[{turns[0].source_index}]: Cortex requires the conversation to start with a "
            "user message",
            param="messages",
        )
    if turns[-1].role == "assistant":
        raise invalid_request(
            "Cortex does not accept a conversation that ends with an assistant message (prefill); "
            f"messages[{turns[-1].source_index}] is an assistant turn. End with a user message.",
            param="messages",
        )
    for turn in turns:
        if not turn.content:
            raise invalid_request(
                f"messages[{turn.source_index}].content is empty; Cortex needs non-empty content "
                "in every message",
                param="messages",
            )


def _check_tool_pairs(turns: list[Turn]) -> None:
    expected: dict[str, str] = {}  # tool_use id -> tool name, from the previous assistant turn
    expected_from = -1
    for turn in turns:
        if not expected and not isinstance(turn.content, list):
            continue  # a text-only turn after a turn without tool calls: nothing to pair
        blocks = turn.content if isinstance(turn.content, list) else []
        if turn.role == "assistant":
            expected = {
                block["id"]: block["name"] for block in blocks if block["type"] == "tool_use"
            }
            expected_from = turn.source_index
            continue
        if turn.role != "user":
            continue
        answered = {block["tool_use_id"] for block in blocks if block["type"] == "tool_result"}
        for tool_id, tool_name in expected.items():
            if tool_id not in answered:
                raise invalid_request(
                    f"tool_use {tool_id} (tool {tool_name}) in messages[{expected_from}] has no "
                    f"matching tool_result in the following user message (messages"
                    f"[{turn.source_index}]); Cortex requires a tool_result for every tool_use",
                    param="messages",
                )
        for tool_id in answered - expected.keys():
            raise invalid_request(
                f"tool_result for {tool_id} in messages[{turn.source_index}] does not answer a "
                "tool_use of the assistant message just before it; Cortex refuses it",
                param="messages",
            )
        expected = {}
