"""The OpenAI Responses → Chat route's answer: Cortex's Chat Completions answers as Responses API
answers (Codex CLI, the openai SDK).

:class:`ResponsesAnswer` turns ``chat.completion.chunk``s into the Responses event sequence, as they
arrive: ``response.created``, ``response.in_progress``, then per output item
``response.output_item.added`` … ``response.output_item.done`` (reasoning as a summary, text as an
``output_text`` part, tool calls as ``function_call`` items with argument deltas, custom tools as
``custom_tool_call`` items), and ``response.completed`` with ``usage``. Every event carries a
``sequence_number``. The ``.done`` events and ``response.completed`` carry the whole item, as the
API defines them, so each item's text is kept until its item is done; nothing waits for the answer
to end before it is sent.

Endings, as Codex reacts to them (``clients.md``, "Codex CLI"):

- a complete answer: ``response.completed``;
- an answer cut by the output limit: ``response.incomplete`` (reason ``max_output_tokens``); Codex
  reports it to the user rather than silently accepting half an answer;
- a broken upstream stream: ``response.failed`` with the error; Codex retries the turn. Never a
  ``response.completed`` after a partial answer.

A non-streaming answer is the same conversion run over the completion's chunks
(:meth:`ResponsesAnswer.from_completion`), so both paths build identical items.
:class:`ResponsesChunkWriter` is this route's :class:`~.cortex_chat.ChunkConverter`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GatewayError
from .cortex_chat import ChatChunkReader, completion_as_chunks
from .openai_chat_answer import derived_finish_reason
from .openai_responses_request import ToolNames, custom_tool_input
from .replies import GatewayReply, JsonReply, StreamReply, frames_of
from .sse import format_event

# Codex decides from response.failed's error code whether to retry (clients.md): a server_error is
# retried, so a cut stream is too; a refused request is not.
_FAILURE_CODES = {429: "rate_limit_exceeded", 503: "server_is_overloaded"}


def response_error(failure: GatewayError) -> dict[str, Any]:
    """The ``error`` of a ``response.failed``, with the code that tells Codex to retry or not."""
    return {"code": _FAILURE_CODES.get(failure.status, "server_error"), "message": failure.message}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class _Item:
    """One output item while it streams."""

    kind: str  # "reasoning" | "message" | "function_call" | "custom_tool_call"
    id: str
    output_index: int
    parts: list[str] = field(default_factory=list)  # text, reasoning or argument pieces
    call_id: str = ""
    name: str = ""
    namespace: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ResponsesAnswer:
    """Per answer: feed Chat chunks (or raw Chat SSE bytes) in, send the Responses events out."""

    def __init__(
        self,
        *,
        client_model: str,
        tools: ToolNames,
        max_completion_tokens: int,
        reasoning: Mapping[str, Any] | None = None,
    ) -> None:
        self.response_id = _new_id("resp")
        self.client_model = client_model
        self.tools = tools
        self.max_completion_tokens = max_completion_tokens
        self.reasoning = dict(reasoning) if reasoning else None
        self.created_at = int(time.time())
        self.output: list[dict[str, Any]] = []  # items done, for the final response object
        self.usage: dict[str, Any] | None = None
        self.status = "in_progress"
        self.error: dict[str, Any] | None = None
        self.incomplete_details: dict[str, Any] | None = None
        self.ended = False
        self._sequence = 0
        self._started = False
        self._open: _Item | None = None  # the reasoning or message item streaming now
        self._calls: dict[int, _Item] = {}  # tool calls by their chunk index, not yet done
        self._finish_reason: str | None = None
        self._saw_tool_calls = False
        self._reader: ChatChunkReader | None = None

    # -- input ----------------------------------------------------------------------------------

    def feed(self, raw: bytes) -> bytes:
        """Raw Chat Completions SSE bytes in, Responses SSE bytes out (a broken stream ends it)."""
        if self._reader is None:
            self._reader = ChatChunkReader()
        try:
            chunks = self._reader.feed(raw)
        except GatewayError as error:
            return self.finish(error)
        return self.chunks(chunks)

    def chunks(self, chunks: Iterable[Mapping[str, Any]]) -> bytes:
        return b"".join(self.chunk(chunk) for chunk in chunks)

    def chunk(self, chunk: Mapping[str, Any]) -> bytes:
        """The events one ``chat.completion.chunk`` makes."""
        if self.ended:
            return b""
        out = self._start()
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = dict(usage)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out += self._reasoning_delta(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._text_delta(content)
            for call in delta.get("tool_calls") or []:
                out += self._tool_call_delta(call)
            if choice.get("finish_reason") and self._finish_reason is None:
                self._finish_reason = choice["finish_reason"]
        return out

    def finish(self, failure: GatewayError | None = None) -> bytes:
        """The closing events: ``response.completed``/``.incomplete``, or ``response.failed``."""
        if self.ended:
            return b""
        if failure is None and self._reader is not None:
            try:
                self._reader.finish()
            except GatewayError as error:
                failure = error
        out = self._start()
        self.ended = True
        if failure is not None:
            # The items streamed so far are not closed: Codex drops them and retries the turn.
            self.status = "failed"
            self.error = response_error(failure)
            return out + self._event("response.failed", response=self.response())
        out += self._close_open() + self._close_calls()
        reason = self._finish_reason or derived_finish_reason(
            self._saw_tool_calls,
            int((self.usage or {}).get("completion_tokens") or 0),
            self.max_completion_tokens,
        )
        if reason in ("length", "content_filter"):
            self.status = "incomplete"
            self.incomplete_details = {
                "reason": "max_output_tokens" if reason == "length" else reason
            }
            return out + self._event("response.incomplete", response=self.response())
        self.status = "completed"
        return out + self._event("response.completed", response=self.response())

    # -- the response object ----------------------------------------------------------------------

    def response(self) -> dict[str, Any]:
        """The ``response`` object as it stands (what the non-streaming endpoint answers)."""
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "model": self.client_model,
            "output": list(self.output),
            "usage": self._responses_usage(),
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "instructions": None,
            "metadata": {},
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": self.reasoning,
            "store": False,
            "tool_choice": "auto",
            "tools": [],
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
        }

    @classmethod
    def from_completion(
        cls, completion: Mapping[str, Any], **settings: Any
    ) -> tuple[ResponsesAnswer, bytes]:
        """A whole ``chat.completion`` converted; the answer and its events (for a stream)."""
        answer = cls(**settings)
        events = answer.chunks(completion_as_chunks(completion)) + answer.finish()
        return answer, events

    def _responses_usage(self) -> dict[str, Any] | None:
        if self.usage is None:
            return None
        prompt = int(self.usage.get("prompt_tokens") or 0)
        completion = int(self.usage.get("completion_tokens") or 0)
        cached = (self.usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        reasoning = (self.usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": int(cached)},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": int(reasoning or 0)},
            "total_tokens": int(self.usage.get("total_tokens") or prompt + completion),
        }

    # -- events -----------------------------------------------------------------------------------

    def _event(self, kind: str, **payload: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **payload}
        self._sequence += 1
        return format_event(kind, data)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._event("response.created", response=self.response()) + self._event(
            "response.in_progress", response=self.response()
        )

    def _next_index(self) -> int:
        return len(self.output) + (self._open is not None) + len(self._calls)

    def _reasoning_delta(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open.kind != "reasoning":
            out += self._close_open() + self._close_calls()
            item = self._open = _Item("reasoning", _new_id("rs"), self._next_index())
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item={"id": item.id, "type": "reasoning", "summary": []},
            )
            out += self._event(
                "response.reasoning_summary_part.added",
                item_id=item.id,
                output_index=item.output_index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        item = self._open
        item.parts.append(text)
        return out + self._event(
            "response.reasoning_summary_text.delta",
            item_id=item.id,
            output_index=item.output_index,
            summary_index=0,
            delta=text,
        )

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open.kind != "message":
            out += self._close_open() + self._close_calls()
            item = self._open = _Item("message", _new_id("msg"), self._next_index())
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item={
                    "id": item.id,
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                },
            )
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            )
        item = self._open
        item.parts.append(text)
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _tool_call_delta(self, call: Mapping[str, Any]) -> bytes:
        self._saw_tool_calls = True
        index = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        item = self._calls.get(index)
        if item is None:
            # A new call: what streamed before it is complete (Cortex streams calls one by one).
            out += self._close_open() + self._close_calls()
            namespace, name = self.tools.client_name(str(function.get("name") or ""))
            kind = "custom_tool_call" if name in self.tools.custom else "function_call"
            item = _Item(
                kind,
                _new_id("ctc" if kind == "custom_tool_call" else "fc"),
                self._next_index(),
                call_id=str(call.get("id") or _new_id("call")),
                name=name,
                namespace=namespace,
            )
            self._calls[index] = item
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item=self._call_item(item, status="in_progress", arguments=""),
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.parts.append(arguments)
            if item.kind == "function_call":
                out += self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.output_index,
                    delta=arguments,
                )
            # A custom tool's raw input is inside a JSON string: sent whole when the call is done.
        return out

    def _call_item(self, item: _Item, *, status: str, arguments: str) -> dict[str, Any]:
        if item.kind == "custom_tool_call":
            raw = custom_tool_input(arguments) if arguments else ""
            return {
                "id": item.id,
                "type": "custom_tool_call",
                "status": status,
                "call_id": item.call_id,
                "name": item.name,
                "input": raw,
            }
        result = {
            "id": item.id,
            "type": "function_call",
            "status": status,
            "call_id": item.call_id,
            "name": item.name,
            "arguments": arguments,
        }
        if item.namespace:
            result["namespace"] = item.namespace
        return result

    # -- closing items ------------------------------------------------------------------------------

    def _close_open(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        text = item.text
        if item.kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            done = {"id": item.id, "type": "reasoning", "summary": [part]}
            out = self._event(
                "response.reasoning_summary_text.done",
                item_id=item.id,
                output_index=item.output_index,
                summary_index=0,
                text=text,
            ) + self._event(
                "response.reasoning_summary_part.done",
                item_id=item.id,
                output_index=item.output_index,
                summary_index=0,
                part=part,
            )
        else:
            part = {"type": "output_text", "text": text, "annotations": []}
            done = {
                "id": item.id,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
            out = self._event(
                "response.output_text.done",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                text=text,
                logprobs=[],
            ) + self._event(
                "response.content_part.done",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part=part,
            )
        self.output.append(done)
        return out + self._event(
            "response.output_item.done", output_index=item.output_index, item=done
        )

    def _close_calls(self) -> bytes:
        out = b""
        for item in sorted(self._calls.values(), key=lambda call: call.output_index):
            arguments = item.text
            done = self._call_item(item, status="completed", arguments=arguments)
            if item.kind == "custom_tool_call":
                out += self._event(
                    "response.custom_tool_call_input.delta",
                    item_id=item.id,
                    output_index=item.output_index,
                    delta=done["input"],
                ) + self._event(
                    "response.custom_tool_call_input.done",
                    item_id=item.id,
                    output_index=item.output_index,
                    input=done["input"],
                )
            else:
                out += self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.output_index,
                    name=item.name,
                    arguments=arguments,
                )
            self.output.append(done)
            out += self._event(
                "response.output_item.done", output_index=item.output_index, item=done
            )
        self._calls.clear()
        return out


class ResponsesChunkWriter:
    """A :class:`ResponsesAnswer` fed the chunks the exchange reads (it records their usage)."""

    def __init__(self, answer: ResponsesAnswer) -> None:
        self.answer = answer

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        return [self.answer.chunk(chunk)]

    def finish(self) -> list[bytes]:
        return [self.answer.finish()]

    def error(self, failure: GatewayError) -> bytes:
        # response.failed: Codex drops the items streamed so far and retries the turn.
        return self.answer.finish(failure)


def empty_response_reply(stream: bool, **settings: Any) -> GatewayReply:
    """A completed response with no output, as the client asked for it (one object or its events)."""
    answer = ResponsesAnswer(**settings)
    events = answer.finish()
    if stream:
        return StreamReply(frames_of([events]))
    return JsonReply(200, answer.response())
