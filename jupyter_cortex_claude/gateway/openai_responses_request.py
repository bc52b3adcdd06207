"""The OpenAI Responses → Chat route's request: Responses API requests (Codex CLI, the openai SDK's
``responses.create``) as Chat Completions requests, which Cortex serves for every model.

The result is an OpenAI Chat Completions body as a client would send it; the route then shapes it
for Cortex with :func:`.openai_chat_request.shape_chat_request` like any other, so model ids, token
ceilings, tool support and reasoning settings are decided in one place.

What Codex sends (``clients.md``, "Codex CLI"; captures in ``tests/fixtures/codex/``) and where it
goes:

- ``instructions`` and ``developer``/``system`` messages become ``system`` messages.
- ``message`` items keep their order; ``input_text``/``output_text`` parts become ``text`` parts,
  ``input_image`` an ``image_url`` part. Item ``id``s are Codex's own and are not needed upstream.
- ``function_call`` items become the ``tool_calls`` of an assistant message (consecutive calls share
  one message, as parallel calls do); ``function_call_output`` items become ``tool`` messages. The
  ``call_id`` is kept both ways, so the next turn matches.
- Function tools keep name, description and parameters; ``strict`` is dropped (Cortex documents no
  strict mode). A ``namespace`` tool's functions are flattened to ``<namespace>__<name>``, and
  :class:`ToolNames` maps calls back. A ``custom`` (free-form, Lark grammar) tool such as Codex's
  ``apply_patch`` becomes a function taking the raw text as ``input``, with the grammar in its
  description; its calls go back as ``custom_tool_call`` items, so ``apply_patch`` keeps working.
- Hosted tools Cortex cannot run (``web_search``, ``tool_search``, ``file_search`` ...) are dropped;
  the route logs which, once per session.
- ``reasoning.effort`` → ``reasoning_effort`` (the chat shaping turns it into Claude's thinking or
  keeps it for OpenAI models); ``max_output_tokens`` → ``max_completion_tokens``; ``text.format``
  → ``response_format``. ``reasoning`` items (Codex returns the ones we sent) are dropped: Cortex's
  Chat Completions takes no reasoning back.
- The API is used statelessly, as Codex does: ``previous_response_id``, ``conversation``,
  ``background`` and ``item_reference`` need stored responses, which the gateway does not keep, and
  are refused with a 400. ``store``, ``include``, ``prompt_cache_key``, ``client_metadata``,
  ``service_tier``, ``text.verbosity`` and the like are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import invalid_request

NAMESPACE_SEPARATOR = "__"
CUSTOM_INPUT_FIELD = "input"

# Tools the Responses API runs on OpenAI's side; Cortex runs none of them.
HOSTED_TOOL_TYPES = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "tool_search",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "computer_use",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
    }
)

# Fields that carry nothing Cortex could use (or that Cortex refuses, like store and service_tier).
_DROPPED_FIELDS = (
    "store",
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "client_metadata",
    "metadata",
    "service_tier",
    "safety_identifier",
    "user",
    "truncation",
    "top_logprobs",
    "stream_options",
    "max_tool_calls",
    "parallel_tool_calls",
)
# Fields that need a stored response or a server-side job: refused, never silently dropped.
_STATEFUL_FIELDS = ("previous_response_id", "conversation", "prompt")

_PASSED_FIELDS = ("temperature", "top_p")
_KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "stream",
        "max_output_tokens",
        "reasoning",
        "text",
        "background",
        *_DROPPED_FIELDS,
        *_STATEFUL_FIELDS,
        *_PASSED_FIELDS,
    }
)
# Item types that only record something the model did on OpenAI's side.
DROPPED_ITEM_TYPES = frozenset({"reasoning", "web_search_call", "tool_search_call"})
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
# Chat's reasoning_effort takes minimal|low|medium|high (cortex-api.md).
_EFFORTS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium"}
_EFFORTS |= {"high": "high", "xhigh": "high", "max": "high"}


@dataclass(frozen=True)
class ToolNames:
    """The tool names the model sees, mapped back to what the Responses client offered."""

    namespaced: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # flat → (ns, name)
    custom: frozenset[str] = frozenset()

    def flat_name(self, name: str, namespace: str | None) -> str:
        return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name

    def client_name(self, flat: str) -> tuple[str | None, str]:
        """``(namespace, name)`` as the client knows the tool the model called ``flat``."""
        if flat in self.namespaced:
            return self.namespaced[flat]
        return None, flat


@dataclass
class ChatTranslation:
    """A Responses request as a Chat Completions body, and what the answer needs to map back."""

    chat_body: dict[str, Any]
    client_model: str
    stream: bool
    tools: ToolNames
    dropped_tools: list[str] = field(default_factory=list)  # hosted tool types, in offered order
    changes: list[str] = field(default_factory=list)
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None


def responses_to_chat(body: Any) -> ChatTranslation:
    """Translate a Responses request body; bad input → GatewayError 400 in OpenAI's words."""
    if not isinstance(body, Mapping):
        raise invalid_request("the request body must be a JSON object")
    _refuse_stateful(body)
    changes: list[str] = []
    model = body.get("model")
    if model is None:
        model = ""
    if not isinstance(model, str):
        raise invalid_request("'model' must be a string", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid_request("'stream' must be a boolean", param="stream")

    tools, names, dropped = _translate_tools(body.get("tools"))
    chat: dict[str, Any] = {
        "model": model,
        "messages": _translate_input(body.get("input"), body.get("instructions"), names, changes),
        "stream": stream,
    }
    if tools:
        chat["tools"] = tools
        tool_choice = _translate_tool_choice(body.get("tool_choice"), names)
        if tool_choice is not None:
            chat["tool_choice"] = tool_choice
    if dropped:
        changes.append(f"dropped hosted tools {', '.join(dropped)}")

    max_output_tokens = body.get("max_output_tokens")
    if max_output_tokens is not None:
        if isinstance(max_output_tokens, bool) or not isinstance(max_output_tokens, int):
            raise invalid_request(
                "'max_output_tokens' must be a positive integer", param="max_output_tokens"
            )
        chat["max_completion_tokens"] = max_output_tokens
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, Mapping):
        raise invalid_request("'reasoning' must be an object", param="reasoning")
    effort = (reasoning or {}).get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise invalid_request(
                f"reasoning.effort must be one of {', '.join(_EFFORTS)}, got {effort!r}",
                param="reasoning.effort",
            )
        chat["reasoning_effort"] = _EFFORTS[effort]
    response_format = _translate_text_format(body.get("text"), changes)
    if response_format is not None:
        chat["response_format"] = response_format
    for name in _PASSED_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    for name in sorted(set(body) - _KNOWN_FIELDS):
        changes.append(f"ignored unknown field {name}")
    changes.extend(f"removed {name}" for name in _DROPPED_FIELDS if name in body)
    return ChatTranslation(
        chat_body=chat,
        client_model=model,
        stream=stream,
        tools=names,
        dropped_tools=dropped,
        changes=changes,
        reasoning=dict(reasoning) if reasoning else None,
        max_output_tokens=max_output_tokens,
    )


def _refuse_stateful(body: Mapping[str, Any]) -> None:
    for name in _STATEFUL_FIELDS:
        if body.get(name) not in (None, ""):
            raise invalid_request(
                f"'{name}' needs a stored response, and the cortex-claude gateway stores none: "
                "send the whole conversation in 'input' (as Codex does) instead",
                param=name,
            )
    if body.get("background"):
        raise invalid_request(
            "'background' responses are not supported by the cortex-claude gateway: send the "
            "request without it (stream it for long answers)",
            param="background",
        )


# --- input items ---------------------------------------------------------------------------------


def _translate_input(
    input_: Any, instructions: Any, names: ToolNames, changes: list[str]
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_request("'instructions' must be a string", param="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    if isinstance(input_, str):
        messages.append({"role": "user", "content": input_})
        return messages
    if not isinstance(input_, list) or not input_:
        raise invalid_request("'input' must be a string or a non-empty list of items", "input")
    calls_made: set[str] = set()
    for position, item in enumerate(input_):
        where = f"input[{position}]"
        if not isinstance(item, Mapping):
            raise invalid_request(f"{where} must be an object", param="input")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind in ("function_call", "custom_tool_call"):
            call = _tool_call(item, kind, names, where)
            calls_made.add(call["id"])
            _assistant_for_calls(messages)["tool_calls"].append(call)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or call_id not in calls_made:
                raise invalid_request(
                    f"{where} answers call_id {call_id!r}, which no earlier function_call in "
                    "'input' made; send the whole conversation, its calls included",
                    param="input",
                )
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": _tool_output(item, where)}
            )
        elif kind in DROPPED_ITEM_TYPES:
            changes.append(f"{where}: dropped {kind} item")
        elif kind == "item_reference":
            raise invalid_request(
                f"{where}: item references need stored responses, which the cortex-claude "
                "gateway does not keep; send the item itself",
                param="input",
            )
        else:
            raise invalid_request(
                f"{where}: input items of type {kind!r} are not supported on Cortex",
                param="input",
            )
    return messages


def _message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _MESSAGE_ROLES:
        raise invalid_request(
            f"{where}.role must be one of {', '.join(_MESSAGE_ROLES)}, got {role!r}",
            param="input",
        )
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list", param="input")
    parts = [_content_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    if role == "assistant":
        # Assistant text goes back as one string: every Cortex family takes that form.
        texts = [part["text"] for part in parts if part["type"] == "text"]
        if len(texts) != len(parts):
            raise invalid_request(f"{where}: assistant messages carry text only", param="input")
        return {"role": role, "content": "".join(texts)}
    return {"role": role, "content": parts}


def _content_part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise invalid_request(f"{where} must be an object", param="input")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "summary_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid_request(f"{where}.text must be a string", param="input")
        return {"type": "text", "text": text}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise invalid_request(
                f"{where}: images need an image_url (a data: URL or https URL); uploaded file "
                "ids are not available on Cortex",
                param="input",
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise invalid_request(f"{where}: content of type {kind!r} is not supported on Cortex", "input")


def _tool_call(item: Mapping[str, Any], kind: str, names: ToolNames, where: str) -> dict[str, Any]:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise invalid_request(f"{where}.call_id must be a non-empty string", param="input")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name must be a non-empty string", param="input")
    if kind == "custom_tool_call":
        raw = item.get("input")
        if not isinstance(raw, str):
            raise invalid_request(f"{where}.input must be a string", param="input")
        arguments = json.dumps({CUSTOM_INPUT_FIELD: raw})
    else:
        arguments = item.get("arguments")
        if not isinstance(arguments, str):
            raise invalid_request(f"{where}.arguments must be a JSON string", param="input")
    namespace = item.get("namespace")
    flat = names.flat_name(name, namespace if isinstance(namespace, str) else None)
    return {"id": call_id, "type": "function", "function": {"name": flat, "arguments": arguments}}


def _assistant_for_calls(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a tool call belongs to: the last one if nothing followed it."""
    last = messages[-1] if messages else None
    if last is None or last["role"] != "assistant":
        last = {"role": "assistant", "content": None}
        messages.append(last)
    last.setdefault("tool_calls", [])
    return last


def _tool_output(item: Mapping[str, Any], where: str) -> str | list[dict[str, Any]]:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise invalid_request(f"{where}.output must be a string or a list", param="input")
    parts = []
    for i, part in enumerate(output):
        translated = _content_part(part, f"{where}.output[{i}]")
        if translated["type"] != "text":
            # Cortex's tool messages carry text only (cortex-api.md): say what was left out.
            translated = {"type": "text", "text": "[an image the tool returned was not forwarded]"}
        parts.append(translated)
    return parts


# --- tools ---------------------------------------------------------------------------------------


def _translate_tools(tools: Any) -> tuple[list[dict[str, Any]], ToolNames, list[str]]:
    if tools is None:
        return [], ToolNames(), []
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be a list", param="tools")
    chat_tools: list[dict[str, Any]] = []
    namespaced: dict[str, tuple[str, str]] = {}
    custom: set[str] = set()
    dropped: list[str] = []
    for position, tool in enumerate(tools):
        where = f"tools[{position}]"
        if not isinstance(tool, Mapping):
            raise invalid_request(f"{where} must be an object", param="tools")
        kind = tool.get("type")
        if kind == "function":
            chat_tools.append(_function_tool(tool, tool.get("name"), where))
        elif kind == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace:
                raise invalid_request(f"{where}.name must be a non-empty string", param="tools")
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise invalid_request(f"{where}.tools must be a list", param="tools")
            for index, function in enumerate(inner):
                if not isinstance(function, Mapping) or function.get("type") != "function":
                    raise invalid_request(
                        f"{where}.tools[{index}]: a namespace holds function tools only",
                        param="tools",
                    )
                name = function.get("name")
                flat = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
                chat_tools.append(_function_tool(function, flat, f"{where}.tools[{index}]"))
                namespaced[flat] = (namespace, str(name))
        elif kind == "custom":
            chat_tools.append(_custom_tool(tool, where))
            custom.add(tool["name"])
        elif kind in HOSTED_TOOL_TYPES:
            if kind not in dropped:
                dropped.append(kind)
        else:
            raise invalid_request(f"{where}: tools of type {kind!r} are not supported", "tools")
    seen: set[str] = set()
    for tool in chat_tools:
        name = tool["function"]["name"]
        if name in seen:
            raise invalid_request(f"two tools are named {name!r}", param="tools")
        seen.add(name)
    return chat_tools, ToolNames(namespaced, frozenset(custom)), dropped


def _function_tool(tool: Mapping[str, Any], name: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name must be a non-empty string", param="tools")
    parameters = tool.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise invalid_request(f"{where}.parameters must be a JSON schema object", param="tools")
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    if tool.get("description"):
        function["description"] = str(tool["description"])
    return {"type": "function", "function": function}


def _custom_tool(tool: Mapping[str, Any], where: str) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"{where}.name must be a non-empty string", param="tools")
    description = str(tool.get("description") or "")
    form = tool.get("format")
    how = "Pass the tool's raw input text as `input`."
    if isinstance(form, Mapping) and form.get("type") == "grammar":
        how += (
            f" The text must follow this {form.get('syntax', '')} grammar:\n"
            f"{form.get('definition', '')}"
        )
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{description}\n\n{how}".strip(),
            "parameters": {
                "type": "object",
                "properties": {CUSTOM_INPUT_FIELD: {"type": "string"}},
                "required": [CUSTOM_INPUT_FIELD],
            },
        },
    }


def _translate_tool_choice(choice: Any, names: ToolNames) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str):
            raise invalid_request("tool_choice.name must be a string", param="tool_choice")
        flat = names.flat_name(name, choice.get("namespace"))
        return {"type": "function", "function": {"name": flat}}
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        mode = choice.get("mode")
        return mode if mode in ("auto", "required") else "auto"
    raise invalid_request(
        f"tool_choice {choice!r} names a tool Cortex cannot run; use auto, none, required or a "
        "function",
        param="tool_choice",
    )


def _translate_text_format(text: Any, changes: list[str]) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, Mapping):
        raise invalid_request("'text' must be an object", param="text")
    if "verbosity" in text:
        changes.append("removed text.verbosity")
    form = text.get("format")
    if form is None or (isinstance(form, Mapping) and form.get("type") == "text"):
        return None
    if isinstance(form, Mapping) and form.get("type") == "json_object":
        return {"type": "json_object"}
    if isinstance(form, Mapping) and form.get("type") == "json_schema":
        schema = {
            key: form[key] for key in ("name", "schema", "strict", "description") if key in form
        }
        return {"type": "json_schema", "json_schema": schema}
    raise invalid_request("text.format must be text, json_object or json_schema", "text.format")


def custom_tool_input(arguments: str) -> str:
    """The raw text of a custom tool call, from the arguments of the function it became."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments  # a model that wrote the raw text as the arguments
    if isinstance(parsed, Mapping) and isinstance(parsed.get(CUSTOM_INPUT_FIELD), str):
        return parsed[CUSTOM_INPUT_FIELD]
    return arguments
