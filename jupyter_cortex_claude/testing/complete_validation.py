"""What Cortex's older ``inference:complete`` accepts (Snowflake's OpenAPI spec, read strictly).

The request schema is ``CompleteRequest`` of the spec (as generated into snowflake.core 1.13):
``model`` and a non-empty ``messages`` list are required; messages carry ``role`` (default
``user``) and either ``content`` (a string) or ``content_list`` (text, image, ``tool_use`` and
``tool_results`` items); tools are ``{"tool_spec": {"type": "generic", "name", "description",
"input_schema"}}``. snowflake.core serialises every optional field, unset ones as ``null``, so a
``null`` stands for "not given" here.
"""

from __future__ import annotations

from typing import Any

from .catalogue import EmulatedModel, ModelTable
from .refusals import CortexRefusal

OPTIONAL_FIELDS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_output_tokens",
        "response_format",
        "guardrails",
        "tools",
        "tool_choice",
        "provisioned_throughput_id",
        "stream",
        "anthropic",
        "openai",
        "sf-ml-xp-inflight-prompt-action",
        "sf-ml-xp-inflight-prompt-client-id",
        "sf-ml-xp-inflight-prompt-public-key",
    }
)
ROLES = ("user", "assistant", "system")
TOOL_CHOICES = ("auto", "required", "tool", "none")
CONTENT_ITEMS = ("text", "image", "tool_use", "tool_results")


def wants_stream(body: dict[str, Any]) -> bool:
    """``stream`` defaults to true on this endpoint (unlike the two newer APIs)."""
    return body.get("stream") is not False


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_complete_request(body: object, models: ModelTable) -> None:
    if not isinstance(body, dict):
        raise CortexRefusal(400, "request body must be a JSON object")
    problems: list[str] = []
    fail = problems.append
    extra = sorted(set(body) - OPTIONAL_FIELDS - {"model", "messages"})
    if extra:
        fail(f"unsupported request field(s): {', '.join(extra)}")
    given = {key: value for key, value in body.items() if value is not None}

    model = models.get(given.get("model"))
    if "model" not in given:
        fail("model: field required")
    elif model is None:
        fail(f"unknown model {given['model']}")

    for name in ("max_tokens", "max_output_tokens"):
        if name in given and (not _is_int(given[name]) or given[name] < 0):
            fail(f"{name}: must be an integer >= 0")
        elif name in given and model is not None and given[name] > model.output_ceiling:
            fail(
                f"{name} of {given[name]} exceeds the model's limit of {model.output_ceiling} "
                f"for {model.name}"
            )
    if "temperature" in given and not _is_number(given["temperature"]):
        fail("temperature: must be a number")
    if "top_p" in given and (not _is_number(given["top_p"]) or not 0 <= given["top_p"] <= 1):
        fail("top_p: must be a number between 0 and 1")
    if "stream" in given and not isinstance(given["stream"], bool):
        fail("stream: must be a boolean")
    for name in ("response_format", "guardrails", "anthropic", "openai"):
        if name in given and not isinstance(given[name], dict):
            fail(f"{name}: must be an object")
    _check_tools(given, model, fail)
    _check_messages(given.get("messages"), model, fail)
    if problems:
        raise CortexRefusal(400, "; ".join(problems))


def _check_tools(body: dict[str, Any], model: EmulatedModel | None, fail: Any) -> None:
    tools = body.get("tools")
    if tools is not None:
        if model is not None and not model.can_call_tools:
            fail(f"tools are not supported for model {model.name}")
        elif not isinstance(tools, list) or not all(_is_tool(tool) for tool in tools):
            fail("tools: each tool must be {'tool_spec': {'type': 'generic', 'name': ...}}")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
            fail(f"tool_choice.type: must be one of {', '.join(TOOL_CHOICES)}")
        elif choice.get("type") == "tool" and not (
            isinstance(choice.get("name"), list) and choice["name"]
        ):
            fail("tool_choice.name: a list of tool names is required when type is 'tool'")


def _is_tool(tool: object) -> bool:
    spec = tool.get("tool_spec") if isinstance(tool, dict) else None
    return (
        isinstance(spec, dict)
        and isinstance(spec.get("type"), str)
        and isinstance(spec.get("name"), str)
        and bool(spec["name"])
        and isinstance(spec.get("input_schema", {}), (dict, type(None)))
    )


def _check_messages(messages: object, model: EmulatedModel | None, fail: Any) -> None:
    if not isinstance(messages, list) or not messages:
        fail("messages: must be a non-empty list")
        return
    tool_use_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            fail(f"{where}: must be an object")
            continue
        extra = sorted(set(message) - {"role", "content", "content_list"})
        if extra:
            fail(f"{where}: unsupported key(s) {', '.join(extra)}")
        role = message.get("role") or "user"
        if role not in ROLES:
            fail(f"{where}.role: {role!r} is not supported (user, assistant, system)")
        content, content_list = message.get("content"), message.get("content_list")
        if content is not None and not isinstance(content, str):
            fail(f"{where}.content: must be a string")
        if content_list is None:
            if content is None:
                fail(f"{where}: content or content_list is required")
            continue
        if not isinstance(content_list, list):
            fail(f"{where}.content_list: must be a list")
            continue
        for position, item in enumerate(content_list):
            _check_item(f"{where}.content_list.{position}", item, model, tool_use_ids, fail)


def _check_item(
    where: str, item: object, model: EmulatedModel | None, tool_use_ids: set[str], fail: Any
) -> None:
    kind = item.get("type") if isinstance(item, dict) else None
    if not isinstance(item, dict) or kind not in CONTENT_ITEMS:
        fail(f"{where}: unsupported content item {kind!r} ({', '.join(CONTENT_ITEMS)})")
        return
    if kind == "text" and not isinstance(item.get("text"), str):
        fail(f"{where}.text: field required")
    elif kind == "image" and model is not None and not model.accepts_images:
        fail(f"{where}: images are not supported for model {model.name}")
    elif kind == "tool_use":
        call = item.get("tool_use")
        if not (
            isinstance(call, dict)
            and isinstance(call.get("tool_use_id"), str)
            and isinstance(call.get("name"), str)
            and isinstance(call.get("input"), dict)
        ):
            fail(f"{where}.tool_use: tool_use_id, name and input (an object) are required")
        else:
            tool_use_ids.add(call["tool_use_id"])
    elif kind == "tool_results":
        result = item.get("tool_results")
        if not (
            isinstance(result, dict)
            and isinstance(result.get("tool_use_id"), str)
            and isinstance(result.get("name"), str)
            and isinstance(result.get("content"), list)
        ):
            fail(f"{where}.tool_results: tool_use_id, name and content (a list) are required")
        elif result["tool_use_id"] not in tool_use_ids:
            fail(
                f"{where}.tool_results.tool_use_id: {result['tool_use_id']!r} does not match a "
                "tool_use of an earlier message"
            )
