"""The real Claude Code CLI, in a terminal-like subprocess, works through Jupyter on Cortex."""

from __future__ import annotations

from pathlib import Path

from jupyter_cortex_claude.testing import Reply

from .clients import HelloFileTask, run_claude_headless
from .conftest import RunningGateway


async def test_claude_code_writes_a_file_through_jupyter(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    task = HelloFileTask(tmp_path)
    running_gateway.emulator.script(*task.replies())

    await task.run(running_gateway.anthropic_url, running_gateway.key)

    requests = running_gateway.emulator.inference_requests()
    assert len(requests) == 2
    first, second = (request.body for request in requests)
    # Claude Code's default id is not a Cortex model; the family rule maps it.
    assert first["model"].startswith("claude-opus")
    assert first["max_tokens"] <= 16384
    assert all(message["role"] in ("user", "assistant") for message in second["messages"])
    tool_result = second["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert requests[0].headers["authorization"] == "Bearer test-pat-0123456789"


async def test_claude_code_uses_the_model_the_user_picked(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    running_gateway.emulator.script(Reply.text("Hi from haiku."))
    project = tmp_path / "project"
    project.mkdir()
    run = await run_claude_headless(
        "say hi",
        base_url=running_gateway.anthropic_url,
        auth_token=running_gateway.key,
        cwd=project,
        home=tmp_path / "home",
        extra_args=("--model", "claude-haiku-4-5-20251001"),
        max_turns=2,
    )
    assert run.result["is_error"] is False, run.result
    assert run.result["result"] == "Hi from haiku."
    assert running_gateway.emulator.inference_requests()[0].body["model"] == "claude-haiku-4-5"
