"""The Anthropic → Chat route's request: an Anthropic Messages request as a Chat Completions request.

Cortex's Messages API serves Claude only; every other model (``openai-gpt-4.1``,
``llama4-maverick``, ...) is reachable through ``POST /api/v2/cortex/v1/chat/completions``. This
module rewrites a whole Anthropic request into that dialect so Claude Code can run on those models,
and so Claude itself still works on accounts where ``/v1/messages`` is missing. Pure functions, no
I/O; the answer goes back through :mod:`.anthropic_chat_answer`.

Cortex's Chat Completions rules followed here (see ``cortex-api.md``): ``max_completion_tokens``,
never ``max_tokens`` (an error, or silently ignored); never ``store``/``service_tier`` (errors for
every family); ``tools`` and images are errors for Llama, Mistral, DeepSeek and Snowflake models, so
we refuse them first with a message that says what to do; Claude takes thinking as OpenRouter-style
``reasoning``, OpenAI models take ``reasoning_effort``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import invalid_request
from .thinking import in_chat_tool_loop

if TYPE_CHECKING:
    from ..snowflake.models import ModelInfo

# Named in refusals so the user knows what to switch to; both call tools and read images on Cortex.
MODELS_THAT_CAN = "claude-sonnet-4-5 or openai-gpt-4.1"

# Anthropic's effort scale has "max"; OpenAI's and OpenRouter's stop at "high".
_EFFORT_TO_OPENAI = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "high",
}

# Anthropic requires a thinking budget of at least 1024 tokens, below max_tokens.
_MIN_THINKING_BUDGET = 1024


def anthropic_to_chat_request(
    body: Mapping[str, Any], *, cortex_model: str, model: ModelInfo
) -> dict[str, Any]:
    """Translate an (already validated) Anthropic Messages body into a Chat Completions body.

    The result is built from scratch, so fields Cortex refuses (``max_tokens``, ``store``,
    ``service_tier``, ``metadata``) can never leak through.
    """
    keep_cache_control = (
        model.is_claude
    )  # cache_control on content parts is a Claude-only extension
    messages: list[dict[str, Any]] = []
    system = _system_text_parts(body.get("system"), keep_cache_control)
    if system:
        messages.append({"role": "system", "content": _collapse_text_parts(system)})
    for message in body.get("messages") or []:
        messages.extend(_translate_message(message, model, keep_cache_control))

    request: dict[str, Any] = {"model": cortex_model, "messages": messages}

    tools = [_translate_tool(tool) for tool in body.get("tools") or [] if _is_client_tool(tool)]
    if tools:
        if not model.supports_tools:
            raise invalid_request(
                f"model {model.name} cannot call tools on Cortex; pick a model that can "
                f"(e.g. {MODELS_THAT_CAN})",
                param="tools",
            )
        request["tools"] = tools
        tool_choice = _translate_tool_choice(body.get("tool_choice"))
        if tool_choice is not None:
            request["tool_choice"] = tool_choice

    ceiling = model.max_output_tokens
    asked = body.get("max_tokens")
    max_completion_tokens = min(asked, ceiling) if isinstance(asked, int) and asked > 0 else ceiling
    request["max_completion_tokens"] = max_completion_tokens

    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            request[key] = body[key]
    if body.get("stop_sequences"):
        request["stop"] = list(body["stop_sequences"])

    reasoning = _reasoning_fields(body, model, max_completion_tokens)
    if model.is_claude and in_chat_tool_loop(messages):
        reasoning = {}  # Claude's thinking cannot be sent back through Chat Completions
    request.update(reasoning)
    response_format = _response_format(body)
    if response_format:
        request["response_format"] = response_format

    if body.get("stream"):
        request["stream"] = True
        # Cortex sends usage only on a final chunk when asked; the usage ledger and Claude Code's
        # context meter both need it.
        request["stream_options"] = {"include_usage": True}
    return request


# --- messages -----------------------------------------------------------------------------------


def _translate_message(
    message: Mapping[str, Any], model: ModelInfo, keep_cache_control: bool
) -> list[dict[str, Any]]:
    role = message.get("role")
    content = message.get("content")
    blocks: list[Mapping[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    )
    if role == "assistant":
        return _translate_assistant(blocks, keep_cache_control)
    if role == "system":
        # Claude Code puts a `role: "system"` message inside `messages` (see clients.md); Chat
        # Completions has a place for it where it stands.
        parts = _system_text_parts(content, keep_cache_control)
        return [{"role": "system", "content": _collapse_text_parts(parts)}] if parts else []
    return _translate_user(blocks, model, keep_cache_control)


def _translate_user(
    blocks: list[Mapping[str, Any]], model: ModelInfo, keep_cache_control: bool
) -> list[dict[str, Any]]:
    # Chat Completions wants `tool` messages right after the assistant message that called the
    # tools, so tool results go first, before whatever else the user said in that turn.
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "tool_result":
            tool_messages.append(_translate_tool_result(block, keep_cache_control))
        elif kind == "text":
            if block.get("text"):
                parts.append(_text_part(block, keep_cache_control))
        elif kind == "image":
            if not model.supports_images:
                raise invalid_request(
                    f"model {model.name} cannot read images on Cortex; pick a model that can "
                    f"(e.g. {MODELS_THAT_CAN})",
                    param="messages",
                )
            parts.append(_image_part(block, keep_cache_control))
        elif kind == "document":
            parts.append(_document_part(block))
        # Other block kinds (server tool results, search results, ...) have no Chat Completions
        # form.
    messages = tool_messages
    if parts:
        messages.append({"role": "user", "content": _collapse_text_parts(parts)})
    return messages


def _translate_assistant(
    blocks: list[Mapping[str, Any]], keep_cache_control: bool
) -> list[dict[str, Any]]:
    text_parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            text_parts.append(_text_part(block, keep_cache_control))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(
                            block.get("input") or {}, ensure_ascii=False, allow_nan=False
                        ),
                    },
                }
            )
        # thinking / redacted_thinking blocks are dropped: Chat Completions has no place for their
        # signatures. Claude accepts a history without them except inside a tool loop, where
        # thinking is turned off for the request (thinking.in_chat_tool_loop).
    if not text_parts and not tool_calls:
        return []
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI's convention for an assistant turn that only calls tools is `content: null`; an
        # empty string could become an empty text block, which Claude refuses.
        "content": _collapse_text_parts(text_parts) if text_parts else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _translate_tool_result(block: Mapping[str, Any], keep_cache_control: bool) -> dict[str, Any]:
    content = block.get("content")
    pieces: list[str] = []
    if isinstance(content, str):
        pieces.append(content)
    else:
        for inner in content or []:
            if inner.get("type") == "text":
                pieces.append(inner.get("text") or "")
            elif inner.get("type") == "image":
                # `tool` messages carry text only in Chat Completions.
                pieces.append("[an image returned by the tool was omitted: not supported here]")
    text = "\n".join(piece for piece in pieces if piece)
    if block.get("is_error"):
        # Chat Completions has no error flag on tool results; the model has to read it in the text.
        text = f"Error: {text}" if text else "Error: the tool call failed."
    message: dict[str, Any] = {"role": "tool", "tool_call_id": block.get("tool_use_id")}
    if keep_cache_control and block.get("cache_control"):
        # Claude Code puts its moving cache breakpoint on the last tool result; keeping it keeps
        # caching.
        message["content"] = [
            {"type": "text", "text": text, "cache_control": block["cache_control"]}
        ]
    else:
        message["content"] = text
    return message


# --- content parts ------------------------------------------------------------------------------


def _text_part(block: Mapping[str, Any], keep_cache_control: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": block.get("text") or ""}
    if keep_cache_control and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _image_part(block: Mapping[str, Any], keep_cache_control: bool) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = source.get("url")
    else:
        raise invalid_request(
            f"image source type {source.get('type')!r} cannot be sent to Cortex; "
            "send the image as base64 or as a URL",
            param="messages",
        )
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if keep_cache_control and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _document_part(block: Mapping[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "text":
        return {"type": "text", "text": source.get("data") or ""}
    title = block.get("title") or "a document"
    return {
        "type": "text",
        "text": f"[{title} was omitted: documents cannot be sent to this model]",
    }


def _system_text_parts(system: Any, keep_cache_control: bool) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    return [
        _text_part(block, keep_cache_control)
        for block in system or []
        if block.get("type") == "text" and block.get("text")
    ]


def _collapse_text_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A plain string when the parts are only unmarked text, else the parts themselves."""
    if all(part["type"] == "text" and "cache_control" not in part for part in parts):
        return "\n\n".join(part["text"] for part in parts) if len(parts) > 1 else parts[0]["text"]
    return parts


# --- tools ----------------------------------------------------------------------------------------


def _is_client_tool(tool: Mapping[str, Any]) -> bool:
    # Anthropic server tools (web_search_20250305, code_execution_..., ...) run on Anthropic's side
    # and have no schema; Cortex cannot run them.
    return tool.get("type") in (None, "custom")


def _translate_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": tool.get("name"),
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _translate_tool_choice(choice: Any) -> Any:
    if not isinstance(choice, Mapping):
        return None
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if kind in ("auto", "none"):
        return kind
    return None


# --- thinking and structured output -------------------------------------------------------------


def _reasoning_fields(
    body: Mapping[str, Any], model: ModelInfo, max_completion_tokens: int
) -> dict[str, Any]:
    thinking = body.get("thinking") if isinstance(body.get("thinking"), Mapping) else {}
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    kind = thinking.get("type")
    thinking_on = kind in ("enabled", "adaptive")

    if model.family == "claude":
        if not thinking_on or not model.supports_thinking:
            return {}
        if kind == "adaptive":
            return {"reasoning": {"effort": _EFFORT_TO_OPENAI.get(effort or "medium", "medium")}}
        # Claude Code asks for a budget of max_tokens − 1 (e.g. 31,999); once max_tokens is clamped
        # to the model's ceiling that budget would leave no room for the answer, so keep half for
        # it.
        budget = thinking.get("budget_tokens") or _MIN_THINKING_BUDGET
        if budget >= max_completion_tokens:
            budget = max_completion_tokens // 2
        if budget < _MIN_THINKING_BUDGET:
            return {}
        return {"reasoning": {"max_tokens": budget}}

    if model.family == "openai":
        if not (model.supports_thinking or model.supports_effort):
            return {}
        if effort:
            return {"reasoning_effort": _EFFORT_TO_OPENAI.get(effort, "medium")}
        if not thinking_on:
            return {}
        if kind == "adaptive":
            return {"reasoning_effort": "medium"}
        budget = thinking.get("budget_tokens") or 0
        if budget < 4_000:
            return {"reasoning_effort": "low"}
        return {"reasoning_effort": "medium" if budget < 16_000 else "high"}

    # Llama, Mistral, DeepSeek, Snowflake: no documented thinking control; DeepSeek-R1 reasons
    # anyway.
    return {}


def _response_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    # Anthropic structured outputs (`output_config.format`, formerly `output_format`) map onto
    # `response_format: json_schema`, the only kind Cortex takes for Claude.
    output_config = body.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, Mapping) else None
    fmt = fmt or body.get("output_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": fmt.get("schema") or {}, "strict": True},
    }
