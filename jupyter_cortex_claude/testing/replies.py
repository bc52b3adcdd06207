"""What the emulator answers: scripted replies (content blocks) and faults.

A :class:`Reply` is protocol-neutral; the emulator renders it as an Anthropic Message (JSON or SSE)
or as an OpenAI chat completion (JSON or chunks) depending on the endpoint that was called.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Union


def new_tool_use_id() -> str:
    # Cortex (like Bedrock) hands out `tooluse_...` ids, not Anthropic's `toolu_...`: clients must
    # not assume the prefix, so the emulator never produces the Anthropic one.
    return "tooluse_" + secrets.token_urlsafe(16).replace("-", "A").replace("_", "b")


def new_signature() -> str:
    return "emulator-sig-" + secrets.token_hex(24)


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=new_tool_use_id)


@dataclass(frozen=True)
class ThinkingBlock:
    thinking: str
    signature: str = field(default_factory=new_signature)


Block = Union[TextBlock, ToolUseBlock, ThinkingBlock]  # noqa: UP007 (runtime alias on Python 3.10)


@dataclass
class Reply:
    """One model answer; ``stop_reason`` defaults to ``tool_use`` or ``end_turn``."""

    blocks: list[Block]
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Prompt tokens the answer reports as read from the cache (beside input_tokens, as Anthropic
    # counts them; the OpenAI renderings add them to the prompt count, as OpenAI does).
    cache_read_tokens: int = 0

    @property
    def resolved_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        if any(isinstance(block, ToolUseBlock) for block in self.blocks):
            return "tool_use"
        return "end_turn"

    def estimated_output_tokens(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        characters = 0
        for block in self.blocks:
            if isinstance(block, TextBlock):
                characters += len(block.text)
            elif isinstance(block, ThinkingBlock):
                characters += len(block.thinking)
            else:
                characters += len(block.name) + len(str(block.input))
        return max(1, characters // 4)

    @classmethod
    def text(cls, text: str, *, stop_reason: str | None = None) -> Reply:
        return cls([TextBlock(text)], stop_reason=stop_reason)

    @classmethod
    def tool_use(
        cls, name: str, input: dict[str, Any], text: str | None = None, id: str | None = None
    ) -> Reply:
        blocks: list[Block] = [TextBlock(text)] if text else []
        blocks.append(ToolUseBlock(name, input, id) if id else ToolUseBlock(name, input))
        return cls(blocks)

    @classmethod
    def tools(cls, calls: list[tuple[str, dict[str, Any]]], text: str | None = None) -> Reply:
        """Several tool calls in one turn (parallel tool use)."""
        blocks: list[Block] = [TextBlock(text)] if text else []
        blocks.extend(ToolUseBlock(name, input) for name, input in calls)
        return cls(blocks)

    @classmethod
    def thinking_then_text(cls, thinking: str, text: str, signature: str | None = None) -> Reply:
        thought = ThinkingBlock(thinking, signature) if signature else ThinkingBlock(thinking)
        return cls([thought, TextBlock(text)])

    @classmethod
    def thinking_then_tool_use(cls, thinking: str, name: str, input: dict[str, Any]) -> Reply:
        return cls([ThinkingBlock(thinking), ToolUseBlock(name, input)])


@dataclass(frozen=True)
class Fault:
    """A misbehaviour of Cortex, consumed one per inference request before any scripted reply.

    Faults that abort the answer (status, cut stream, malformed SSE, 200-with-error, reset) leave
    the next scripted reply queued, so a client's retry gets it; faults that still answer (stalls,
    slow pacing) consume the reply they deliver.
    """

    kind: str
    http_status: int = 200
    message: str | None = None
    code: str | None = None
    after_events: int = 0
    seconds: float = 0.0
    token_delay: float | None = None
    retry_after: str | None = None  # a Retry-After header on a status fault, as given

    @property
    def delivers_reply(self) -> bool:
        return self.kind in ("stall_before_first_byte", "stall_mid_stream", "slow")

    @classmethod
    def status(
        cls,
        status: int,
        message: str | None = None,
        code: str | None = None,
        *,
        retry_after: float | str | None = None,
    ) -> Fault:
        # Cortex documents no Retry-After (cortex-api.md); a proxy in front of it may send one.
        after = None if retry_after is None else str(retry_after)
        return cls("status", http_status=status, message=message, code=code, retry_after=after)

    @classmethod
    def throttled_400(cls) -> Fault:
        # Cortex dresses a throttle as a 400 with these words; clients must retry it like a 429.
        return cls(
            "status", http_status=400, message="all requests were throttled by remote service"
        )

    @classmethod
    def cut_stream(cls, after_events: int) -> Fault:
        return cls("cut_stream", after_events=after_events)

    @classmethod
    def stall_before_first_byte(cls, seconds: float) -> Fault:
        return cls("stall_before_first_byte", seconds=seconds)

    @classmethod
    def stall_mid_stream(cls, after_events: int, seconds: float) -> Fault:
        return cls("stall_mid_stream", after_events=after_events, seconds=seconds)

    @classmethod
    def slow(cls, token_delay: float) -> Fault:
        return cls("slow", token_delay=token_delay)

    @classmethod
    def malformed_sse(cls) -> Fault:
        return cls("malformed_sse")

    @classmethod
    def ok_with_error_body(cls, code: str = "390112", message: str | None = None) -> Fault:
        # Snowflake's session-token quirk: HTTP 200 whose body is an error; nothing was performed.
        return cls(
            "ok_with_error_body",
            code=code,
            message=message or "Your session has expired. Please login again.",
        )

    @classmethod
    def connection_reset(cls) -> Fault:
        return cls("connection_reset")

    @classmethod
    def crlf_split(cls) -> Fault:
        """The stream with CRLF line ends, every CRLF split across two TCP writes (issue 11, L2)."""
        return cls("crlf_split")

    @classmethod
    def endless_event(cls, megabytes: int) -> Fault:
        """One event that never ends: ``megabytes`` MiB without a blank line (issue 11, L3)."""
        return cls("endless_event", after_events=megabytes)
