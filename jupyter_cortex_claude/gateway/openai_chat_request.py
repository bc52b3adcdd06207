"""The OpenAI → Chat route's request: a client's Chat Completions body made acceptable to Cortex.

Cortex's ``/api/v2/cortex/v1/chat/completions`` is almost OpenAI's API, and the differences break
ordinary clients (see ``cortex-api.md``, "Chat Completions API details"):

- ``max_tokens`` is refused or ignored: it becomes ``max_completion_tokens``, clamped to the model's
  ceiling. When the client asks for neither we send neither, and Cortex applies its default of 4096:
  silently raising every request to the ceiling would change what the client pays for.
- ``store`` and ``service_tier`` are errors for every family; other OpenAI-only knobs are dropped.
- ``tools`` and images are errors for Llama, Mistral, DeepSeek and Snowflake models: refused here,
  before Cortex is called, with a message that says which model to pick.
- A conversation ending with an assistant message (a "prefill") is refused by Cortex: see
  :func:`answer_for_prefill`.

The answers, completed where Cortex leaves them short, are :mod:`.openai_chat_answer`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import invalid_request
from .json_bodies import is_large, parse_request_body
from .limits import DEFAULT_MAX_MESSAGES, check_message_count, check_model_id
from .openai_chat_answer import empty_stop_completion
from .thinking import in_chat_tool_loop

if TYPE_CHECKING:
    from ..snowflake.models import ModelCatalogue, ModelInfo

CORTEX_DEFAULT_MAX_COMPLETION_TOKENS = 4096

MODELS_THAT_CAN = "claude-sonnet-4-5 or openai-gpt-4.1"

# OpenAI-platform fields Cortex refuses (store, service_tier) or has no use for. Dropping them lets
# clients written for OpenAI work unchanged.
_DROPPED_FIELDS = (
    "store",
    "service_tier",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "user",
    "metadata",
    "prediction",
    "modalities",
    "audio",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
)

_ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class ChatShapingPolicy:
    catalogue: ModelCatalogue
    model_map: Mapping[str, str]
    family_models: Mapping[str, str]
    default_model: str
    resolve: Callable[[str], str]  # the gateway's model resolver, already bound to this policy
    max_messages: int = DEFAULT_MAX_MESSAGES  # more are refused (c.CortexClaude.max_messages)


@dataclass
class ShapedChatRequest:
    body: dict[str, Any]
    client_model: str
    cortex_model: str
    stream: bool
    client_wants_usage: bool
    # What Cortex will really allow: the asked value after clamping, else Cortex's default.
    max_completion_tokens: int
    changes: list[str] = field(default_factory=list)
    ends_with_assistant: bool = False
    # The client's body was large enough that encoding it belongs off the event loop.
    large: bool = False


def shape_chat_body(raw_body: bytes, policy: ChatShapingPolicy) -> ShapedChatRequest:
    """Parse and shape a client's raw Chat Completions body (see :func:`.json_bodies.off_loop`)."""
    shaped = shape_chat_request(
        parse_request_body(raw_body, max_messages=policy.max_messages), policy
    )
    shaped.large = is_large(raw_body)
    return shaped


def shape_chat_request(body: Any, policy: ChatShapingPolicy) -> ShapedChatRequest:
    """Make a client's Chat Completions body acceptable to Cortex. Bad input → GatewayError 400."""
    if not isinstance(body, Mapping):
        raise invalid_request("the request body must be a JSON object")
    shaped = dict(body)
    changes: list[str] = []

    client_model = shaped.get("model")
    if client_model is None or client_model == "":
        client_model = policy.default_model
    if not isinstance(client_model, str):
        raise invalid_request("'model' must be a string", param="model")
    check_model_id(client_model)
    cortex_model = policy.resolve(client_model)
    model = policy.catalogue.get(cortex_model)
    shaped["model"] = cortex_model
    if cortex_model != client_model:
        changes.append(f"model {client_model} -> {cortex_model}")

    shaped["messages"] = _shape_messages(
        shaped.get("messages"), model, changes, policy.max_messages
    )
    _check_tools(shaped, model)

    n = shaped.pop("n", None)
    if n is not None and n != 1:
        raise invalid_request("Cortex returns a single choice: 'n' must be 1 or absent", param="n")
    for name in _DROPPED_FIELDS:
        if name in shaped:
            del shaped[name]
            changes.append(f"removed {name}")

    max_completion_tokens = _shape_max_tokens(shaped, policy.catalogue.output_ceiling(cortex_model))
    changes.extend(max_completion_tokens[1])
    _shape_reasoning(shaped, model, changes)

    stream = shaped.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_request("'stream' must be a boolean", param="stream")
    client_options = shaped.get("stream_options")
    if client_options is not None and not isinstance(client_options, Mapping):
        raise invalid_request("'stream_options' must be an object", param="stream_options")
    client_wants_usage = bool(stream and client_options and client_options.get("include_usage"))
    if stream:
        # Always asked upstream: the usage ledger needs it. Forwarded only if the client asked.
        shaped["stream_options"] = {**(client_options or {}), "include_usage": True}
    else:
        shaped.pop("stream_options", None)

    last = shaped["messages"][-1]
    return ShapedChatRequest(
        body=shaped,
        client_model=client_model,
        cortex_model=cortex_model,
        stream=bool(stream),
        client_wants_usage=client_wants_usage,
        max_completion_tokens=max_completion_tokens[0],
        changes=changes,
        ends_with_assistant=last["role"] == "assistant",
    )


def _shape_messages(
    messages: Any, model: ModelInfo, changes: list[str], max_messages: int
) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty list", param="messages")
    check_message_count(len(messages), max_messages)
    shaped: list[dict[str, Any]] = []
    known_calls: set[str] = set()  # every tool call id an assistant message made so far
    # Calls of the latest assistant message still without a `tool` answer, in order: a dict, so
    # answering one is O(1) (a list's remove() made 50,000 tool calls quadratic).
    awaiting: dict[str, None] = {}
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if not isinstance(message, Mapping):
            raise invalid_request(f"{where} must be an object", param="messages")
        role = message.get("role")
        if role not in _ROLES:
            raise invalid_request(
                f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}", param="messages"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise invalid_request(f"{where}.content must be a string or a list", param="messages")
        message = dict(message)
        if role == "developer":
            # OpenAI's newer name for the system role; Cortex knows only `system`.
            message["role"] = role = "system"
            changes.append(f"{where}: developer -> system")
        if isinstance(content, list):
            message["content"] = _shape_parts(content, model, where, changes)

        if role in ("user", "assistant") and awaiting:
            raise invalid_request(
                f"tool call {next(iter(awaiting))} has no tool message with its result before "
                f"{where}; "
                "answer every tool call of an assistant message with a `tool` message",
                param="messages",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in known_calls:
                raise invalid_request(
                    f"{where} answers tool call {call_id!r}, which no earlier assistant "
                    "message made",
                    param="messages",
                )
            awaiting.pop(call_id, None)
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise invalid_request(f"{where}.tool_calls must be a list", param="messages")
            for call in calls:
                call_id = call.get("id") if isinstance(call, Mapping) else None
                if not isinstance(call_id, str):
                    raise invalid_request(
                        f"{where}.tool_calls entries need an id", param="messages"
                    )
                known_calls.add(call_id)
                awaiting[call_id] = None
        shaped.append(message)
    if awaiting:
        raise invalid_request(
            f"tool call {next(iter(awaiting))} has no tool message with its result; answer every "
            "tool call "
            "before asking for the next turn",
            param="messages",
        )
    return shaped


def _shape_parts(
    parts: list[Any], model: ModelInfo, where: str, changes: list[str]
) -> list[dict[str, Any]]:
    shaped: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            raise invalid_request(f"{where}.content entries must be objects", param="messages")
        if part.get("type") in ("image_url", "input_image") and not model.supports_images:
            raise invalid_request(
                f"model {model.name} cannot read images on Cortex; pick a model that can "
                f"(e.g. {MODELS_THAT_CAN})",
                param="messages",
            )
        if "cache_control" in part and not model.is_claude:
            # A Claude-only extension on Cortex; other families would reject an unknown field.
            part = {key: value for key, value in part.items() if key != "cache_control"}
            changes.append(f"{where}: removed cache_control")
        shaped.append(dict(part))
    return shaped


def _check_tools(shaped: dict[str, Any], model: ModelInfo) -> None:
    tools = shaped.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be a list", param="tools")
    if tools and not model.supports_tools:
        raise invalid_request(
            f"model {model.name} cannot call tools on Cortex; pick a model that can "
            f"(e.g. {MODELS_THAT_CAN})",
            param="tools",
        )
    if not tools:
        # An empty list with a tool_choice would be refused upstream; nothing to offer anyway.
        shaped.pop("tools")
        shaped.pop("tool_choice", None)


def _shape_max_tokens(shaped: dict[str, Any], ceiling: int) -> tuple[int, list[str]]:
    changes: list[str] = []
    legacy = shaped.pop("max_tokens", None)
    asked = shaped.get("max_completion_tokens")
    if asked is None and legacy is not None:
        asked = legacy
        changes.append("max_tokens -> max_completion_tokens")
    if asked is None:
        shaped.pop("max_completion_tokens", None)
        return min(CORTEX_DEFAULT_MAX_COMPLETION_TOKENS, ceiling), changes
    if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
        raise invalid_request(
            "'max_completion_tokens' (or 'max_tokens') must be a positive integer",
            param="max_completion_tokens",
        )
    if asked > ceiling:
        changes.append(f"max_completion_tokens {asked} clamped to {ceiling}")
        asked = ceiling
    shaped["max_completion_tokens"] = asked
    return asked, changes


def _shape_reasoning(shaped: dict[str, Any], model: ModelInfo, changes: list[str]) -> None:
    if model.is_claude and "reasoning" in shaped and in_chat_tool_loop(shaped["messages"]):
        del shaped["reasoning"]
        changes.append("reasoning dropped: Claude's thinking cannot be sent back mid tool loop")
    effort = shaped.get("reasoning_effort")
    if effort is None or model.family == "openai":
        return
    del shaped["reasoning_effort"]
    if model.is_claude and in_chat_tool_loop(shaped["messages"]):
        changes.append(
            "removed reasoning_effort: Claude's thinking cannot be sent back mid tool loop"
        )
    elif model.is_claude and model.supports_thinking and "reasoning" not in shaped:
        # Cortex takes Claude's thinking in OpenRouter's `reasoning` form, not `reasoning_effort`.
        shaped["reasoning"] = {"effort": "low" if effort == "minimal" else effort}
        changes.append("reasoning_effort -> reasoning.effort")
    else:
        changes.append("removed reasoning_effort")


# --- answers without Cortex -------------------------------------------------------------------


def answer_for_prefill(shaped: ShapedChatRequest) -> dict[str, Any] | None:
    """A synthetic empty stop when the conversation ends with an assistant message, else None.

    Cortex refuses a conversation that ends with an assistant message (reported by two public
    projects). The prefilled text is already the start of the answer the client wants, so an empty
    continuation with ``finish_reason: "stop"`` is a faithful reply, and better than relaying a 400.
    For a streaming request, send :func:`.openai_chat_answer.empty_stop_chunks` instead.
    """
    if not shaped.ends_with_assistant:
        return None
    return empty_stop_completion(shaped.client_model)
