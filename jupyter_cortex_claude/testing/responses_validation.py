"""What Cortex's preview Responses API accepts, read as strictly as its documentation allows.

Documented (Snowflake's release note "Responses API for the Cortex REST API (Preview)", Oct 23,
2026): ``POST /api/v2/cortex/v1/responses``, OpenAI-compatible, **OpenAI models only**; the API
**keeps no conversation state** (send the full conversation with each request);
**``previous_response_id`` and background mode are not supported**. The field-level reference was
not in what we found, so everything below that is marked *guess* is the emulator's strict choice,
not a fact; a gateway that passes these checks sends nothing a stricter Cortex could refuse:

- *guess*: ``store: true`` is refused (a stateless API stores nothing); ``false`` or absent pass.
  ``conversation`` is refused with ``previous_response_id`` (the same stored state).
- *guess*: the top-level fields are the Responses forms of what Cortex's Chat Completions chart
  documents for OpenAI models (model, input, instructions, tools, tool_choice, parallel_tool_calls,
  stream, max_output_tokens, temperature, top_p, reasoning, text.format) plus ``store``; anything
  else (``include``, ``prompt_cache_key``, ``service_tier``, ``metadata``, Codex's
  ``client_metadata``, ``text.verbosity`` …) is refused as unsupported, as the Chat chart's
  "error" entries are.
- *guess*: tools of type ``function`` (with ``strict``) and ``custom`` (GPT-5's free-form tools)
  only. OpenAI-hosted tools (``web_search``, ``tool_search``, ``file_search``,
  ``code_interpreter`` …) are refused: Cortex does not run OpenAI's hosted tools; ``namespace``
  groups (OpenAI's tool search) likewise.
- *guess*: input items ``message`` (roles user, assistant, system, developer; parts
  ``input_text``/``input_image`` and, for the assistant, ``output_text``), ``function_call`` /
  ``function_call_output`` and ``custom_tool_call`` / ``custom_tool_call_output``, each with only
  the fields the API defines. ``reasoning`` items and ``item_reference`` are refused: without
  stored state or encrypted reasoning (``include`` is refused) they cannot be resolved.
- A tool output must answer a call made earlier in ``input`` (stateless: there is nowhere else the
  call could be), ``max_output_tokens`` is at most the model's ceiling, ``reasoning.effort`` is one
  of Chat's documented ``minimal|low|medium|high``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .catalogue import ModelTable
from .refusals import CortexRefusal

TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "stream",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "store",
    }
)
STATEFUL_FIELDS = ("previous_response_id", "conversation", "background")
HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "tool_search",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
    }
)
ITEM_KEYS = {
    "message": frozenset({"type", "role", "content"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments"}),
    "function_call_output": frozenset({"type", "call_id", "output"}),
    "custom_tool_call": frozenset({"type", "call_id", "name", "input"}),
    "custom_tool_call_output": frozenset({"type", "call_id", "output"}),
}
ROLES = frozenset({"user", "assistant", "system", "developer"})
FUNCTION_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})
CUSTOM_KEYS = frozenset({"type", "name", "description", "format"})
EFFORTS = frozenset({"minimal", "low", "medium", "high"})
SUMMARIES = frozenset({"auto", "concise", "detailed"})
TEXT_FORMATS = frozenset({"text", "json_schema", "json_object"})

Fail = Callable[[str], None]


def validate_responses_request(body: object, models: ModelTable) -> None:
    if not isinstance(body, dict):
        raise CortexRefusal(400, "request body must be a JSON object")
    problems: list[str] = []
    fail = problems.append
    for name in STATEFUL_FIELDS:
        if body.get(name):
            fail(
                f"{name} is not supported: the Responses API keeps no conversation state; "
                "send the full conversation with each request"
            )
    if body.get("store") is True:
        fail("store: true is not supported: the Responses API keeps no conversation state")
    extra = sorted(set(body) - TOP_LEVEL_FIELDS - set(STATEFUL_FIELDS))
    if extra:
        fail(f"unsupported request field(s): {', '.join(extra)}")

    model = models.get(body.get("model"))
    if "model" not in body:
        fail("model: field required")
    elif model is None:
        fail(f"unknown model {body.get('model')}")
    elif model.family != "openai":
        fail(f"model {model.name} is not supported by the Responses API: use an OpenAI model")

    limit = body.get("max_output_tokens")
    if "max_output_tokens" in body:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 16:
            fail("max_output_tokens: must be an integer >= 16")
        elif model is not None and limit > model.output_ceiling:
            fail(
                f"max_output_tokens of {limit} exceeds the model's limit of "
                f"{model.output_ceiling} for {model.name}"
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        fail("stream: must be a boolean")
    if "parallel_tool_calls" in body and not isinstance(body["parallel_tool_calls"], bool):
        fail("parallel_tool_calls: must be a boolean")
    _check_reasoning(body.get("reasoning"), fail)
    _check_text(body.get("text"), fail)
    names = _check_tools(body.get("tools"), fail)
    _check_tool_choice(body.get("tool_choice"), names, fail)
    _check_input(body.get("input"), fail)
    if problems:
        raise CortexRefusal(400, "; ".join(problems))


def _check_reasoning(reasoning: Any, fail: Fail) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict) or set(reasoning) - {"effort", "summary"}:
        fail("reasoning: only effort and summary are supported")
        return
    if "effort" in reasoning and reasoning["effort"] not in EFFORTS:
        fail(f"reasoning.effort: must be one of {', '.join(sorted(EFFORTS))}")
    if "summary" in reasoning and reasoning["summary"] not in SUMMARIES:
        fail(f"reasoning.summary: must be one of {', '.join(sorted(SUMMARIES))}")


def _check_text(text: Any, fail: Fail) -> None:
    if text is None:
        return
    if not isinstance(text, dict) or set(text) - {"format"}:
        fail("text: only format is supported")
        return
    form = text.get("format")
    if not isinstance(form, dict) or form.get("type") not in TEXT_FORMATS:
        fail(f"text.format.type: must be one of {', '.join(sorted(TEXT_FORMATS))}")


def _check_tools(tools: Any, fail: Fail) -> set[str]:
    names: set[str] = set()
    if tools is None:
        return names
    if not isinstance(tools, list):
        fail("tools: must be a list")
        return names
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in HOSTED_TOOLS:
            fail(f"{where}: hosted tool {kind!r} is not supported")
            continue
        if kind not in ("function", "custom"):
            fail(f"{where}.type: {kind!r} is not supported (function, custom)")
            continue
        extra = sorted(set(tool) - (FUNCTION_KEYS if kind == "function" else CUSTOM_KEYS))
        if extra:
            fail(f"{where}: unsupported key(s) {', '.join(extra)}")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            fail(f"{where}.name: field required")
        elif name in names:
            fail(f"{where}.name: duplicate tool name {name!r}")
        else:
            names.add(name)
        if kind == "function" and not isinstance(tool.get("parameters", {}), dict):
            fail(f"{where}.parameters: must be a JSON schema object")
    return names


def _check_tool_choice(choice: Any, names: set[str], fail: Fail) -> None:
    if choice is None or choice in ("auto", "none", "required"):
        return
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        if choice.get("name") not in names:
            fail(f"tool_choice: no tool named {choice.get('name')!r}")
        return
    fail("tool_choice: must be auto, none, required or a function/custom tool")


def _check_input(input_: Any, fail: Fail) -> None:
    if isinstance(input_, str):
        if not input_:
            fail("input: must not be empty")
        return
    if not isinstance(input_, list) or not input_:
        fail("input: must be a string or a non-empty list of items")
        return
    calls: set[str] = set()
    for index, item in enumerate(input_):
        where = f"input.{index}"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ITEM_KEYS:
            fail(f"{where}.type: {kind!r} is not supported without stored state")
            continue
        extra = sorted(set(item) - ITEM_KEYS[kind])
        if extra:
            fail(f"{where}: unsupported key(s) {', '.join(extra)}")
        if kind == "message":
            _check_message(item, where, fail)
        elif kind in ("function_call", "custom_tool_call"):
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                fail(f"{where}: call_id and name are required")
            else:
                calls.add(item["call_id"])
        elif item.get("call_id") not in calls:
            fail(f"{where}.call_id: {item.get('call_id')!r} does not match a call earlier in input")
        elif not isinstance(item.get("output"), (str, list)):
            fail(f"{where}.output: must be a string or a list of content parts")


def _check_message(item: dict[str, Any], where: str, fail: Fail) -> None:
    role = item.get("role")
    if role not in ROLES:
        fail(f"{where}.role: {role!r} is not supported")
        return
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        fail(f"{where}.content: must be a string or a list of content parts")
        return
    allowed = {"output_text", "refusal"} if role == "assistant" else {"input_text", "input_image"}
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            fail(f"{where}.content.{position}: {kind!r} is not supported for role {role}")
