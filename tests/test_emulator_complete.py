"""The emulator's ``POST /api/v2/cortex/inference:complete``: Cortex's older native endpoint.

What snowflake-claude-code (through ``snowflake.core``) and LiteLLM's ``snowflake/`` route call.
Wire format: SSE with ``data:`` lines only, deltas carrying ``content``/``text``/``content_list``,
a tool call as one declaration delta then partial-JSON deltas without id or index, usage on the
last chunk only, no ``[DONE]``; ``stream`` defaults to true.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply

PAT = "test-pat-0123456789"
COMPLETE = "/api/v2/cortex/inference:complete"
HEADERS = {"Authorization": f"Bearer {PAT}"}

# The body snowflake.core 1.13.2 really sent for snowflake-claude-code 1.1.0 (recorded): every
# optional field of the spec is present, unset ones as null, and `stream` is always true.
SDK_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 100,
    "stream": True,
    "anthropic": None,
    "openai": None,
    "temperature": None,
    "max_output_tokens": None,
    "response_format": None,
    "guardrails": None,
    "tool_choice": None,
    "provisioned_throughput_id": None,
}


def body(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hello"}],
    }
    result.update(changes)
    return result


def post(emu: CortexEmulator, payload: Any, **headers: str) -> httpx.Response:
    return httpx.post(emu.url + COMPLETE, json=payload, headers={**HEADERS, **headers}, timeout=10)


def chunks(response: httpx.Response) -> list[dict[str, Any]]:
    """Every SSE event's JSON; fails on anything but `data:` lines and blank separators."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == ""
    parsed = []
    for event in events[:-1]:
        assert event.startswith("data: ") and "\n" not in event, event
        parsed.append(json.loads(event[len("data: ") :]))
    return parsed


def assert_snowflake_error(response: httpx.Response, status: int, *phrases: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"message", "code", "error_code", "request_id"}
    assert response.headers["X-Snowflake-Request-ID"] == error["request_id"]
    for phrase in phrases:
        assert phrase in error["message"]


# -- the wire format ------------------------------------------------------------------------------


def test_a_streamed_text_answer_is_data_lines_with_usage_only_on_the_last_chunk(
    cortex_emulator: CortexEmulator,
) -> None:
    cortex_emulator.script(Reply.text("The quick brown fox."))
    response = post(cortex_emulator, body(stream=True))
    assert "event:" not in response.text and "[DONE]" not in response.text
    parsed = chunks(response)
    assert len(parsed) == 4  # one chunk per word
    assert len({chunk["id"] for chunk in parsed}) == 1
    text = ""
    for chunk in parsed:
        assert chunk["model"] == "claude-sonnet-4-5"
        assert len(chunk["choices"]) == 1
        delta = chunk["choices"][0]["delta"]
        assert delta["type"] == "text"
        assert delta["content"] == delta["text"] == delta["content_list"][0]["text"]
        assert delta["content_list"][0]["type"] == "text"
        text += delta["content"]
    assert text == "The quick brown fox."
    assert all("usage" not in chunk for chunk in parsed[:-1])
    usage = parsed[-1]["usage"]
    assert (
        usage["completion_tokens"] == Reply.text("The quick brown fox.").estimated_output_tokens()
    )
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_defaults_to_true_and_the_sdks_nulls_are_accepted(
    cortex_emulator: CortexEmulator,
) -> None:
    plain = chunks(post(cortex_emulator, body()))
    assert "".join(c["choices"][0]["delta"]["content"] for c in plain).startswith("Hello from")
    sdk = chunks(post(cortex_emulator, SDK_BODY))
    assert sdk[-1]["usage"]["prompt_tokens"] > 0
    recorded = cortex_emulator.inference_requests()
    assert [r.path for r in recorded] == [COMPLETE, COMPLETE]


def test_a_tool_call_is_one_declaration_then_partial_json_without_id_or_index(
    cortex_emulator: CortexEmulator,
) -> None:
    arguments = {"city": "Zürich", "units": "metric", "days": [1, 2, 3]}
    reply = Reply.tool_use("get_weather", arguments, text="Let me look.", id="tooluse_abc123")
    cortex_emulator.script(reply)
    tools = [
        {
            "tool_spec": {
                "type": "generic",
                "name": "get_weather",
                "description": "Weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        }
    ]
    parsed = chunks(post(cortex_emulator, body(tools=tools, tool_choice={"type": "auto"})))
    deltas = [chunk["choices"][0]["delta"] for chunk in parsed]
    texts = [d for d in deltas if d["type"] == "text"]
    calls = [d for d in deltas if d["type"] == "tool_use"]
    assert "".join(d["content"] for d in texts) == "Let me look."
    assert deltas.index(calls[0]) == len(texts)  # the text comes first
    declaration, pieces = calls[0], calls[1:]
    assert declaration["tool_use_id"] == "tooluse_abc123"
    assert declaration["name"] == "get_weather"
    assert "input" not in declaration
    assert len(pieces) > 1  # split mid-token: clients must concatenate before parsing
    for piece in pieces:
        assert set(piece) >= {"type", "input"}
        assert "tool_use_id" not in piece and "name" not in piece and "index" not in piece
    assert json.loads("".join(piece["input"] for piece in pieces)) == arguments
    assert parsed[-1]["usage"]["completion_tokens"] == reply.estimated_output_tokens()
    assert all("usage" not in chunk for chunk in parsed[:-1])


def test_parallel_tool_calls_each_get_their_own_declaration(
    cortex_emulator: CortexEmulator,
) -> None:
    cortex_emulator.script(Reply.tools([("read", {"path": "a"}), ("read", {"path": "b"})]))
    deltas = [c["choices"][0]["delta"] for c in chunks(post(cortex_emulator, body()))]
    calls: list[list[str]] = []
    for delta in deltas:
        if "tool_use_id" in delta:
            calls.append([])
        else:
            calls[-1].append(delta["input"])
    assert [json.loads("".join(pieces)) for pieces in calls] == [{"path": "a"}, {"path": "b"}]


def test_a_non_streaming_answer_is_the_specs_json(cortex_emulator: CortexEmulator) -> None:
    reply = Reply.tool_use("get_weather", {"city": "Bern"}, text="Checking.", id="tooluse_x")
    cortex_emulator.script(reply)
    response = post(cortex_emulator, body(stream=False))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    message = answer["choices"][0]["message"]
    assert message["content"] == "Checking."
    assert message["content_list"] == [
        {"type": "text", "text": "Checking."},
        {
            "type": "tool_use",
            "tool_use": {
                "tool_use_id": "tooluse_x",
                "name": "get_weather",
                "input": {"city": "Bern"},
            },
        },
    ]
    assert answer["finish_reason"] == "tool_use"
    assert answer["usage"]["completion_tokens"] == reply.estimated_output_tokens()


def test_token_pacing_applies_to_every_chunk(
    cortex_emulator_factory: Any,
) -> None:
    emulator = cortex_emulator_factory(pats=[PAT], token_delay=0.05)
    emulator.script(Reply.text("one two three four five six"))
    started = time.perf_counter()
    parsed = chunks(post(emulator, body()))
    assert len(parsed) == 6
    assert time.perf_counter() - started >= 0.25


def test_a_conversation_with_tool_results_in_cortex_shape_is_accepted(
    cortex_emulator: CortexEmulator,
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content_list": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "tool_use": {"tool_use_id": "tooluse_1", "name": "w", "input": {"c": "x"}},
                },
            ],
        },
        {
            "role": "user",
            "content_list": [
                {
                    "type": "tool_results",
                    "tool_results": {
                        "tool_use_id": "tooluse_1",
                        "name": "w",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                }
            ],
        },
    ]
    assert post(cortex_emulator, body(messages=messages, max_tokens=64)).status_code == 200


# -- refusals ---------------------------------------------------------------------------------------


def test_it_refuses_requests_without_snowflake_authentication(
    cortex_emulator: CortexEmulator,
) -> None:
    no_auth = httpx.post(cortex_emulator.url + COMPLETE, json=body(), timeout=10)
    assert_snowflake_error(no_auth, 401, "Missing Authorization")
    api_key = httpx.post(cortex_emulator.url + COMPLETE, json=body(), headers={"x-api-key": PAT})
    assert_snowflake_error(api_key, 401, "x-api-key is not accepted")
    wrong = post(cortex_emulator, body(), Authorization="Bearer not-a-known-pat-000")
    assert wrong.status_code == 401
    assert cortex_emulator.inference_requests()  # recorded, but nothing was answered
    assert all(r.path == COMPLETE for r in cortex_emulator.inference_requests())


def test_a_session_token_works_and_an_expired_one_gets_snowflakes_200_quirk(
    cortex_emulator: CortexEmulator,
) -> None:
    cortex_emulator.add_session_token("session-token-1")
    session = {"Authorization": 'Snowflake Token="session-token-1"'}
    assert chunks(post(cortex_emulator, body(), **session))
    cortex_emulator.expire_session_token("session-token-1")
    expired = post(cortex_emulator, body(), **session)
    assert expired.status_code == 200
    assert expired.json()["code"] == "390112"


@pytest.mark.parametrize(
    ("payload", "phrase"),
    [
        (body(model="claude-nonexistent-9"), "unknown model claude-nonexistent-9"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model: field required"),
        (body(messages=[]), "messages: must be a non-empty list"),
        (body(messages=[{"role": "user"}]), "content or content_list is required"),
        (body(messages=[{"role": "tool", "content": "x"}]), "'tool' is not supported"),
        (body(messages=[{"role": "user", "content": 3}]), "content: must be a string"),
        (
            body(messages=[{"role": "user", "content_list": [{"type": "tool_result"}]}]),
            "unsupported content item 'tool_result'",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content_list": [
                            {
                                "type": "tool_results",
                                "tool_results": {"tool_use_id": "t9", "name": "w", "content": []},
                            }
                        ],
                    }
                ]
            ),
            "does not match a tool_use",
        ),
        (body(max_completion_tokens=10), "unsupported request field(s): max_completion_tokens"),
        (body(max_tokens=10**6), "exceeds the model's limit of 16384"),
        (body(max_tokens="many"), "max_tokens: must be an integer"),
        (body(stream="yes"), "stream: must be a boolean"),
        (body(top_p=3), "top_p: must be a number between 0 and 1"),
        (body(tools=[{"name": "w", "input_schema": {}}]), "each tool must be {'tool_spec'"),
        (
            body(model="llama3.1-8b", tools=[{"tool_spec": {"type": "generic", "name": "w"}}]),
            "tools are not supported for model llama3.1-8b",
        ),
        (body(tool_choice={"type": "any"}), "tool_choice.type"),
        (body(tool_choice={"type": "tool"}), "a list of tool names is required"),
    ],
)
def test_it_refuses_bad_bodies_with_a_snowflake_400(
    cortex_emulator: CortexEmulator, payload: dict[str, Any], phrase: str
) -> None:
    assert_snowflake_error(post(cortex_emulator, payload), 400, phrase)


def test_it_refuses_non_json_bodies_and_other_methods(cortex_emulator: CortexEmulator) -> None:
    text = httpx.post(
        cortex_emulator.url + COMPLETE,
        content=b"hello",
        headers={**HEADERS, "Content-Type": "text/plain"},
    )
    assert_snowflake_error(text, 400, "Content-Type must be application/json")
    broken = httpx.post(
        cortex_emulator.url + COMPLETE,
        content=b"{not json",
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert_snowflake_error(broken, 400, "not valid JSON")
    assert_snowflake_error(
        httpx.get(cortex_emulator.url + COMPLETE, headers=HEADERS), 405, "not allowed"
    )
    assert_snowflake_error(post(cortex_emulator, [1, 2]), 400, "must be a JSON object")


def test_faults_and_missing_paths_apply_to_it_too(cortex_emulator: CortexEmulator) -> None:
    cortex_emulator.script(Reply.text("after the throttle"))
    cortex_emulator.fail_next(Fault.status(429))
    assert_snowflake_error(post(cortex_emulator, body()), 429, "Too many requests")
    retried = chunks(post(cortex_emulator, body()))
    assert "".join(c["choices"][0]["delta"]["content"] for c in retried) == "after the throttle"
    cortex_emulator.missing_paths.add(COMPLETE)
    assert_snowflake_error(post(cortex_emulator, body()), 404, "Not found")


# -- the real snowflake-claude-code proxy ---------------------------------------------------------


def snowflake_claude_code_venv() -> Path:
    """The venv scripts/test.sh makes for the pinned proxy (it pins its own dependencies, so it is
    not a test dependency); a missing venv fails the test, it never skips."""
    configured = os.environ.get("CORTEX_CLAUDE_SCC_VENV")
    if not configured or not (Path(configured) / "bin" / "python").exists():
        raise AssertionError(
            "snowflake-claude-code 1.1.0 is needed: run `bash scripts/test.sh`, which makes its "
            "venv, or set CORTEX_CLAUDE_SCC_VENV to a venv with it installed."
        )
    return Path(configured)


def test_snowflake_claude_code_logs_in_and_relays_text_and_tool_calls(
    cortex_emulator_factory: Any, tmp_path: Path
) -> None:
    """Its real code end to end: the connector's login (the PAT as its password), snowflake.core's
    SSE client, its adapter: the emulator's ``inference:complete`` is what it expects."""
    venv = snowflake_claude_code_venv()
    from benchmarks.servers import SCC_LAUNCHER

    emulator = cortex_emulator_factory(account="BENCHORG-BENCH", user="BENCH", pats=[PAT])
    launcher = tmp_path / "launch.py"
    launcher.write_text(SCC_LAUNCHER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env.update(
        HOME=str(tmp_path),
        SNOWFLAKE_HOME=str(tmp_path / ".snowflake"),
        SNOWFLAKE_ACCOUNT="benchorg-bench",
        SNOWFLAKE_USER="bench",
        SNOWFLAKE_TOKEN=PAT,
        SNOWFLAKE_MODEL="claude-sonnet-4-5",
    )
    log = (tmp_path / "scc.log").open("wb")
    process = subprocess.Popen(
        [str(venv / "bin" / "python"), str(launcher), "127.0.0.1", str(emulator.port), str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "scc.log").read_text()[-2000:]
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "snowflake-claude-code did not start"
            time.sleep(0.1)
        assert emulator.login_requests()  # it really logged in with the connector

        arguments = {"path": "/tmp/x", "limit": 10}
        emulator.script(Reply.tool_use("read_file", arguments, text="Reading.", id="tooluse_q"))
        request = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "stream": True,
            "tools": [{"name": "read_file", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "read it"}],
        }
        response = httpx.post(url + "/v1/messages", json=request, timeout=30)
        events = [
            json.loads(line[len("data: ") :])
            for line in response.text.splitlines()
            if line.startswith("data: ")
        ]
        starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
        assert [block["type"] for block in starts] == ["text", "tool_use"]
        assert starts[1]["id"] == "tooluse_q" and starts[1]["name"] == "read_file"
        partial = "".join(
            e["delta"]["partial_json"]
            for e in events
            if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
        )
        assert json.loads(partial) == arguments
        stop = next(e for e in events if e["type"] == "message_delta")
        assert stop["delta"]["stop_reason"] == "tool_use"
        sent = emulator.inference_requests()[-1]
        assert sent.path == COMPLETE
        assert sent.headers["Authorization"].startswith('Snowflake Token="')
        assert sent.body["tools"][0]["tool_spec"]["name"] == "read_file"

        # What it gets wrong: input tokens are reported as 0 (Cortex sends usage at the end),
        # and a non-streaming request comes back empty (it always asks Cortex to stream, then
        # keeps only the last chunk and reads a `content` key that no Cortex answer has).
        start = next(e for e in events if e["type"] == "message_start")
        assert start["message"]["usage"]["input_tokens"] == 0
        emulator.script(Reply.text("a full answer"))
        plain = httpx.post(url + "/v1/messages", json={**request, "stream": False}, timeout=30)
        assert plain.status_code == 200
        assert plain.json()["content"] == [{"type": "text", "text": ""}]
        assert emulator.inference_requests()[-1].body["stream"] is True
    finally:
        process.terminate()
        process.wait(15)
        log.close()
