"""The Responses → Cortex Responses route's answer: Cortex's own Responses events, relayed as they come.

Cortex's preview Responses API answers in the client's format already, so its events reach the
client as Cortex sent them, in order, each with Cortex's ``sequence_number``; nothing is added or
taken away from a complete answer. :class:`ResponsesEventRelay` parses only the events it must
read (the ones carrying the ``response`` object, the output items, ``function_call_arguments.done``
and ``error``) and edits two things in them: the ``model`` shown is the id the client asked for,
and a call to a flattened namespace tool (``multi_agent_v1__spawn_agent``) gets its name and
``namespace`` back, as the client offered it. Delta events pass byte for byte.

Endings:

- ``response.completed`` / ``response.incomplete``: the answer's end, relayed;
- ``response.failed`` or an ``error`` event from Cortex: relayed, and the exchange stops reading
  (after an ``error`` event we add a ``response.failed``, the event Codex retries on);
- a stream that ends without any of these, breaks, stalls or sends an event that is not JSON:
  one ``response.failed`` of ours, numbered after the last event relayed. Never a fake
  ``response.completed``.

A whole JSON answer (:data:`RESPONSE`) gets the same two edits (:func:`response_for_client`); when
the client asked for a stream and Cortex answered JSON anyway, :func:`events_of_response` tells it as
the short event sequence of an answer that arrived at once.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import GatewayError, incomplete_answer, malformed_stream
from .exchange import ExpectedAnswer
from .json_bodies import loads_finite
from .openai_responses_answer import response_error
from .openai_responses_request import ToolNames
from .sse import SSESplitter, event_data, event_name, format_event
from .usage import UsageRecord

RESPONSE = ExpectedAnswer(
    fits=lambda answer: (
        isinstance(answer, dict)
        and answer.get("object") == "response"
        and isinstance(answer.get("output"), list)
    ),
    missing="Cortex answered without a response object (expected the Responses API's 'response').",
    add_usage=lambda record, response: record.add_responses_usage(response.get("usage")),
)

_RESPONSE_EVENTS = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)
_ENDINGS = frozenset({"response.completed", "response.incomplete"})
_ITEM_EVENTS = frozenset({"response.output_item.added", "response.output_item.done"})
_READ_EVENTS = _RESPONSE_EVENTS | _ITEM_EVENTS | {"response.function_call_arguments.done", "error"}
_SEQUENCE_NUMBER = re.compile(rb'"sequence_number"\s*:\s*(\d+)')


class ResponsesEventRelay:
    """The :class:`~.exchange.StreamConverter` of this route. One per response; not thread-safe."""

    def __init__(self, client_model: str, tools: ToolNames, usage: UsageRecord) -> None:
        self._client_model = client_model
        self._tools = tools
        self._usage = usage
        self._splitter = SSESplitter()
        self._response: dict[str, Any] = {"object": "response", "output": []}
        self._next_sequence = 0
        self.ended = False
        self.failed = False

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        try:
            events = self._splitter.feed(chunk)
        except GatewayError as oversize:  # one event without an end: never a fake clean end
            return self.finish(oversize)
        for event in events:
            if self.failed or self.ended:
                break
            out.append(self._relay(event))
        return b"".join(out)

    def finish(self, failure: GatewayError | None = None) -> bytes:
        """Nothing after a complete answer; else one ``response.failed``."""
        if self.ended or self.failed:
            return b""
        if failure is None:
            failure = incomplete_answer(
                "response.completed", mid_event=bool(self._splitter.pending.strip())
            )
        return self._fail(failure)

    # -- one event --------------------------------------------------------------------------------

    def _relay(self, event: bytes) -> bytes:
        data = event_data(event).strip()
        name = event_name(event)
        if not data.startswith(b"{") or not data.endswith(b"}"):
            return self._fail(malformed_stream())
        numbered = _SEQUENCE_NUMBER.search(event)
        self._next_sequence = int(numbered.group(1)) + 1 if numbered else self._next_sequence + 1
        if name is not None and name not in _READ_EVENTS:
            return event  # a delta: passed byte for byte
        try:
            payload = loads_finite(data)
        except ValueError:
            return self._fail(malformed_stream())
        if not isinstance(payload, dict):
            return self._fail(malformed_stream())
        kind = payload.get("type") if name is None else name
        if kind not in _READ_EVENTS:
            return event
        if kind == "error":
            message = payload.get("message") or (payload.get("error") or {}).get("message")
            failure = GatewayError(502, f"Cortex reported an error mid-answer: {message}")
            return event + self._fail(failure)
        if self._for_client(kind, payload):
            event = format_event(name, payload)
        if kind in _RESPONSE_EVENTS:
            if isinstance(payload.get("response"), dict):
                self._response = payload["response"]
                self._usage.add_responses_usage(self._response.get("usage"))
            if kind in _ENDINGS:
                self.ended = True
            elif kind == "response.failed":
                self.failed = True
        return event

    def _for_client(self, kind: str, payload: dict[str, Any]) -> bool:
        """Edit ``payload`` for the client in place; True when anything changed."""
        if kind in _RESPONSE_EVENTS:
            response = payload.get("response")
            if not isinstance(response, dict):
                return False
            return _response_for_client(response, self._client_model, self._tools)
        if kind in _ITEM_EVENTS:
            item = payload.get("item")
            return isinstance(item, dict) and _name_call(item, self._tools)
        flat = payload.get("name")  # function_call_arguments.done names the function
        if isinstance(flat, str) and flat in self._tools.namespaced:
            payload["name"] = self._tools.namespaced[flat][1]
            return True
        return False

    def _fail(self, failure: GatewayError) -> bytes:
        self.failed = True
        response = {
            **self._response,
            "status": "failed",
            "error": response_error(failure),
            "model": self._client_model,
        }
        event = format_event(
            "response.failed",
            {
                "type": "response.failed",
                "sequence_number": self._next_sequence,
                "response": response,
            },
        )
        self._next_sequence += 1
        return event


def response_for_client(
    response: dict[str, Any], client_model: str, tools: ToolNames
) -> dict[str, Any]:
    """A whole response from Cortex with the model and namespaced calls as the client knows them."""
    _response_for_client(response, client_model, tools)
    return response


def events_of_response(response: dict[str, Any]) -> bytes:
    """A whole response told as the events of an answer that arrived at once."""
    events: list[bytes] = []

    def emit(kind: str, **payload: Any) -> None:
        data = {"type": kind, "sequence_number": len(events), **payload}
        events.append(format_event(kind, data))

    emit("response.created", response={**response, "status": "in_progress", "output": []})
    emit("response.in_progress", response={**response, "status": "in_progress", "output": []})
    for index, item in enumerate(response.get("output") or []):
        emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    ending = {"completed": "response.completed", "incomplete": "response.incomplete"}
    emit(ending.get(str(response.get("status")), "response.failed"), response=response)
    return b"".join(events)


def _response_for_client(response: dict[str, Any], client_model: str, tools: ToolNames) -> bool:
    changed = False
    if response.get("model") != client_model:
        response["model"] = client_model
        changed = True
    for item in response.get("output") or []:
        if isinstance(item, dict) and _name_call(item, tools):
            changed = True
    return changed


def _name_call(item: dict[str, Any], tools: ToolNames) -> bool:
    """A function call to a flattened namespace tool, named as the client offered the tool."""
    flat = item.get("name")
    if item.get("type") != "function_call" or not isinstance(flat, str):
        return False
    namespace, name = tools.client_name(flat)
    if namespace is None:
        return False
    item["name"], item["namespace"] = name, namespace
    return True
