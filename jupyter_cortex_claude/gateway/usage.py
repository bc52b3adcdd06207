"""What one gateway request cost: tokens, timing, outcome. Never prompt or answer text."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import GatewayError

log = logging.getLogger("jupyter_cortex_claude.gateway")

# nginx's "client closed request": the client hung up before the answer was complete.
CLIENT_CLOSED_REQUEST = 499


@dataclass
class UsageRecord:
    endpoint: str  # "anthropic" | "openai"
    client: str  # e.g. "claude-cli/2.1.330", from the User-Agent
    client_model: str
    cortex_model: str
    stream: bool
    started: float = field(default_factory=time.time)
    status: int = 200
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    latency_ms: float | None = None
    first_token_ms: float | None = None
    retries: int = 0
    error: str | None = None
    request_id: str | None = None

    def add_anthropic_usage(self, usage: Any) -> None:
        """Anthropic usage objects: message_start carries input tokens, message_delta the totals."""
        if not isinstance(usage, dict):
            return
        for key, attribute in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_input_tokens", "cache_read_tokens"),
            ("cache_creation_input_tokens", "cache_write_tokens"),
        ):
            value = usage.get(key)
            if isinstance(value, int) and value > getattr(self, attribute):
                setattr(self, attribute, value)

    def add_openai_usage(self, usage: Any) -> None:
        """Chat Completions usage: ``prompt_tokens`` (cached part included), ``completion_tokens``."""
        if not isinstance(usage, dict):
            return
        completion = usage.get("completion_tokens")
        if isinstance(completion, int):
            self.output_tokens = completion
        self._add_openai_input(usage.get("prompt_tokens"), usage.get("prompt_tokens_details"))

    def add_responses_usage(self, usage: Any) -> None:
        """OpenAI Responses usage: ``input_tokens`` (cached part included), ``output_tokens``."""
        if not isinstance(usage, dict):
            return
        if isinstance(usage.get("output_tokens"), int):
            self.output_tokens = usage["output_tokens"]
        self._add_openai_input(usage.get("input_tokens"), usage.get("input_tokens_details"))

    def _add_openai_input(self, prompt: Any, details: Any) -> None:
        """Store input as Anthropic and Snowflake's ``TOKENS_GRANULAR`` count it, without the cache.

        OpenAI's prompt count includes its cached tokens, Anthropic's ``input_tokens`` and
        Snowflake's ``input`` do not (gateway/prices.py prices the parts apart: counted in both,
        cached tokens were billed twice). Cortex reports Claude's cache reads and writes together
        as ``cached_tokens``; an OpenRouter-style ``cache_write_tokens`` is split out when present
        (as anthropic_chat_answer.anthropic_usage does).
        """
        details = details if isinstance(details, dict) else {}
        cached = details.get("cached_tokens")
        cached = cached if isinstance(cached, int) and cached > 0 else 0
        written = details.get("cache_write_tokens")
        written = min(written, cached) if isinstance(written, int) and written > 0 else 0
        if isinstance(prompt, int):
            self.input_tokens = max(prompt - cached, 0)
        if "cached_tokens" in details:
            self.cache_read_tokens = cached - written
            self.cache_write_tokens = written


class UsageRecorder:
    """Hands each finished :class:`UsageRecord` to the ledger (or whatever ``on_usage`` is)."""

    def __init__(self, on_usage: Callable[[UsageRecord], None] | None = None) -> None:
        self.on_usage = on_usage

    def record(self, record: UsageRecord) -> None:
        if self.on_usage is not None:
            try:
                self.on_usage(record)
            except Exception:  # the ledger must never break a request
                log.exception("usage ledger failed")

    def failed(self, record: UsageRecord, error: GatewayError) -> None:
        record.status = error.status
        record.error = error.error_type or str(error.status)
        record.request_id = error.request_id or record.request_id
        self.record(record)

    def finished(self, record: UsageRecord, started: float) -> None:
        """``started``: the ``time.monotonic()`` at which the request to Cortex was sent."""
        record.latency_ms = (time.monotonic() - started) * 1000
        self.record(record)

    def client_left(self, record: UsageRecord, started: float) -> None:
        """The client hung up mid-answer: the tokens streamed so far are still the user's."""
        record.status = CLIENT_CLOSED_REQUEST
        record.error = "client disconnected"
        self.finished(record, started)
