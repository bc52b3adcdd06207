"""Anthropic Messages requests, from Claude Code and hand-made, shaped so Cortex accepts them."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.errors import GatewayError
from jupyter_cortex_claude.gateway.messages import (
    DOCUMENTED_BETAS,
    TOP_LEVEL_FIELDS,
    ShapedMessagesRequest,
    ShapingPolicy,
    shape_messages_request,
)
from jupyter_cortex_claude.snowflake.models import ModelCatalogue

_HERE = Path(__file__).parent
FIXTURE_DIR = _HERE / "fixtures" / "claude-code"
FIXTURES = sorted(FIXTURE_DIR.glob("*.json"))

CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,"
    "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24,"
    "thinking-display-updates-2026-08-18"
)
BILLING = "x-anthropic-billing-header: cc_version=2.1.330.03d; cc_entrypoint=sdk-cli;"
POLICY = ShapingPolicy(catalogue=ModelCatalogue())


def shape(
    body: Any, beta: str | None = None, policy: ShapingPolicy = POLICY
) -> ShapedMessagesRequest:
    """Shape ``body`` and check the input was left as it was."""
    before = copy.deepcopy(body)
    shaped = shape_messages_request(body, beta, policy)
    assert body == before, "shaping modified the client's request"
    return shaped


def refused(body: Any, beta: str | None = None, policy: ShapingPolicy = POLICY) -> GatewayError:
    before = copy.deepcopy(body)
    with pytest.raises(GatewayError) as caught:
        shape_messages_request(body, beta, policy)
    assert body == before
    assert caught.value.status == 400
    return caught.value


def cache_controls(shaped: dict[str, Any]) -> list[Any]:
    found = [tool["cache_control"] for tool in shaped.get("tools", []) if "cache_control" in tool]
    system = shaped.get("system")
    if isinstance(system, list):
        found += [block["cache_control"] for block in system if "cache_control" in block]
    for message in shaped["messages"]:
        if isinstance(message["content"], str):
            continue
        for block in message["content"]:
            nested = block.get("content") if block["type"] == "tool_result" else None
            if isinstance(nested, list):
                found += [item["cache_control"] for item in nested if "cache_control" in item]
            if "cache_control" in block:
                found.append(block["cache_control"])
    return found


def assert_cortex_accepts(result: ShapedMessagesRequest) -> None:
    """What the strict Cortex Messages API requires (cortex-api.md)."""
    body = result.body
    assert set(result.betas) <= DOCUMENTED_BETAS
    assert len(result.betas) == len(set(result.betas))
    assert set(body) <= TOP_LEVEL_FIELDS
    assert {"model", "messages", "max_tokens"} <= set(body)
    if "context_management" in body:
        assert "context-management-2025-06-27" in result.betas
    assert POLICY.catalogue.knows(body["model"])
    assert 1 <= body["max_tokens"] <= 16_384
    roles = [message["role"] for message in body["messages"]]
    assert roles[0] == "user" and roles[-1] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    for message in body["messages"]:
        assert set(message) == {"role", "content"}
        assert message["content"]
    thinking = body.get("thinking")
    if thinking is not None:
        if thinking["type"] == "enabled":
            assert set(thinking) == {"type", "budget_tokens"}
            assert 1024 <= thinking["budget_tokens"] < body["max_tokens"]
        else:
            assert thinking == {"type": "adaptive"}
        assert body.get("temperature", 1) == 1
    assert len(cache_controls(body)) <= 4
    assert all(control == {"type": "ephemeral"} for control in cache_controls(body))
    system = body.get("system")
    if isinstance(system, list):
        assert not any(block["text"].startswith("x-anthropic-billing-header") for block in system)
    for tool in body.get("tools", []):
        assert set(tool) <= {"name", "description", "input_schema", "cache_control"}
    if "tools" not in body:
        assert "tool_choice" not in body
    if "output_config" in body:
        assert body["output_config"]
        assert body["output_config"].get("effort", "high") in {"low", "medium", "high", "max"}
    # Every tool_use answered in the next user turn, every tool_result answering one.
    messages = body["messages"]
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or isinstance(message["content"], str):
            continue
        asked = {block["id"] for block in message["content"] if block["type"] == "tool_use"}
        following = messages[index + 1]["content"]
        answered = {
            block["tool_use_id"]
            for block in (following if isinstance(following, list) else [])
            if block["type"] == "tool_result"
        }
        assert asked == answered


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1000,
        "messages": [user("hello")],
    }
    body.update(fields)
    return body


def tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "d", "input_schema": {"type": "object"}, **extra}


def tool_round(tool_id: str = "tooluse_1", name: str = "Write") -> list[dict[str, Any]]:
    return [
        user("write it"),
        assistant([{"type": "tool_use", "id": tool_id, "name": name, "input": {}}]),
        user([{"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}]),
    ]


# --- Claude Code's captured requests -------------------------------------------------------------


def load_fixture(path: Path) -> tuple[dict[str, Any], str | None]:
    captured = json.loads(path.read_text())
    headers = {name.lower(): value for name, value in captured["headers"].items()}
    return captured["body"], headers.get("anthropic-beta")


def test_the_captured_claude_code_requests_are_available() -> None:
    assert len(FIXTURES) >= 5, f"no Claude Code fixtures in {FIXTURE_DIR}"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.stem)
def test_claude_code_requests_are_shaped_for_strict_cortex(path: Path) -> None:
    body, beta = load_fixture(path)
    result = shape(body, beta)
    assert_cortex_accepts(result)
    shaped = result.body

    assert result.client_model == "claude-opus-5-5"
    assert result.cortex_model == shaped["model"] == "claude-opus-4-6"
    assert result.stream is body["stream"]
    assert result.betas == [
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
        "effort-2025-11-24",
    ]
    assert shaped["max_tokens"] == 16_384
    assert shaped["thinking"] == {"type": "adaptive"}
    assert shaped["output_config"] == {"effort": "medium"}
    assert shaped["context_management"] == body["context_management"]
    assert "metadata" not in shaped

    # The system message inside `messages` ends up at the end of `system`, with its cache_control.
    system_message = next(m for m in body["messages"] if m["role"] == "system")
    folded_text = (
        system_message["content"]
        if isinstance(system_message["content"], str)
        else system_message["content"][0]["text"]
    )
    original = [block for block in body["system"] if not block["text"].startswith(BILLING[:27])]
    assert shaped["system"][: len(original)] == original
    assert shaped["system"][-1]["text"] == folded_text
    if isinstance(system_message["content"], list):
        assert shaped["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert len(shaped["system"]) == len(original) + 1

    # The two user messages around the system message are one turn, with the texts in order.
    first_user_blocks = body["messages"][0]["content"]
    assert shaped["messages"][0]["content"][: len(first_user_blocks)] == first_user_blocks

    # Deferred tools go; the others are kept as sent.
    assert [t["name"] for t in shaped["tools"]] == [
        t["name"] for t in body["tools"] if not t.get("defer_loading")
    ]
    plain_tools = [t for t in body["tools"] if not t.get("defer_loading")]
    assert all(a is b for a, b in zip(shaped["tools"], plain_tools, strict=True))

    # Thinking blocks go back exactly as Claude sent them, signature included.
    sent_thinking = [
        block
        for message in body["messages"]
        if message["role"] == "assistant"
        for block in message["content"]
        if block["type"] == "thinking"
    ]
    shaped_thinking = [
        block
        for message in shaped["messages"]
        if message["role"] == "assistant"
        for block in message["content"]
        if block["type"] == "thinking"
    ]
    assert shaped_thinking == sent_thinking
    assert all("signature" in block for block in shaped_thinking)
    assert "display" not in json.dumps(shaped["thinking"])


def test_the_billing_line_of_claude_code_2_1_330_is_dropped() -> None:
    body, beta = load_fixture(FIXTURE_DIR / "2.1.330-turn1.json")
    assert body["system"][0]["text"].startswith("x-anthropic-billing-header:")
    result = shape(body, beta)
    assert not any("billing" in block["text"] for block in result.body["system"])
    assert result.body["system"][0] == body["system"][1]
    assert "dropped billing header block" in result.changes


def test_claude_code_on_a_model_without_adaptive_thinking_gets_a_budget() -> None:
    body, beta = load_fixture(FIXTURE_DIR / "2.1.330-turn2-thinking-tool-result.json")
    body = {**body, "model": "claude-sonnet-4-5-20250929"}
    result = shape(body, beta)
    assert_cortex_accepts(result)
    assert result.cortex_model == "claude-sonnet-4-5"
    assert result.body["thinking"] == {"type": "enabled", "budget_tokens": 16_383}
    # claude-sonnet-4-5 takes no effort.
    assert "output_config" not in result.body


def test_shaping_notes_name_what_changed_but_never_the_prompt() -> None:
    body, beta = load_fixture(FIXTURE_DIR / "2.1.330-turn2-thinking-tool-result.json")
    result = shape(body, beta)
    notes = "\n".join(result.changes)
    assert "max_tokens 128000→16384" in result.changes
    assert "model claude-opus-5-5→claude-opus-4-6" in result.changes
    assert "dropped betas: claude-code-20250219," in notes
    for secretish in ("hello.txt", "create a file", "I should write", "Claude agent", "fake-sig"):
        assert secretish not in notes


# --- model, betas, top-level fields, max_tokens --------------------------------------------------


def test_the_model_is_resolved_and_the_client_model_remembered() -> None:
    result = shape(request(model="claude-haiku-4-5-20251001"))
    assert (result.client_model, result.cortex_model) == (
        "claude-haiku-4-5-20251001",
        "claude-haiku-4-5",
    )
    assert result.body["model"] == "claude-haiku-4-5"
    policy = ShapingPolicy(catalogue=ModelCatalogue(), model_map={"opus": "claude-4-opus"})
    assert shape(request(model="opus"), policy=policy).cortex_model == "claude-4-opus"


def test_only_allowlisted_betas_are_forwarded_in_order_without_duplicates() -> None:
    header = (
        " claude-code-20250219 , effort-2025-11-24,,interleaved-thinking-2025-05-14,"
        "effort-2025-11-24"
    )
    result = shape(request(), header)
    assert result.betas == ["effort-2025-11-24", "interleaved-thinking-2025-05-14"]
    assert "dropped betas: claude-code-20250219" in result.changes
    assert shape(request(), None).betas == []
    assert shape(request(), "").betas == []
    narrow = ShapingPolicy(catalogue=ModelCatalogue(), beta_allowlist=frozenset())
    assert shape(request(), header, narrow).betas == []


def test_fields_cortex_does_not_accept_are_dropped() -> None:
    body = request(
        metadata={"user_id": "u"},
        service_tier="auto",
        container="c",
        mcp_servers=[],
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END"],
        stream=True,
    )
    result = shape(body)
    assert set(result.body) == {
        "model",
        "max_tokens",
        "messages",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
    }
    assert result.stream is True
    assert "dropped fields: container,mcp_servers,metadata,service_tier" in result.changes
    assert shape(request()).stream is False


def test_context_management_goes_only_with_its_beta() -> None:
    edits = {"edits": [{"type": "clear_tool_uses_20250919"}]}
    body = request(context_management=edits)
    assert "context_management" not in shape(body, "claude-code-20250219").body
    kept = shape(body, "context-management-2025-06-27").body
    assert kept["context_management"] == edits


def test_max_tokens_is_clamped_to_the_models_output_ceiling() -> None:
    result = shape(request(max_tokens=128_000))
    assert result.body["max_tokens"] == 16_384
    assert "max_tokens 128000→16384" in result.changes
    assert shape(request(max_tokens=500)).body["max_tokens"] == 500
    roomy = ShapingPolicy(
        catalogue=ModelCatalogue(model_output_ceilings={"claude-sonnet-4-6": 64_000})
    )
    assert shape(request(max_tokens=128_000), policy=roomy).body["max_tokens"] == 64_000


# --- thinking, sampling, effort ------------------------------------------------------------------


def test_adaptive_thinking_is_kept_without_display_where_the_model_has_it() -> None:
    result = shape(request(thinking={"type": "adaptive", "display": "updates"}))
    assert result.body["thinking"] == {"type": "adaptive"}
    assert "dropped thinking keys: display" in result.changes


def test_adaptive_thinking_becomes_a_budget_on_older_claude_models() -> None:
    body = request(model="claude-sonnet-4-5", max_tokens=32_000, thinking={"type": "adaptive"})
    assert shape(body).body["thinking"] == {"type": "enabled", "budget_tokens": 16_383}
    small = request(model="claude-haiku-4-5", max_tokens=1000, thinking={"type": "adaptive"})
    assert "thinking" not in shape(small).body


def test_a_thinking_budget_stays_below_max_tokens_and_above_the_minimum() -> None:
    body = request(
        max_tokens=32_000,
        thinking={"type": "enabled", "budget_tokens": 31_999, "display": "omitted"},
    )
    result = shape(body)
    assert result.body["thinking"] == {"type": "enabled", "budget_tokens": 16_383}
    assert "thinking budget_tokens 31999→16383" in result.changes
    fine = shape(request(max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 4000}))
    assert fine.body["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    too_small = request(max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 500})
    assert "thinking" not in shape(too_small).body
    no_room = request(max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 2000})
    assert "thinking" not in shape(no_room).body


def test_thinking_is_dropped_where_cortex_would_refuse_it() -> None:
    no_thinking_model = request(model="claude-3-5-sonnet", thinking={"type": "adaptive"})
    assert "thinking" not in shape(no_thinking_model).body
    disabled = request(thinking={"type": "disabled"})
    assert "thinking" not in shape(disabled).body
    forced = request(
        tools=[tool("Read")],
        tool_choice={"type": "tool", "name": "Read"},
        thinking={"type": "adaptive"},
    )
    assert "thinking" not in shape(forced).body
    assert shape(forced).body["tool_choice"] == {"type": "tool", "name": "Read"}


def test_a_tool_loop_begun_without_thinking_continues_without_budget_thinking() -> None:
    body = request(
        model="claude-sonnet-4-5",
        max_tokens=16_000,
        thinking={"type": "enabled", "budget_tokens": 8000},
        messages=tool_round(),
    )
    result = shape(body)
    assert "thinking" not in result.body
    assert any("no thinking block" in note for note in result.changes)
    with_thinking = copy.deepcopy(body)
    signed = {"type": "thinking", "thinking": "t", "signature": "sig"}
    with_thinking["messages"][1]["content"].insert(0, signed)
    kept = shape(with_thinking)
    assert kept.body["thinking"] == {"type": "enabled", "budget_tokens": 8000}
    assert kept.body["messages"][1]["content"][0] is with_thinking["messages"][1]["content"][0]


def test_earlier_thinking_blocks_stay_when_thinking_is_dropped() -> None:
    signed = {"type": "thinking", "thinking": "t", "signature": "sig"}
    redacted = {"type": "redacted_thinking", "data": "opaque"}
    messages = [user("a"), assistant([signed, redacted, {"type": "text", "text": "b"}]), user("c")]
    body = request(model="claude-3-5-sonnet", messages=messages, thinking={"type": "adaptive"})
    shaped = shape(body).body
    assert "thinking" not in shaped
    assert shaped["messages"][1]["content"][:2] == [signed, redacted]


def test_clear_thinking_edits_go_when_thinking_is_dropped() -> None:
    management = {
        "edits": [
            {"type": "clear_thinking_20251015", "keep": "all"},
            {"type": "clear_tool_uses_20250919"},
        ]
    }
    body = request(
        model="claude-3-5-sonnet", thinking={"type": "adaptive"}, context_management=management
    )
    shaped = shape(body, "context-management-2025-06-27").body
    assert shaped["context_management"] == {"edits": [{"type": "clear_tool_uses_20250919"}]}
    only_thinking = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    body = request(
        model="claude-3-5-sonnet", thinking={"type": "adaptive"}, context_management=only_thinking
    )
    assert "context_management" not in shape(body, "context-management-2025-06-27").body


def test_sampling_settings_that_thinking_refuses_are_removed() -> None:
    body = request(thinking={"type": "adaptive"}, temperature=0.3, top_k=40, top_p=0.5)
    shaped = shape(body).body
    assert not {"temperature", "top_k", "top_p"} & set(shaped)
    assert shape(request(thinking={"type": "adaptive"}, temperature=1)).body["temperature"] == 1
    assert shape(request(temperature=0.3)).body["temperature"] == 0.3


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [
        ("claude-opus-4-6", "medium", {"effort": "medium"}),
        ("claude-opus-4-6", "max", {"effort": "max"}),
        ("claude-opus-4-6", "xhigh", {"effort": "high"}),
        ("claude-sonnet-4-6", "low", {"effort": "low"}),
        ("claude-opus-4-5", "max", {"effort": "high"}),
        ("claude-sonnet-4-5", "high", None),
        ("claude-haiku-4-5", "low", None),
        ("claude-opus-4-6", "extreme", None),
        ("claude-opus-4-6", 3, None),
    ],
)
def test_effort_is_kept_only_where_the_model_takes_it(
    model: str, effort: Any, expected: dict[str, str] | None
) -> None:
    shaped = shape(request(model=model, output_config={"effort": effort, "task_budget": 5})).body
    assert shaped.get("output_config") == expected


def test_output_config_keeps_its_format_and_adds_the_effort_beta() -> None:
    schema = {"type": "json_schema", "schema": {"type": "object"}}
    result = shape(
        request(model="claude-opus-4-5", output_config={"format": schema, "effort": "low"})
    )
    assert result.body["output_config"] == {"effort": "low", "format": schema}
    assert result.betas == ["effort-2025-11-24"]
    assert shape(request(output_config={})).body.get("output_config") is None


# --- system ---------------------------------------------------------------------------------------


def test_system_blocks_keep_their_cache_control_and_lose_the_billing_line() -> None:
    system = [
        {"type": "text", "text": BILLING},
        {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
    ]
    shaped = shape(request(system=system)).body
    assert shaped["system"] == [system[1]]
    keep_billing = ShapingPolicy(catalogue=ModelCatalogue(), drop_billing_header=False)
    assert shape(request(system=system), policy=keep_billing).body["system"] == system
    as_text = shape(request(system=BILLING + "\nYou are helpful.")).body
    assert as_text["system"] == "You are helpful."
    assert "system" not in shape(request(system=[{"type": "text", "text": BILLING}])).body
    assert shape(request(system="Be brief.")).body["system"] == "Be brief."


def test_system_messages_are_folded_into_system_and_the_turns_merged() -> None:
    messages = [
        user([{"type": "text", "text": "context"}]),
        {"role": "system", "content": "first rule", "output_config": {"effort": "medium"}},
        user("the question"),
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "second rule", "cache_control": {"type": "ephemeral"}}
            ],
        },
    ]
    result = shape(request(system="base", messages=messages))
    shaped = result.body
    assert shaped["system"] == [
        {"type": "text", "text": "base"},
        {"type": "text", "text": "first rule"},
        {"type": "text", "text": "second rule", "cache_control": {"type": "ephemeral"}},
    ]
    assert shaped["messages"] == [
        user([{"type": "text", "text": "context"}, {"type": "text", "text": "the question"}])
    ]
    assert "folded 2 system message(s) into system" in result.changes
    assert "dropped message keys: output_config" in result.changes


def test_merged_user_turns_put_tool_results_first() -> None:
    messages = [
        *tool_round()[:2],
        user("a remark"),
        user([{"type": "tool_result", "tool_use_id": "tooluse_1", "content": "ok"}]),
    ]
    shaped = shape(request(messages=messages)).body
    assert [block["type"] for block in shaped["messages"][2]["content"]] == ["tool_result", "text"]


def test_system_messages_can_be_left_in_place_by_policy() -> None:
    policy = ShapingPolicy(catalogue=ModelCatalogue(), fold_system_messages=False)
    messages = [user("a"), {"role": "system", "content": "rule"}, user("b")]
    shaped = shape(request(messages=messages), policy=policy).body
    assert [m["role"] for m in shaped["messages"]] == ["user", "system", "user"]
    assert "system" not in shaped


# --- tools and content blocks --------------------------------------------------------------------


def test_deferred_and_server_tools_are_dropped_and_tools_trimmed() -> None:
    tools = [
        tool("Read", strict=True, type="custom", cache_control={"type": "ephemeral", "ttl": "1h"}),
        tool("DeferredToolPlaceholder", defer_loading=True),
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "bash_20250124", "name": "bash"},
    ]
    result = shape(request(tools=tools, tool_choice={"type": "auto", "extra": 1}))
    assert result.body["tools"] == [
        {
            "name": "Read",
            "description": "d",
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert result.body["tool_choice"] == {"type": "auto"}
    assert "dropped deferred tools: DeferredToolPlaceholder" in result.changes
    assert "dropped server tools: web_search_20250305,bash_20250124" in result.changes


def test_without_tools_left_tool_choice_goes_too() -> None:
    body = request(tools=[tool("Later", defer_loading=True)], tool_choice={"type": "any"})
    shaped = shape(body).body
    assert "tools" not in shaped and "tool_choice" not in shaped
    dropped_target = request(tools=[tool("Read")], tool_choice={"type": "tool", "name": "Later"})
    assert "tool_choice" not in shape(dropped_target).body


def test_blocks_keep_only_their_known_keys_and_unknown_blocks_go() -> None:
    text = {"type": "text", "text": "hi", "citations": None}
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    messages = [
        user([text, image]),
        assistant(
            [
                {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}},
                {"type": "text", "text": "found"},
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "Read",
                    "input": {},
                    "caller": {"type": "direct"},
                },
            ]
        ),
        user(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "tool_reference", "tool_name": "Y"},
                    ],
                }
            ]
        ),
    ]
    result = shape(request(messages=messages))
    shaped = result.body["messages"]
    assert shaped[0]["content"] == [{"type": "text", "text": "hi"}, image]
    assert shaped[0]["content"][1] is image
    assert shaped[1]["content"] == [
        {"type": "text", "text": "found"},
        {"type": "tool_use", "id": "t1", "name": "Read", "input": {}},
    ]
    assert shaped[2]["content"][0]["content"] == [{"type": "text", "text": "x"}]
    assert "dropped blocks: server_tool_usex1,tool_referencex1" in result.changes


def test_cache_control_is_normalized_to_five_minute_ephemeral() -> None:
    messages = [
        user(
            [
                {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                {"type": "text", "text": "b", "cache_control": {"type": "persistent"}},
            ]
        )
    ]
    shaped = shape(request(messages=messages)).body
    assert shaped["messages"][0]["content"] == [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b"},
    ]


def test_only_the_last_four_cache_breakpoints_are_kept() -> None:
    ephemeral = {"type": "ephemeral"}
    tools = [tool("Read", cache_control=ephemeral)]
    system = [{"type": "text", "text": f"s{i}", "cache_control": ephemeral} for i in range(2)]
    messages = [
        user([{"type": "text", "text": "q", "cache_control": ephemeral}]),
        assistant([{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]),
        user(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "r", "cache_control": ephemeral}],
                    "cache_control": ephemeral,
                }
            ]
        ),
    ]
    result = shape(request(tools=tools, system=system, messages=messages))
    shaped = result.body
    assert len(cache_controls(shaped)) == 4
    assert "cache_control" not in shaped["tools"][0]
    assert "cache_control" not in shaped["system"][0]
    assert "cache_control" in shaped["system"][1]
    assert "cache_control" in shaped["messages"][0]["content"][0]
    assert "cache_control" in shaped["messages"][2]["content"][0]["content"][0]
    assert "cache_control" in shaped["messages"][2]["content"][0]
    assert "dropped 2 earliest cache_control breakpoint(s) (max 4)" in result.changes
    two = ShapingPolicy(catalogue=ModelCatalogue(), max_cache_breakpoints=2)
    assert (
        len(
            cache_controls(
                shape(request(tools=tools, system=system, messages=messages), policy=two).body
            )
        )
        == 2
    )


def test_tool_use_and_tool_result_pairs_are_kept_intact() -> None:
    result = shape(request(messages=tool_round("toolu_abc", "Bash")))
    assert_cortex_accepts(result)
    assert result.body["messages"][1]["content"][0]["id"] == "toolu_abc"
    assert result.body["messages"][2]["content"][0]["tool_use_id"] == "toolu_abc"


# --- refused requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["not", "an", "object"], "request body must be a JSON object"),
        (request(model=7), "model must be a non-empty string"),
        (request(model=" "), "model must be a non-empty string"),
        ({"model": "sonnet", "messages": [user("x")]}, "max_tokens is required"),
        (request(max_tokens="100"), "max_tokens must be a positive integer"),
        (request(max_tokens=0), "max_tokens must be a positive integer"),
        (request(max_tokens=True), "max_tokens must be a positive integer"),
        (request(stream="yes"), "stream must be true or false"),
        (request(messages=None), "messages must be a non-empty list"),
        (request(messages=[]), "messages must be a non-empty list"),
        (request(messages={"role": "user"}), "messages must be a non-empty list"),
        (request(messages=[["user", "hi"]]), "messages[0] must be an object"),
        (request(messages=[{"role": "tool", "content": "x"}]), "messages[0].role must be 'user'"),
        (request(messages=[user(5)]), "messages[0].content must be a string or a list"),
        (
            request(messages=[user([{"text": "no type"}])]),
            "messages[0].content[0] must be an object",
        ),
        (request(messages=[user(["plain string"])]), "messages[0].content[0] must be an object"),
        (request(messages=[user([])]), "messages[0].content is empty"),
        (request(messages=[assistant("hi"), user("x")]), "start with a user message"),
        (request(messages=[{"role": "system", "content": "s"}]), "at least one user message"),
        (
            request(
                messages=[
                    user("x"),
                    {"role": "system", "content": [{"type": "image", "source": {}}]},
                ]
            ),
            "a system message may only hold text",
        ),
        (
            request(messages=[user("x"), assistant("prefill")]),
            "ends with an assistant message (prefill)",
        ),
        (
            request(messages=[*tool_round("tooluse_9", "Write")[:2], user("no result")]),
            "tool_use tooluse_9 (tool Write) in messages[1] has no matching tool_result",
        ),
        (
            request(
                messages=[user([{"type": "tool_result", "tool_use_id": "x9", "content": "ok"}])]
            ),
            "tool_result for x9 in messages[0] does not answer a tool_use",
        ),
        (
            request(
                messages=[
                    user("x"),
                    assistant([{"type": "tool_use", "name": "Read", "input": {}}]),
                    user("y"),
                ]
            ),
            "messages[1].content[0].id must be a non-empty string",
        ),
        (request(system=5), "system must be a string or a list of text blocks"),
        (request(system=[{"type": "image"}]), "system[0] must be a text block"),
        (request(system=["text"]), "system[0] must be a text block"),
        (request(tools={"name": "x"}), "tools must be a list"),
        (request(tools=["Read"]), "tools[0] must be an object"),
        (request(tools=[{"input_schema": {}}]), "tools[0].name must be a non-empty string"),
        (request(tools=[{"name": "Read"}]), "tools[0].input_schema must be an object"),
        (request(tools=[tool("Read")], tool_choice="auto"), "tool_choice must be an object"),
        (request(thinking=["adaptive"]), "thinking must be an object"),
        (request(thinking={"type": "on"}), "thinking.type must be"),
        (request(thinking={"type": "enabled", "budget_tokens": "lots"}), "thinking.budget_tokens"),
        (request(output_config="high"), "output_config must be an object"),
        (request(messages=[user([{"type": "text", "text": 5}])]), "messages[0].content[0].text"),
        (
            request(messages=[user([{"type": "tool_result", "tool_use_id": "t", "content": 5}])]),
            "messages[0].content[0].content must be a string or a list",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_400_naming_the_problem(body: Any, message: str) -> None:
    error = refused(body)
    assert message in error.message


def test_context_management_of_the_wrong_type_is_refused() -> None:
    error = refused(request(context_management=[1]), "context-management-2025-06-27")
    assert "context_management must be an object" in error.message


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(body)
    target: Any = mutated
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return mutated


def test_any_wrong_type_anywhere_is_a_400_never_a_crash() -> None:
    body = request(
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        messages=[
            user([{"type": "text", "text": "q"}]),
            {"role": "system", "content": [{"type": "text", "text": "rule"}]},
            assistant(
                [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a"}},
                ]
            ),
            user(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "r"}],
                    }
                ]
            ),
        ],
        tools=[tool("Read", cache_control={"type": "ephemeral"})],
        tool_choice={"type": "auto"},
        thinking={"type": "enabled", "budget_tokens": 2000, "display": "omitted"},
        output_config={"effort": "high"},
        context_management={"edits": [{"type": "clear_thinking_20251015"}]},
        max_tokens=4000,
        stream=True,
    )
    shaped_without_mutation = 0
    for path in _paths(body):
        for weird in (None, 0, True, "x", [], {}, [1], {"type": 1}):
            try:
                result = shape(_replaced(body, path, weird), "context-management-2025-06-27")
            except GatewayError as error:
                assert error.status == 400, (path, weird)
                continue
            shaped_without_mutation += 1
            roles = [message["role"] for message in result.body["messages"]]
            assert roles[0] == "user" and roles[-1] == "user", (path, weird)
            assert result.body["max_tokens"] <= 16_384
    assert shaped_without_mutation > 0
