"""`cortex-claude` outside Jupyter: the gateway alone, and Claude Code launched against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import claude_executable, codex_executable
from .conftest import TEST_PAT, SdkClients

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Snowflake secrets a user may have in the environment Jupyter, a kernel or cortex-claude starts
# from, besides the SNOWFLAKE_TOKEN the gateway itself uses: the Snowflake CLI's per-connection
# overrides and the connector's other secrets. No agent we launch may see one.
OTHER_SECRETS = {
    "SNOWFLAKE_CONNECTIONS_PROD_PASSWORD": "prod-password-secret",
    "SNOWFLAKE_CONNECTIONS_PROD_TOKEN": "prod-token-secret",
    "snowflake_connections_dev_private_key_raw": "dev-private-key-secret",
    "SNOWFLAKE_OAUTH_CLIENT_SECRET": "oauth-client-secret",
    "SNOWFLAKE_PASSCODE": "123456-mfa-secret",
    "PRIVATE_KEY_PASSPHRASE": "snowcli-passphrase-secret",
}


def parse_env_dump(path: Path) -> dict[str, str]:
    """The output of `env`, as the agent wrote it."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def assert_no_secret(dump: Path) -> None:
    seen_text, seen = dump.read_text(), parse_env_dump(dump)
    for name, value in {**OTHER_SECRETS, "SNOWFLAKE_TOKEN": TEST_PAT}.items():
        assert name not in seen, name
        assert value not in seen_text, name


# The console script pip installed next to this Python: what users run.
CORTEX_CLAUDE = [str(Path(sys.executable).parent / "cortex-claude")]


def emulator_environment(emulator: CortexEmulator, home: Path) -> dict[str, str]:
    """How a user points cortex-claude at Snowflake with environment variables alone."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "SNOWFLAKE_HOME": str(home / ".snowflake"),
        "SNOWFLAKE_ACCOUNT": "testorg-testaccount",
        "SNOWFLAKE_USER": "testuser",
        "SNOWFLAKE_HOST": emulator.host,
        "SNOWFLAKE_PORT": str(emulator.port),
        "SNOWFLAKE_PROTOCOL": "http",
        "SNOWFLAKE_TOKEN": TEST_PAT,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        # The package under test, when it is not the installed one (a worktree on PYTHONPATH).
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
    }


@dataclass
class Served:
    process: asyncio.subprocess.Process
    anthropic_url: str
    openai_url: str
    key: str
    stdout: str


@contextlib.asynccontextmanager
async def serving(cortex_emulator: CortexEmulator, tmp_path: Path) -> AsyncIterator[Served]:
    process = await asyncio.create_subprocess_exec(
        *CORTEX_CLAUDE,
        "serve",
        env=emulator_environment(cortex_emulator, tmp_path / "home"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    values: dict[str, str] = {}
    while "key" not in values:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line, "cortex-claude serve exited before printing its key"
        lines.append(line)
        name, _, value = line.strip().partition(":")
        if value and name in ("anthropic base url", "openai base url", "key"):
            values[name] = value.strip()
    try:
        yield Served(
            process,
            values["anthropic base url"],
            values["openai base url"],
            values["key"],
            "".join(lines),
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def test_serve_answers_the_anthropic_and_openai_sdks_through_cortex(
    cortex_emulator: CortexEmulator, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    cortex_emulator.script(
        Reply.text("Hello from the standalone gateway."), Reply.text("Hello, OpenAI client.")
    )
    async with serving(cortex_emulator, tmp_path) as served:
        claude = sdk_clients.anthropic(served.anthropic_url, served.key)
        message = await claude.messages.create(
            model="claude-sonnet-4-5-20250929",
            max_tokens=20_000,
            messages=[{"role": "user", "content": "hi"}],
        )
        gpt = sdk_clients.openai(served.openai_url, served.key)
        completion = await gpt.chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}]
        )

    assert message.content[0].text == "Hello from the standalone gateway."  # type: ignore[union-attr]
    assert completion.choices[0].message.content == "Hello, OpenAI client."
    first = cortex_emulator.inference_requests()[0]
    assert first.body["model"] == "claude-sonnet-4-5"
    assert first.body["max_tokens"] <= 16_384
    assert first.headers["authorization"] == f"Bearer {TEST_PAT}"


async def test_serve_accepts_only_its_key_and_stops_cleanly(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    async with serving(cortex_emulator, tmp_path) as served:
        async with httpx.AsyncClient() as client:
            models_url = served.anthropic_url + "/v1/models"
            anonymous = await client.get(models_url)
            wrong = await client.get(models_url, headers={"x-api-key": "not-the-key"})
            right = await client.get(models_url, headers={"x-api-key": served.key})
        assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
        assert served.anthropic_url.startswith("http://127.0.0.1:")

        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), 30) == 0
        assert served.process.stderr is not None
        stderr = (await served.process.stderr.read()).decode()
    assert served.key not in stderr  # the key goes to stdout only
    assert TEST_PAT not in stderr + served.stdout


async def run_cortex_claude(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CORTEX_CLAUDE,
        *args,
        env=env,
        cwd=str(cwd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_cortex_claude_runs_claude_code_on_cortex_and_hides_the_snowflake_token(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    cortex_emulator.script(
        Reply.tool_use("Bash", {"command": "env > seen-env.txt"}, text="Looking."),
        Reply.text("Done looking."),
    )
    code, stdout, stderr = await run_cortex_claude(
        "--claude",
        claude_executable(),
        "--model",
        "claude-opus-4-6",
        "--",
        "-p",
        "look at the environment",
        "--max-turns",
        "2",
        "--allowedTools",
        "Bash",
        "--output-format",
        "stream-json",
        "--verbose",
        env={**emulator_environment(cortex_emulator, tmp_path / "home"), **OTHER_SECRETS},
        cwd=project,
    )
    assert code == 0, stderr[-2000:]
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    result = next(event for event in events if event.get("type") == "result")
    assert result["result"] == "Done looking."
    assert cortex_emulator.inference_requests()[0].body["model"] == "claude-opus-4-6"

    seen = parse_env_dump(project / "seen-env.txt")
    assert seen["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert seen["ANTHROPIC_BASE_URL"].endswith("/cortex-claude/anthropic")
    assert seen["ANTHROPIC_AUTH_TOKEN"] == seen["CORTEX_CLAUDE_GATEWAY_KEY"]
    assert seen["CORTEX_CLAUDE_GATEWAY_MODE"] == "standalone"
    assert_no_secret(project / "seen-env.txt")


async def test_cortex_claude_exits_with_claudes_exit_code(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    env = emulator_environment(cortex_emulator, tmp_path / "home")
    direct = await asyncio.create_subprocess_exec(
        claude_executable(),
        "--no-such-option",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    expected = await direct.wait()
    assert expected != 0

    code, _, _ = await run_cortex_claude(
        "--claude", claude_executable(), "--", "--no-such-option", env=env, cwd=tmp_path
    )
    assert code == expected


async def test_a_missing_claude_is_explained(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    code, _, stderr = await run_cortex_claude(
        "--claude",
        "no-claude-here",
        env=emulator_environment(cortex_emulator, tmp_path / "home"),
        cwd=tmp_path,
    )
    assert code == 127
    assert "npm install -g --prefix " in stderr
    assert "@anthropic-ai/claude-code@2.1.330" in stderr  # pinned, as in every other place


async def test_cortex_claude_codex_runs_codex_on_cortex_without_the_snowflake_token(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    cortex_emulator.script(
        Reply.tool_use("exec_command", {"cmd": "env > seen-env.txt"}, text="Looking."),
        Reply.text("Done looking."),
    )
    code, stdout, stderr = await run_cortex_claude(
        "codex",
        "--codex",
        codex_executable(),
        "--model",
        "openai-gpt-5",
        "--",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "look at the environment",
        env={**emulator_environment(cortex_emulator, tmp_path / "home"), **OTHER_SECRETS},
        cwd=project,
    )
    assert code == 0, stderr[-2000:]
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    messages = [
        e["item"]["text"] for e in events if e.get("item", {}).get("type") == "agent_message"
    ]
    assert messages[-1] == "Done looking."
    assert [r.body["model"] for r in cortex_emulator.inference_requests()] == ["openai-gpt-5"] * 2

    seen = parse_env_dump(project / "seen-env.txt")
    assert seen["CORTEX_CLAUDE_GATEWAY_MODE"] == "standalone"
    assert_no_secret(project / "seen-env.txt")
    # The run's own CODEX_HOME (with the gateway's address) is gone with the gateway.
    assert not Path(seen["CODEX_HOME"]).exists()
    assert not (tmp_path / "home" / ".codex" / "config.toml").exists()
