"""The Responses → Cortex Responses route's request: what Cortex's preview Responses API gets.

Opt-in (``c.CortexClaude.responses_upstream = "responses"``) and for OpenAI models only: Snowflake's
release note of Oct 23, 2026 ("Responses API for the Cortex REST API (Preview)") documents the
endpoint, OpenAI models, a stateless API (the whole conversation with every request) and no
``previous_response_id`` or background mode. It documents no field-level support, so this module
sends what Cortex documents for OpenAI models on Chat Completions, in Responses form, and nothing
else. Each choice:

- The request was validated and translated first (:func:`.openai_responses_request.responses_to_chat`)
  and chat-shaped (:func:`.openai_chat_request.shape_chat_request`), so both upstreams refuse the
  same bad requests with the same 400s, resolve the model the same way and clamp
  ``max_output_tokens`` to the same ceiling (and raise it to OpenAI's minimum of 16).
- ``input`` items are rebuilt with the fields the API defines and nothing else: Codex's own item
  ``id``s and ``status`` go (nothing is stored upstream to refer to), and so do ``reasoning`` items
  and the records of hosted tool calls (``web_search_call``, ``tool_search_call``): without
  ``include: ["reasoning.encrypted_content"]`` (dropped, below) a reasoning item cannot be resolved
  by a stateless API. ``developer`` messages stay: the Responses API has the role.
- Function tools keep ``strict`` as sent: the Responses API's default is ``strict: true``, which
  Codex's schemas would not pass. ``custom`` tools (``apply_patch``'s Lark grammar) stay: GPT-5
  models take them natively, and their calls come back as ``custom_tool_call`` items untouched.
  A ``namespace`` tool is flattened to ``<namespace>__<name>`` functions, as on the Chat route
  (namespaces serve OpenAI's hosted tool search); calls are mapped back in the answer.
- Hosted tools (``web_search``, ``tool_search``, ``file_search`` …) are dropped: Cortex runs no
  OpenAI-hosted tool. The route logs which, once per session.
- ``include`` (``reasoning.encrypted_content``: reasoning encrypted with OpenAI's keys for the
  client to send back), ``store`` (nothing is stored; an explicit value is not needed),
  ``prompt_cache_key``, ``client_metadata``, ``metadata``, ``service_tier`` (an error on Chat
  Completions for every family), ``safety_identifier``, ``user``, ``truncation`` and
  ``text.verbosity`` are dropped: none is documented on Cortex.
- ``reasoning``: ``effort`` as the chat shaping settled it (``xhigh`` → ``high``, ``none`` →
  ``minimal``; Cortex documents ``minimal|low|medium|high``), ``summary`` kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .openai_chat_request import ShapedChatRequest
from .openai_responses_request import (
    DROPPED_ITEM_TYPES,
    NAMESPACE_SEPARATOR,
    ChatTranslation,
    ToolNames,
)

# OpenAI's Responses API refuses max_output_tokens below 16 ("integer below minimum value").
MIN_OUTPUT_TOKENS = 16
_SUMMARIES = frozenset({"auto", "concise", "detailed"})
_TEXT_FORMATS = frozenset({"text", "json_schema", "json_object"})
_KEPT_FIELDS = ("temperature", "top_p")
# Sent when the client did, never sent otherwise; everything else in the body is dropped.
_SHAPED_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "stream",
        "max_output_tokens",
        "reasoning",
        "text",
        *_KEPT_FIELDS,
    }
)


@dataclass
class ShapedResponsesRequest:
    """A request for Cortex's Responses API, and what its answer needs to map back."""

    body: dict[str, Any]
    client_model: str
    cortex_model: str
    stream: bool
    tools: ToolNames
    dropped_tools: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    large: bool = False  # a large client body: encoded off the event loop (json_bodies.off_loop)


def shape_cortex_responses_request(
    body: Mapping[str, Any], translation: ChatTranslation, chat: ShapedChatRequest
) -> ShapedResponsesRequest:
    """``body`` (already validated by the translation to Chat) shaped for Cortex's Responses API."""
    changes: list[str] = []
    shaped: dict[str, Any] = {
        "model": chat.cortex_model,
        "input": _input(body["input"], translation.tools, changes),
        "stream": chat.stream,
    }
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        shaped["instructions"] = body["instructions"]
    tools = _tools(body.get("tools") or [])
    if tools:
        shaped["tools"] = tools
        tool_choice = _tool_choice(body.get("tool_choice"), translation.tools)
        if tool_choice is not None:
            shaped["tool_choice"] = tool_choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            shaped["parallel_tool_calls"] = body["parallel_tool_calls"]
    if "max_completion_tokens" in chat.body:
        limit = chat.body["max_completion_tokens"]
        if limit < MIN_OUTPUT_TOKENS:
            changes.append(f"max_output_tokens {limit} raised to {MIN_OUTPUT_TOKENS}")
        shaped["max_output_tokens"] = max(limit, MIN_OUTPUT_TOKENS)
    for name in _KEPT_FIELDS:
        if body.get(name) is not None:
            shaped[name] = body[name]
    reasoning = _reasoning(body.get("reasoning"), chat.body.get("reasoning_effort"))
    if reasoning:
        shaped["reasoning"] = reasoning
    text_format = (body.get("text") or {}).get("format")
    if isinstance(text_format, Mapping) and text_format.get("type") in _TEXT_FORMATS:
        shaped["text"] = {"format": text_format}
    if translation.dropped_tools:
        changes.append(f"dropped hosted tools {', '.join(translation.dropped_tools)}")
    dropped = sorted(set(body) - _SHAPED_FIELDS)
    if dropped:
        changes.append(f"removed {', '.join(dropped)}")
    if chat.cortex_model != chat.client_model:
        changes.append(f"model {chat.client_model} -> {chat.cortex_model}")
    return ShapedResponsesRequest(
        body=shaped,
        client_model=chat.client_model,
        cortex_model=chat.cortex_model,
        stream=chat.stream,
        tools=translation.tools,
        dropped_tools=translation.dropped_tools,
        changes=changes,
        large=chat.large,
    )


# --- input items ----------------------------------------------------------------------------------


def _input(input_: Any, names: ToolNames, changes: list[str]) -> str | list[dict[str, Any]]:
    if isinstance(input_, str):
        return input_
    items: list[dict[str, Any]] = []
    for position, item in enumerate(input_):
        kind = item.get("type", "message")
        if kind == "message":
            items.append(_message(item))
        elif kind == "function_call":
            namespace = item.get("namespace")
            name = names.flat_name(item["name"], namespace if isinstance(namespace, str) else None)
            items.append(
                {
                    "type": kind,
                    "call_id": item["call_id"],
                    "name": name,
                    "arguments": item["arguments"],
                }
            )
        elif kind == "custom_tool_call":
            items.append(
                {
                    "type": kind,
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "input": item["input"],
                }
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            items.append(
                {"type": kind, "call_id": item["call_id"], "output": _output(item["output"])}
            )
        elif kind in DROPPED_ITEM_TYPES:
            changes.append(f"input[{position}]: dropped {kind} item")
    return items


def _message(item: Mapping[str, Any]) -> dict[str, Any]:
    role, content = item["role"], item["content"]
    if isinstance(content, list):
        content = [_part(part, assistant=role == "assistant") for part in content]
    return {"type": "message", "role": role, "content": content}


def _part(part: Mapping[str, Any], *, assistant: bool) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "input_image":
        image = {"type": kind, "image_url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return image
    text = part.get("refusal") if kind == "refusal" else part.get("text")
    return {"type": "output_text" if assistant else "input_text", "text": str(text or "")}


def _output(output: Any) -> str | list[dict[str, Any]]:
    if isinstance(output, str):
        return output
    return [_part(part, assistant=False) for part in output]


# --- tools ----------------------------------------------------------------------------------------


def _tools(tools: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    shaped: list[dict[str, Any]] = []
    for tool in tools:
        kind = tool.get("type")
        if kind == "function":
            shaped.append(_function(tool, tool["name"]))
        elif kind == "namespace":
            for function in tool["tools"]:
                flat = f"{tool['name']}{NAMESPACE_SEPARATOR}{function['name']}"
                shaped.append(_function(function, flat))
        elif kind == "custom":
            custom = {"type": "custom", "name": tool["name"]}
            for key in ("description", "format"):
                if tool.get(key):
                    custom[key] = tool[key]
            shaped.append(custom)
        # else: a hosted tool, dropped; the translation refused every other type.
    return shaped


def _function(tool: Mapping[str, Any], name: str) -> dict[str, Any]:
    function: dict[str, Any] = {
        "type": "function",
        "name": name,
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = str(tool["description"])
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return function


def _tool_choice(choice: Any, names: ToolNames) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {
            "type": "function",
            "name": names.flat_name(choice["name"], choice.get("namespace")),
        }
    if isinstance(choice, Mapping) and choice.get("type") == "custom":
        return {"type": "custom", "name": choice["name"]}
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        return choice.get("mode") if choice.get("mode") in ("auto", "required") else "auto"
    return None  # absent, or a hosted tool's choice (the translation refused the others)


def _reasoning(reasoning: Any, effort: Any) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    if isinstance(effort, str):
        shaped["effort"] = effort
    summary = reasoning.get("summary") if isinstance(reasoning, Mapping) else None
    if summary in _SUMMARIES:
        shaped["summary"] = summary
    return shaped
