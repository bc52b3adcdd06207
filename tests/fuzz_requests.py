"""Hypothesis strategies for hostile requests: mostly-valid Anthropic and OpenAI bodies with wrong
types, odd values and stray fields anywhere, plus raw bytes; and the sync loop that sends them.

Mostly-valid matters: random bytes only exercise the JSON parser, while a well-formed request with
one odd field reaches the shaping code, the translation and the emulator, where bugs hide.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .battery import ENDPOINT_OF, check_reply

COUNT_TOKENS = "cortex-claude/anthropic/v1/messages/count_tokens"

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
)
anything = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def sometimes(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``strategy``, now and then any JSON value at all."""
    return st.one_of(strategy, strategy, strategy, anything)


models = sometimes(
    st.sampled_from(
        [
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-opus-4-6",
            "claude-3-7-sonnet",
            "openai-gpt-4.1",
            "llama3.1-70b",
            "mistral-large2",
            "sonnet",
            "gpt-4o",
            "",
            "../../etc/passwd",
            "claude-sonnet-4-5\u0000",
        ]
    )
    | st.text(max_size=20)
)
short_text = st.text(max_size=30)
text_block = st.fixed_dictionaries(
    {"type": st.just("text"), "text": sometimes(short_text)},
    optional={"cache_control": sometimes(st.just({"type": "ephemeral"}))},
)
image_block = st.fixed_dictionaries(
    {
        "type": st.just("image"),
        "source": sometimes(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["base64", "url", "file"]),
                    "media_type": st.sampled_from(["image/png", "image/gif", "text/html"]),
                    "data": st.sampled_from(["iVBORw0KGgo=", "", "not base64!"]),
                    "url": st.sampled_from(["https://example.com/a.png", "file:///etc/passwd"]),
                }
            )
        ),
    }
)
tool_use_block = st.fixed_dictionaries(
    {
        "type": st.just("tool_use"),
        "id": sometimes(st.text(max_size=12)),
        "name": sometimes(st.text(max_size=12)),
        "input": sometimes(st.dictionaries(st.text(max_size=5), anything, max_size=3)),
    }
)
tool_result_block = st.fixed_dictionaries(
    {
        "type": st.just("tool_result"),
        "tool_use_id": sometimes(st.text(max_size=12)),
        "content": sometimes(short_text | st.lists(text_block, max_size=2)),
    },
    optional={"is_error": sometimes(st.booleans())},
)
thinking_block = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["thinking", "redacted_thinking"]),
        "thinking": sometimes(short_text),
        "signature": sometimes(short_text),
    }
)
anthropic_block = st.one_of(
    text_block, text_block, image_block, tool_use_block, tool_result_block, thinking_block, anything
)
roles = sometimes(st.sampled_from(["user", "assistant", "system", "tool", "developer", "bot"]))
anthropic_message = sometimes(
    st.fixed_dictionaries(
        {"role": roles, "content": sometimes(short_text | st.lists(anthropic_block, max_size=3))}
    )
)
tool_definition = sometimes(
    st.fixed_dictionaries(
        {
            "name": sometimes(st.text(max_size=12)),
            "input_schema": sometimes(st.just({"type": "object", "properties": {}}) | anything),
        },
        optional={"description": short_text, "type": st.sampled_from(["custom", "bash_20250124"])},
    )
)
anthropic_body = st.fixed_dictionaries(
    {
        "model": models,
        "messages": sometimes(st.lists(anthropic_message, min_size=1, max_size=4)),
    },
    optional={
        "max_tokens": sometimes(st.integers(min_value=-5, max_value=10**7)),
        "stream": sometimes(st.booleans()),
        "system": sometimes(short_text | st.lists(text_block, max_size=2)),
        "tools": sometimes(st.lists(tool_definition, max_size=2)),
        "tool_choice": sometimes(
            st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "tool", "none"])})
        ),
        "thinking": sometimes(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["enabled", "disabled", "adaptive"]),
                    "budget_tokens": sometimes(st.integers(min_value=-1, max_value=10**6)),
                }
            )
        ),
        "temperature": sometimes(st.floats(min_value=-1, max_value=3)),
        "top_p": sometimes(st.floats(min_value=-1, max_value=2)),
        "top_k": sometimes(st.integers(min_value=-1, max_value=1000)),
        "stop_sequences": sometimes(st.lists(st.text(max_size=5), max_size=3)),
        "metadata": anything,
        "context_management": anything,
        "output_config": anything,
        "service_tier": anything,
        "container": anything,
        "mcp_servers": anything,
    },
)
openai_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": sometimes(short_text)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": sometimes(
                st.fixed_dictionaries(
                    {"url": st.sampled_from(["data:image/png;base64,iVBORw0KGgo=", "http://x/"])}
                )
            ),
        }
    ),
    anything,
)
openai_tool_call = sometimes(
    st.fixed_dictionaries(
        {
            "id": sometimes(st.text(max_size=10)),
            "type": st.just("function"),
            "function": sometimes(
                st.fixed_dictionaries(
                    {"name": sometimes(st.text(max_size=10)), "arguments": sometimes(short_text)}
                )
            ),
        }
    )
)
openai_message = sometimes(
    st.fixed_dictionaries(
        {"role": roles, "content": sometimes(short_text | st.lists(openai_part, max_size=3))},
        optional={
            "tool_calls": sometimes(st.lists(openai_tool_call, max_size=2)),
            "tool_call_id": sometimes(st.text(max_size=10)),
            "name": sometimes(st.text(max_size=10)),
        },
    )
)
openai_body = st.fixed_dictionaries(
    {"model": models, "messages": sometimes(st.lists(openai_message, min_size=1, max_size=4))},
    optional={
        "max_tokens": sometimes(st.integers(min_value=-5, max_value=10**7)),
        "max_completion_tokens": sometimes(st.integers(min_value=-5, max_value=10**7)),
        "stream": sometimes(st.booleans()),
        "stream_options": sometimes(st.fixed_dictionaries({"include_usage": st.booleans()})),
        "tools": sometimes(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("function"),
                        "function": sometimes(
                            st.fixed_dictionaries(
                                {"name": st.text(max_size=10), "parameters": anything}
                            )
                        ),
                    }
                ),
                max_size=2,
            )
        ),
        "tool_choice": sometimes(st.sampled_from(["auto", "none", "required"])),
        "temperature": sometimes(st.floats(min_value=-1, max_value=3)),
        "n": sometimes(st.integers(min_value=-1, max_value=5)),
        "stop": sometimes(st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=5)),
        "response_format": anything,
        "reasoning_effort": sometimes(st.sampled_from(["low", "medium", "high"])),
        "logprobs": anything,
        "seed": anything,
    },
)


def _dump(body: Any) -> bytes:
    return json.dumps(body).encode()


def _truncated(data: bytes, cut: int) -> bytes:
    return data[: max(0, len(data) - cut)]


header_text = st.text(
    alphabet=string.ascii_letters + string.digits + " -_,.;=/:\t\"'()", max_size=60
).map(str.strip)  # HTTP clients refuse values with whitespace at either end


@dataclass(frozen=True)
class HostileRequest:
    dialect: str
    path: str
    body: bytes
    headers: dict[str, str]


@st.composite
def hostile_requests(draw: st.DrawFn) -> HostileRequest:
    dialect = draw(st.sampled_from(["anthropic", "anthropic", "openai", "count_tokens"]))
    structured = openai_body if dialect == "openai" else anthropic_body
    body = draw(
        st.one_of(
            structured.map(_dump),
            structured.map(_dump),
            structured.map(_dump),
            st.tuples(structured.map(_dump), st.integers(1, 40)).map(
                lambda pair: _truncated(*pair)
            ),
            anything.map(_dump),
            st.binary(max_size=80),
        )
    )
    headers = {"content-type": draw(st.sampled_from(["application/json", "text/plain", ""]))}
    if draw(st.booleans()):
        headers["anthropic-beta"] = draw(header_text)
    if draw(st.booleans()):
        headers["anthropic-version"] = draw(header_text)
    path = COUNT_TOKENS if dialect == "count_tokens" else ENDPOINT_OF[dialect]
    return HostileRequest(
        "anthropic" if dialect == "count_tokens" else dialect, path, body, headers
    )


@dataclass
class FuzzOutcome:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)


def run_fuzz(base_url: str, key: str, count: int, outcome: FuzzOutcome, emulator: Any) -> None:
    """Send ``count`` generated requests over one keep-alive connection (sync: run in a thread,
    since the Jupyter server lives in the test's event loop)."""
    with httpx.Client(base_url=base_url, timeout=60) as client:

        @settings(
            max_examples=count,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(hostile_requests())
        def one(request: HostileRequest) -> None:
            response = client.post(
                request.path,
                content=request.body,
                headers={"authorization": f"Bearer {key}", **request.headers},
            )
            outcome.sent += 1
            outcome.statuses[response.status_code] += 1
            kind = check_reply(
                request.dialect,
                request.path,
                response.status_code,
                response.headers.get("content-type", ""),
                response.content,
            )
            outcome.kinds[kind] += 1
            if len(emulator.requests) > 500:
                emulator.requests.clear()

        one()
