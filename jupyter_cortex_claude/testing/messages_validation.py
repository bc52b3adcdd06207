"""What Cortex's Messages API accepts, checked as strictly as its documentation allows.

Every problem found is reported (joined by "; "), as Bedrock's schema validation does, so a refused
request names everything wrong with it at once. Sources: Snowflake's Cortex REST API page (Messages
API section), and Bedrock's rules that Claude on Cortex follows (tool pairing, a final user turn).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .catalogue import ADAPTIVE_THINKING_MODELS, EFFORT_MODELS, ModelTable
from .refusals import CortexRefusal

ANTHROPIC_VERSION = "2023-06-01"
BETA_ALLOWLIST = frozenset(
    {
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
    }
)
MAX_CACHE_BREAKPOINTS = 4
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
USER_BLOCKS = frozenset({"text", "image", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.cache_breakpoints = 0

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def extra_keys(self, where: str, value: Mapping[str, Any], allowed: frozenset[str]) -> None:
        extra = sorted(set(value) - allowed)
        if extra:
            keys = ", ".join(extra)
            self.fail(f"{where}: extraneous key [{keys}] is not permitted")

    def cache_control(self, where: str, value: object) -> None:
        self.cache_breakpoints += 1
        if not isinstance(value, dict) or value.get("type") != "ephemeral":
            self.fail(f"{where}.cache_control: only {{'type': 'ephemeral'}} is supported")
            return
        self.extra_keys(f"{where}.cache_control", value, frozenset({"type", "ttl"}))
        if "ttl" in value and value["ttl"] != "5m":
            self.fail(f"{where}.cache_control.ttl: only '5m' is supported, got {value['ttl']!r}")


def validate_headers(
    headers: Mapping[str, str], refused_betas: frozenset[str] = frozenset()
) -> list[str]:
    problems = []
    version = headers.get("anthropic-version")
    if version != ANTHROPIC_VERSION:
        got = "missing" if version is None else repr(version)
        problems.append(f"anthropic-version header must be {ANTHROPIC_VERSION} (got {got})")
    betas = [beta.strip() for beta in headers.get("anthropic-beta", "").split(",") if beta.strip()]
    unsupported = [beta for beta in betas if beta not in BETA_ALLOWLIST or beta in refused_betas]
    if unsupported:
        problems.append(f"invalid beta flag(s) in anthropic-beta: {', '.join(unsupported)}")
    return problems


def validate_messages_request(
    headers: Mapping[str, str],
    body: object,
    models: ModelTable,
    refused_betas: frozenset[str] = frozenset(),
) -> None:
    """Raise a 400 :class:`CortexRefusal` naming every problem, or return if Cortex would accept.

    ``refused_betas``: documented betas this account refuses all the same (a Cortex stricter than
    its documentation)."""
    if not isinstance(body, dict):
        raise CortexRefusal(400, "request body must be a JSON object")
    check = _Checker()
    check.problems.extend(validate_headers(headers, refused_betas))
    betas = {beta.strip() for beta in headers.get("anthropic-beta", "").split(",")}
    allowed = TOP_LEVEL_FIELDS | (
        {"context_management"} if CONTEXT_MANAGEMENT_BETA in betas else set()
    )
    check.extra_keys("#", body, frozenset(allowed))

    model_name = body.get("model")
    model = models.get(model_name)
    if "model" not in body:
        check.fail("model: field required")
    elif model is None or not model.is_claude:
        check.fail(f"unknown model {model_name}")

    max_tokens = body.get("max_tokens")
    if "max_tokens" not in body:
        check.fail("max_tokens: field required")
    elif not _is_int(max_tokens) or max_tokens < 1:
        check.fail("max_tokens: must be an integer >= 1")
    elif model is not None and max_tokens > model.output_ceiling:
        # Anthropic's documented wording (cortex-api.md: Cortex's own is not documented).
        check.fail(
            f"max_tokens: {max_tokens} > {model.output_ceiling}, which is the maximum allowed "
            f"number of output tokens for {model.name}"
        )

    _check_sampling(check, body)
    _check_thinking(check, body, model_name if isinstance(model_name, str) else "")
    _check_output_config(check, body, model_name if isinstance(model_name, str) else "")
    if "context_management" in body and not isinstance(body["context_management"], dict):
        check.fail("context_management: must be an object")
    tool_names = _check_tools(check, body)
    _check_system(check, body.get("system"))
    _check_messages(check, body.get("messages"))
    if check.cache_breakpoints > MAX_CACHE_BREAKPOINTS:
        check.fail(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {check.cache_breakpoints}."
        )
    _check_tool_choice(check, body, tool_names)
    if check.problems:
        raise CortexRefusal(400, "; ".join(check.problems))


def _check_sampling(check: _Checker, body: dict[str, Any]) -> None:
    if "stream" in body and not isinstance(body["stream"], bool):
        check.fail("stream: must be a boolean")
    for name in ("temperature", "top_p"):
        if name in body and (not _is_number(body[name]) or not 0 <= body[name] <= 1):
            check.fail(f"{name}: must be a number between 0 and 1")
    if "top_k" in body and (not _is_int(body["top_k"]) or body["top_k"] < 0):
        check.fail("top_k: must be an integer >= 0")
    stops = body.get("stop_sequences")
    if "stop_sequences" in body and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        check.fail("stop_sequences: must be a list of strings")


def _check_thinking(check: _Checker, body: dict[str, Any], model_name: str) -> None:
    if "thinking" not in body:
        return
    thinking = body["thinking"]
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        check.extra_keys("thinking", thinking, frozenset({"type", "budget_tokens"}))
        budget, max_tokens = thinking.get("budget_tokens"), body.get("max_tokens")
        if not _is_int(budget) or budget < 1024:
            check.fail("thinking.budget_tokens: must be an integer >= 1024")
        elif _is_int(max_tokens) and budget >= max_tokens:
            check.fail("thinking.budget_tokens: must be less than max_tokens")
    elif kind == "adaptive":
        check.extra_keys("thinking", thinking, frozenset({"type"}))
        if model_name not in ADAPTIVE_THINKING_MODELS:
            check.fail(f"thinking.type: adaptive thinking is not supported for {model_name}")
    elif kind == "disabled":
        check.extra_keys("thinking", thinking, frozenset({"type"}))
    else:
        check.fail("thinking.type: must be one of enabled, disabled, adaptive")
    if kind in ("enabled", "adaptive"):
        if body.get("temperature", 1) != 1:
            check.fail("temperature may only be set to 1 when thinking is enabled")
        if "top_k" in body:
            check.fail("top_k is not supported when thinking is enabled")


def _check_output_config(check: _Checker, body: dict[str, Any], model_name: str) -> None:
    if "output_config" not in body:
        return
    config = body["output_config"]
    if not isinstance(config, dict):
        check.fail("output_config: must be an object")
        return
    check.extra_keys("output_config", config, frozenset({"effort", "format"}))
    if "effort" in config:
        if config["effort"] not in ("low", "medium", "high", "max"):
            check.fail("output_config.effort: must be one of low, medium, high, max")
        elif model_name not in EFFORT_MODELS:
            check.fail(f"output_config.effort: effort is not supported for {model_name}")
    if "format" in config:
        fmt = config["format"]
        if not (isinstance(fmt, dict) and fmt.get("type") == "json_schema" and "schema" in fmt):
            check.fail("output_config.format: must be {'type': 'json_schema', 'schema': {...}}")


def _check_tools(check: _Checker, body: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    if "tools" not in body:
        return names
    tools = body["tools"]
    if not isinstance(tools, list):
        check.fail("tools: must be a list")
        return names
    allowed = frozenset({"name", "description", "input_schema", "cache_control"})
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            check.fail(f"{where}: must be an object")
            continue
        if "type" in tool:
            # Server tools (web search, bash, tool search ...) are not in Cortex's documented list.
            check.fail(f"{where}: tool type {tool['type']!r} is not supported; only custom tools")
        check.extra_keys(where, tool, allowed | {"type"})
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            check.fail(f"{where}.name: must match ^[a-zA-Z0-9_-]{{1,64}}$")
        elif name in names:
            check.fail(f"{where}.name: tool names must be unique ({name})")
        else:
            names.add(name)
        if "description" in tool and not isinstance(tool["description"], str):
            check.fail(f"{where}.description: must be a string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            check.fail(f"{where}.input_schema: must be a JSON schema object with type 'object'")
        if "cache_control" in tool:
            check.cache_control(where, tool["cache_control"])
    return names


def _check_tool_choice(check: _Checker, body: dict[str, Any], tool_names: set[str]) -> None:
    if "tool_choice" not in body:
        return
    choice = body["tool_choice"]
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        check.fail("tool_choice.type: must be one of auto, any, tool, none")
        return
    check.extra_keys(
        "tool_choice", choice, frozenset({"type", "name", "disable_parallel_tool_use"})
    )
    if kind != "none" and not tool_names:
        check.fail("tool_choice may only be specified while providing tools")
    if kind == "tool" and choice.get("name") not in tool_names:
        check.fail(f"tool_choice.name: no tool named {choice.get('name')!r}")


def _check_system(check: _Checker, system: object) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        check.fail("system: must be a string or a list of text blocks")
        return
    for index, block in enumerate(system):
        where = f"system.{index}"
        if not isinstance(block, dict) or block.get("type") != "text":
            check.fail(f"{where}: system blocks must be text blocks")
            continue
        _check_block(check, where, block, "user")


def _check_messages(check: _Checker, messages: object) -> None:
    if messages is None:
        check.fail("messages: field required")
        return
    if not isinstance(messages, list) or not messages:
        check.fail("messages: must be a non-empty list")
        return
    pending_tool_uses: list[str] = []  # ids the next user turn must answer
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            check.fail(f"{where}: must be an object")
            continue
        check.extra_keys(where, message, frozenset({"role", "content"}))
        role = message.get("role")
        if role not in ("user", "assistant"):
            check.fail(
                f"{where}.role: {role!r} is not supported, only user and assistant "
                "(a system prompt goes in the top-level system field)"
            )
            continue
        if index == 0 and role != "user":
            check.fail("messages.0.role: the first message must use the user role")
        blocks = _content_blocks(check, where, message.get("content"))
        if pending_tool_uses:
            answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
            missing = [tid for tid in pending_tool_uses if tid not in answered]
            if role != "user" or missing:
                check.fail(
                    f"{where}: Each 'toolUse' block must be accompanied with a matching "
                    f"'toolResult' block in the next user turn; unanswered ids: "
                    f"{', '.join(missing or pending_tool_uses)}"
                )
        previous_ids = set(pending_tool_uses)
        pending_tool_uses = []
        for position, block in enumerate(blocks):
            block_where = f"{where}.content.{position}"
            _check_block(check, block_where, block, role)
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                pending_tool_uses.append(block["id"])
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous_ids:
                check.fail(
                    f"{block_where}: unexpected tool_use_id {block.get('tool_use_id')!r} in "
                    "tool_result; each tool_result must answer a tool_use of the previous message"
                )
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        check.fail(
            "the conversation must end with a user turn; a final assistant message (prefill) is "
            "not supported"
        )


def _content_blocks(check: _Checker, where: str, content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content:
            check.fail(f"{where}.content: text content must be non-empty")
        return []
    if not isinstance(content, list) or not content:
        check.fail(f"{where}.content: must be a string or a non-empty list of content blocks")
        return []
    blocks = []
    for position, block in enumerate(content):
        if isinstance(block, dict):
            blocks.append(block)
        else:
            check.fail(f"{where}.content.{position}: must be an object")
    return blocks


def _check_block(check: _Checker, where: str, block: dict[str, Any], role: str) -> None:
    kind = block.get("type")
    if kind not in BLOCK_KEYS:
        check.fail(f"{where}.type: content block type {kind!r} is not supported")
        return
    allowed_here = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
    if kind not in allowed_here:
        check.fail(f"{where}: a {kind} block is not allowed in a {role} message")
    check.extra_keys(where, block, BLOCK_KEYS[kind])
    if "cache_control" in block:
        check.cache_control(where, block["cache_control"])
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            check.fail(f"{where}.text: text content blocks must be non-empty strings")
    elif kind == "image":
        _check_image(check, where, block.get("source"))
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not block["id"]:
            check.fail(f"{where}.id: field required")
        if not isinstance(block.get("name"), str):
            check.fail(f"{where}.name: field required")
        if not isinstance(block.get("input"), dict):
            check.fail(f"{where}.input: must be an object")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            check.fail(f"{where}.tool_use_id: field required")
        if "is_error" in block and not isinstance(block["is_error"], bool):
            check.fail(f"{where}.is_error: must be a boolean")
        content = block.get("content")
        if isinstance(content, list):
            for position, inner in enumerate(content):
                inner_where = f"{where}.content.{position}"
                if not isinstance(inner, dict) or inner.get("type") not in ("text", "image"):
                    check.fail(f"{inner_where}: tool results may hold only text and image blocks")
                else:
                    _check_block(check, inner_where, inner, "user")
        elif content is not None and not isinstance(content, str):
            check.fail(f"{where}.content: must be a string or a list of blocks")
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str):
            check.fail(f"{where}.thinking: field required")
        if not isinstance(block.get("signature"), str) or not block["signature"]:
            check.fail(f"{where}.signature: thinking blocks must carry their signature")
    elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        check.fail(f"{where}.data: field required")


def _check_image(check: _Checker, where: str, source: object) -> None:
    if not isinstance(source, dict) or source.get("type") != "base64":
        check.fail(f"{where}.source: only base64 image sources are supported")
        return
    check.extra_keys(f"{where}.source", source, frozenset({"type", "media_type", "data"}))
    if source.get("media_type") not in IMAGE_MEDIA_TYPES:
        check.fail(
            f"{where}.source.media_type: must be one of {', '.join(sorted(IMAGE_MEDIA_TYPES))}"
        )
    if not isinstance(source.get("data"), str) or not source["data"]:
        check.fail(f"{where}.source.data: field required")
