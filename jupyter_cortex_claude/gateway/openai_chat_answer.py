"""The OpenAI → Chat route's answer: Cortex's completion, completed where it is short, or made here.

- Claude models get no ``finish_reason`` from Cortex: :class:`FinishReasonFixer` (streaming) and
  :func:`fill_in_chat_completion` derive it, and show the model name the client sent.
  :class:`OpenAIChunkWriter` is this route's :class:`~.cortex_chat.ChunkConverter`: the fixed
  chunks as ``data:`` lines, ``data: [DONE]`` at the end, one ``data: {"error": ...}`` line (and no
  ``[DONE]``) for a broken stream.
- A 400 "conversation complete" means the model had nothing to add
  (:func:`.cortex_chat.is_conversation_complete_error`): :func:`empty_stop_completion` or
  :func:`empty_stop_chunks` answer instead, as they do for a prefill (see
  :func:`.openai_chat_request.answer_for_prefill`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .json_bodies import dumps_finite
from .replies import GatewayReply, JsonReply, StreamReply, frames_of

if TYPE_CHECKING:
    from ..errors import GatewayError
    from ..snowflake.models import ModelInfo

DONE_LINE = b"data: [DONE]\n\n"


def data_line(payload: Mapping[str, Any]) -> bytes:
    """One OpenAI-style SSE event: a compact JSON ``data:`` line and a blank line."""
    return b"data: " + dumps_finite(payload).encode() + b"\n\n"


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _zero_usage() -> dict[str, Any]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def empty_stop_completion(client_model: str) -> dict[str, Any]:
    """A ``chat.completion`` with an empty assistant message and ``finish_reason: "stop"``."""
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": client_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _zero_usage(),
    }


def empty_stop_chunks(client_model: str, *, include_usage: bool) -> list[dict[str, Any]]:
    """The streaming equivalent of :func:`empty_stop_completion` (without the ``[DONE]`` line)."""
    base = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": client_model,
    }
    chunks = [
        {**base, "choices": [_choice({"role": "assistant", "content": ""}, None)]},
        {**base, "choices": [_choice({}, "stop")]},
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _zero_usage()})
    return chunks


def empty_stop_reply(client_model: str, *, stream: bool, include_usage: bool) -> GatewayReply:
    """The empty stop as the client asked for it: one completion, or its stream and ``[DONE]``."""
    if not stream:
        return JsonReply(200, empty_stop_completion(client_model))
    chunks = empty_stop_chunks(client_model, include_usage=include_usage)
    return StreamReply(frames_of([*map(data_line, chunks), DONE_LINE]))


def _choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


# --- finish_reason ------------------------------------------------------------------------------


def derived_finish_reason(saw_tool_calls: bool, completion_tokens: int, limit: int) -> str:
    if saw_tool_calls:
        return "tool_calls"
    if completion_tokens and completion_tokens >= limit:
        return "length"
    return "stop"


class FinishReasonFixer:
    """Per streaming response: adds the ``finish_reason`` Cortex omits; shows the client's model.

    Claude on Cortex never sends ``finish_reason``; any model's is kept when Cortex sends one. The
    derived one goes on a final chunk with an empty delta, just before the usage chunk (whose token
    count tells ``length`` from ``stop``), or from :meth:`finish` when no usage chunk came. The
    usage chunk, always requested upstream for the ledger, reaches the client only if it asked.
    Writing ``data: [DONE]`` stays with the caller.
    """

    def __init__(
        self,
        *,
        model: ModelInfo,
        max_completion_tokens: int,
        client_model: str,
        client_wants_usage: bool,
    ) -> None:
        self.model = model
        self.max_completion_tokens = max_completion_tokens
        self.client_model = client_model
        self.client_wants_usage = client_wants_usage
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._saw_tool_calls = False
        self._template: dict[str, Any] = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }

    def process(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        chunk = dict(chunk)
        for key in ("id", "created"):
            if chunk.get(key):
                self._template[key] = chunk[key]
        chunk["model"] = self.client_model
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        if not self.client_wants_usage:
            chunk.pop("usage", None)

        choices = chunk.get("choices") or []
        for choice in choices:
            delta = choice.get("delta") or {}
            if delta.get("tool_calls"):
                self._saw_tool_calls = True
            if choice.get("finish_reason") and self.finish_reason is None:
                self.finish_reason = choice["finish_reason"]

        out: list[dict[str, Any]] = []
        if not choices:
            if usage and self.finish_reason is None:
                out.append(self._final_chunk())
            if usage and self.client_wants_usage:
                out.append(chunk)
            return out
        out.append(chunk)
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The final chunk with a derived ``finish_reason``, if none was sent yet."""
        if self.finish_reason is not None:
            return []
        return [self._final_chunk()]

    def _final_chunk(self) -> dict[str, Any]:
        completion_tokens = (self.usage or {}).get("completion_tokens") or 0
        self.finish_reason = derived_finish_reason(
            self._saw_tool_calls, completion_tokens, self.max_completion_tokens
        )
        return {
            **self._template,
            "model": self.client_model,
            "choices": [_choice({}, self.finish_reason)],
        }


class OpenAIChunkWriter:
    """Cortex's chunks as our OpenAI endpoint's stream, through a :class:`FinishReasonFixer`."""

    def __init__(self, fixer: FinishReasonFixer) -> None:
        self._fixer = fixer

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        return [data_line(out) for out in self._fixer.process(chunk)]

    def finish(self) -> list[bytes]:
        return [*map(data_line, self._fixer.finish()), DONE_LINE]

    def error(self, failure: GatewayError) -> bytes:
        # The OpenAI SDKs raise APIError on such an event; the missing [DONE] tells any other
        # client that the answer is incomplete.
        return data_line(failure.openai_body())


def fill_in_chat_completion(
    resp: dict[str, Any], *, model: ModelInfo, max_completion_tokens: int, client_model: str
) -> dict[str, Any]:
    """A non-streaming answer with ``finish_reason`` filled in, showing the client's model name."""
    completed = dict(resp)
    completed["model"] = client_model
    completion_tokens = (resp.get("usage") or {}).get("completion_tokens") or 0
    choices = []
    for choice in resp.get("choices") or []:
        choice = dict(choice)
        message = dict(choice.get("message") or {})
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        choice["message"] = message
        if not choice.get("finish_reason"):
            choice["finish_reason"] = derived_finish_reason(
                bool(message.get("tool_calls")), completion_tokens, max_completion_tokens
            )
        choices.append(choice)
    completed["choices"] = choices
    return completed
