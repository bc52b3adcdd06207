"""What Cortex's Chat Completions API accepts (Snowflake's compatibility chart, read strictly).

Claude with thinking on (``reasoning``) follows Bedrock's rule (``cortex-api.md``: Claude behind
Cortex follows Bedrock's conversation rules): inside a tool loop the final assistant turn must
start with a signed thinking block. Cortex's Chat Completions returns Claude's thinking as plain
text (``reasoning``, no signature) and documents no way to send a signed block back, so a request
with thinking on whose last assistant message called tools is refused with Anthropic's words,
whatever ``reasoning`` text the assistant message carries.
"""

from __future__ import annotations

from typing import Any

from .catalogue import ModelTable
from .refusals import CortexRefusal

# OpenAI's request fields that Cortex takes (or documents as silently ignored). Others are refused.
TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning",
        "reasoning_effort",
        "stop",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "seed",
        "user",
    }
)
MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "reasoning", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def validate_chat_request(body: object, models: ModelTable) -> None:
    if not isinstance(body, dict):
        raise CortexRefusal(400, "request body must be a JSON object")
    problems: list[str] = []
    fail = problems.append
    if "max_tokens" in body:
        fail("max_tokens is not supported, use max_completion_tokens")
    for name in ("store", "service_tier"):
        if name in body:
            fail(f"{name} is not supported")
    extra = sorted(set(body) - TOP_LEVEL_FIELDS - {"max_tokens", "store", "service_tier"})
    if extra:
        fail(f"unsupported request field(s): {', '.join(extra)}")

    model = models.get(body.get("model"))
    if "model" not in body:
        fail("model: field required")
    elif model is None:
        fail(f"unknown model {body.get('model')}")

    limit = body.get("max_completion_tokens")
    if "max_completion_tokens" in body:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            fail("max_completion_tokens: must be an integer >= 1")
        elif model is not None and limit > model.output_ceiling:
            fail(
                f"max_completion_tokens: {limit} > {model.output_ceiling}, which is the maximum "
                f"allowed number of output tokens for {model.name}"
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        fail("stream: must be a boolean")
    if "stream_options" in body and not body.get("stream"):
        fail("stream_options is only allowed when stream is true")
    elif "stream_options" in body and not isinstance(body["stream_options"], dict):
        fail("stream_options: must be an object")
    if body.get("n", 1) != 1:
        fail("n: only a single choice is supported")

    tools = body.get("tools")
    if tools is not None:
        if model is not None and not model.can_call_tools:
            fail(f"tools are not supported for model {model.name}")
        elif not isinstance(tools, list) or not all(_is_function_tool(t) for t in tools):
            fail("tools: each tool must be {'type': 'function', 'function': {'name': ...}}")
    response_format = body.get("response_format")
    is_json_schema = (
        isinstance(response_format, dict) and response_format.get("type") == "json_schema"
    )
    if model is not None and model.is_claude and response_format is not None and not is_json_schema:
        fail("response_format: only json_schema is supported for Claude models")

    _check_messages(
        body.get("messages"), fail, accepts_images=model is None or model.accepts_images
    )
    if model is not None and model.is_claude and _thinking_on(body.get("reasoning")):
        _check_thinking_tool_loop(body.get("messages"), fail)
    if problems:
        raise CortexRefusal(400, "; ".join(problems))


def _is_function_tool(tool: object) -> bool:
    return (
        isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    )


def _check_messages(messages: object, fail: Any, *, accepts_images: bool) -> None:
    if not isinstance(messages, list) or not messages:
        fail("messages: must be a non-empty list")
        return
    tool_call_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            fail(f"{where}: must be an object")
            continue
        role = message.get("role")
        if role not in MESSAGE_KEYS:
            fail(f"{where}.role: {role!r} is not supported (user, assistant, system, tool)")
            continue
        extra = sorted(set(message) - MESSAGE_KEYS[role])
        if extra:
            fail(f"{where}: unsupported key(s) {', '.join(extra)}")
        content = message.get("content")
        if isinstance(content, list):
            for position, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "image_url" and not accepts_images:
                    fail(f"{where}.content.{position}: images are not supported for this model")
                elif kind not in ("text", "image_url"):
                    fail(f"{where}.content.{position}: unsupported content part {kind!r}")
        elif content is None:
            if not (role == "assistant" and message.get("tool_calls")):
                fail(f"{where}.content: field required")
        elif not isinstance(content, str):
            fail(f"{where}.content: must be a string or a list of content parts")
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    tool_call_ids.add(call["id"])
                else:
                    fail(f"{where}.tool_calls: each call needs an id")
        if role == "tool" and message.get("tool_call_id") not in tool_call_ids:
            fail(
                f"{where}.tool_call_id: {message.get('tool_call_id')!r} does not match a tool call "
                "of an earlier assistant message"
            )
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        fail("the conversation must not end with an assistant message")


THINKING_TOOL_LOOP = (
    "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is "
    "enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
    "blocks from previous turns. To avoid this requirement, disable `thinking`."
)


def _thinking_on(reasoning: object) -> bool:
    if not isinstance(reasoning, dict) or reasoning.get("enabled") is False:
        return False
    return reasoning.get("effort") not in (None, "none") or bool(reasoning.get("max_tokens"))


def _check_thinking_tool_loop(messages: object, fail: Any) -> None:
    if not isinstance(messages, list):
        return
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "assistant":
            if message.get("tool_calls"):
                fail(f"messages.{index}: {THINKING_TOOL_LOOP}")
            return
