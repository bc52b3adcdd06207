"""The real Codex CLI (pinned, headless) works through Jupyter's Responses endpoint on Cortex.

Codex is configured the way the extension configures it for terminals: the CODEX_HOME the gateway
writes and the environment every launched agent gets. The strict Cortex emulator plays the model.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cortex_claude.claude_env import claude_code_environment
from jupyter_cortex_claude.codex_home import write_codex_home
from jupyter_cortex_claude.testing import CHAT_PATH, RESPONSES_PATH, Fault, Reply

from .clients import CodexRun, codex_executable, run_codex_headless
from .conftest import RunningGateway, emulator_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FINAL_ANSWER = "I created hello.txt containing hi."


# What the launcher types into the terminal, made headless so the test can see it finish.
def headless_codex() -> list[str]:
    return [
        codex_executable(),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
    ]


@pytest.fixture
def cortex_claude_config(cortex_emulator: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Tests parametrize this fixture indirectly with extra ``c.CortexClaude`` settings."""
    return emulator_config(
        cortex_emulator,
        codex_command=shlex.join(headless_codex()),
        **getattr(request, "param", {}),
    )


class CodexTask:
    """Codex in a project folder with the CODEX_HOME and environment of a Jupyter terminal."""

    def __init__(self, gateway: RunningGateway, tmp_path: Path) -> None:
        self.gateway = gateway
        self.project = tmp_path / "project"
        self.project.mkdir()
        self.home = tmp_path / "home"
        gateway_url = gateway.url("cortex-claude")
        codex_home = write_codex_home(gateway.service.config, gateway_url, tmp_path / "codex-home")
        self.environment = claude_code_environment(
            gateway.service.config,
            gateway.service.catalogue,
            gateway_url=gateway_url,
            key=gateway.key,
            mode="server-extension",
            codex_home=str(codex_home),
        )

    async def run(self, prompt: str, model: str | None = None) -> CodexRun:
        return await run_codex_headless(
            prompt, environment=self.environment, cwd=self.project, home=self.home, model=model
        )

    def chat_requests(self) -> list[dict]:
        return self.requests_to(CHAT_PATH)

    def requests_to(self, path: str) -> list[dict]:
        requests = self.gateway.emulator.inference_requests()
        return [request.body for request in requests if request.path == path]


def write_hello() -> Reply:
    return Reply.tool_use("exec_command", {"cmd": "printf 'hi\\n' > hello.txt"}, text="Writing.")


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "openai-gpt-5"])
async def test_codex_writes_a_file_through_jupyter(
    running_gateway: RunningGateway, tmp_path: Path, model: str
) -> None:
    task = CodexTask(running_gateway, tmp_path)
    running_gateway.emulator.script(write_hello(), Reply.text(FINAL_ANSWER))

    run = await task.run("create hello.txt containing hi", model=model)

    assert run.returncode == 0, run.stderr[-3000:]
    assert (task.project / "hello.txt").read_text() == "hi\n"
    assert run.agent_messages()[-1] == FINAL_ANSWER
    first, second = task.chat_requests()
    assert first["model"] == second["model"] == model
    assert first["stream"] is True
    call = second["messages"][-2]["tool_calls"][0]
    assert call["function"]["name"] == "exec_command"
    assert second["messages"][-1]["tool_call_id"] == call["id"]
    assert (
        running_gateway.emulator.requests[-1]
        .headers["authorization"]
        .endswith("test-pat-0123456789")
    )


@pytest.mark.parametrize(
    "cortex_claude_config", [{"responses_upstream": "responses"}], indirect=True
)
async def test_codex_writes_a_file_through_cortex_responses_api(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    """The opt-in upstream: an OpenAI model answered by Cortex's (emulated) Responses API."""
    task = CodexTask(running_gateway, tmp_path)
    running_gateway.emulator.script(write_hello(), Reply.text(FINAL_ANSWER))

    run = await task.run("create hello.txt containing hi", model="openai-gpt-5")

    assert run.returncode == 0, run.stderr[-3000:]
    assert (task.project / "hello.txt").read_text() == "hi\n"
    assert run.agent_messages()[-1] == FINAL_ANSWER
    assert task.chat_requests() == []
    first, second = task.requests_to(RESPONSES_PATH)
    assert first["model"] == second["model"] == "openai-gpt-5"
    assert first["stream"] is True
    call, output = second["input"][-2:]
    assert (call["type"], call["name"]) == ("function_call", "exec_command")
    assert output["type"] == "function_call_output" and output["call_id"] == call["call_id"]


async def test_codex_streams_a_text_answer(running_gateway: RunningGateway, tmp_path: Path) -> None:
    task = CodexTask(running_gateway, tmp_path)
    running_gateway.emulator.script(Reply.text("Cortex says hello, streamed in many small pieces."))

    run = await task.run("say hello")

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.agent_messages() == ["Cortex says hello, streamed in many small pieces."]
    (sent,) = task.chat_requests()
    assert sent["stream"] is True
    assert sent["model"] == running_gateway.service.config.default_model


async def test_codex_retries_a_broken_upstream_stream(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    task = CodexTask(running_gateway, tmp_path)
    running_gateway.emulator.script(Reply.text("The whole answer, on the second try."))
    running_gateway.emulator.fail_next(Fault.cut_stream(after_events=2))

    run = await task.run("say hello", model="openai-gpt-5")

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.agent_messages() == ["The whole answer, on the second try."]
    assert len(task.chat_requests()) == 2  # the cut one, then Codex's retry


async def test_codex_waits_out_a_429_with_retry_after(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    task = CodexTask(running_gateway, tmp_path)
    running_gateway.emulator.script(Reply.text("Answered after the throttle."))
    # Three 429s exhaust the gateway's own retries (max_retries=2): Codex gets a 429 with
    # Retry-After, which it waits out (without the header it would give up at once: clients.md).
    running_gateway.emulator.fail_next(Fault.status(429), times=3)

    run = await task.run("say hello", model="openai-gpt-5")

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.agent_messages() == ["Answered after the throttle."]
    # Three refused by the emulator, then Codex's retry after the wait, answered.
    assert len(task.chat_requests()) == 4


async def test_the_codex_tile_opens_a_terminal_where_codex_answers_from_cortex(
    running_gateway: RunningGateway,
) -> None:
    """What the launcher tile "Codex (Cortex)" and `%cortex_claude codex` ask the server for."""
    running_gateway.emulator.script(Reply.text("Hello from Codex in a Jupyter terminal."))
    root = Path(running_gateway.serverapp.root_dir)
    (root / "work").mkdir()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            running_gateway.url("cortex-claude/terminals"),
            json={"agent": "codex", "cwd": "work", "model": "openai-gpt-5", "prompt": "say hello"},
            headers={"Authorization": f"token {running_gateway.jupyter_token}"},
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["agent"] == "codex"
    assert answer["command"] == shlex.join(
        [*headless_codex(), "-m", "openai-gpt-5", "--", "say hello"]
    )

    async def codex_asked() -> list[Any]:
        for _ in range(300):
            requests = running_gateway.emulator.inference_requests()
            if requests:
                return requests
            await asyncio.sleep(0.2)
        raise AssertionError("Codex in the terminal never reached Cortex")

    (request,) = await codex_asked()
    assert request.body["model"] == "openai-gpt-5"
    assert request.headers["authorization"] == "Bearer test-pat-0123456789"
    user_text = json.dumps(request.body["messages"])
    assert "say hello" in user_text
