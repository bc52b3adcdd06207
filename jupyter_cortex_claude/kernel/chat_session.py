"""One conversation with a Claude model through the gateway, shared by the cell magic and the widget.

Messages are kept in the kernel (never on disk): each request sends the whole conversation, as the
Messages API is stateless. An exchange joins the conversation only once its answer is complete, so
a stopped or failed answer never leaves a dangling user turn (Cortex refuses two user turns in a
row only after our shaping merges them, but a half answer would mislead the model anyway).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .messages_client import Endpoint, HangUp, StreamedAnswer, stream_message

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS = 8192


def default_model() -> str:
    return os.environ.get("CORTEX_CLAUDE_MODEL") or DEFAULT_MODEL


@dataclass
class ChatSession:
    model: str = field(default_factory=default_model)
    system: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    messages: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    def reset(self) -> None:
        self.messages.clear()
        self.input_tokens = 0
        self.output_tokens = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def request_body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [*self.messages, {"role": "user", "content": prompt}],
        }
        if self.system:
            body["system"] = self.system
        return body

    def ask(
        self,
        endpoint: Endpoint,
        prompt: str,
        on_text: Callable[[StreamedAnswer], None],
        hang_up: HangUp | None = None,
    ) -> StreamedAnswer:
        """Streams one answer, calling ``on_text`` after each text delta.

        Returns early (``answer.stop_reason == "stopped"``) once ``hang_up`` was called (from any
        thread: it ends the read at once); an exception (KeyboardInterrupt included) closes the
        connection on its way out.
        """
        answer = StreamedAnswer()
        events = stream_message(endpoint, self.request_body(prompt), hang_up=hang_up)
        completed = False
        try:
            for event in events:
                if answer.apply(event):
                    on_text(answer)
                if hang_up is not None and hang_up.requested:
                    answer.stop_reason = "stopped"
                    break
            else:
                completed = True
        except httpx.HTTPError:
            if hang_up is None or not hang_up.requested:
                raise
            answer.stop_reason = "stopped"  # the read we cut short
        finally:
            events.close()  # closes the connection: the gateway then closes the Cortex call
            self.input_tokens += answer.input_tokens
            self.output_tokens += answer.output_tokens
        if completed:
            self.messages.append({"role": "user", "content": prompt})
            self.messages.append({"role": "assistant", "content": answer.text or "(no text)"})
        return answer
