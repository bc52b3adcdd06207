"""Running the real Claude Code CLI in tests: pinned, headless, always with --max-turns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_cortex_claude.testing import Reply

CLAUDE_CODE_VERSION = "2.1.330"


def claude_executable() -> str:
    """The pinned CLI that scripts/test.sh installs; a missing CLI fails the test, it never skips."""
    path = os.environ.get("CORTEX_CLAUDE_TEST_CLAUDE") or shutil.which("claude")
    if not path:
        raise AssertionError(
            "The Claude Code CLI is needed: run `bash scripts/test.sh`, which installs "
            f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}, or set CORTEX_CLAUDE_TEST_CLAUDE."
        )
    return path


@dataclass
class ClaudeRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [event for event in self.events if event.get("type") == "result"]
        assert results, f"no result event; stderr: {self.stderr[-2000:]}"
        return results[-1]


async def run_claude_headless(
    prompt: str,
    *,
    base_url: str,
    auth_token: str,
    cwd: Path,
    home: Path,
    max_turns: int = 4,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str | None] | None = None,
    timeout: float = 240,
) -> ClaudeRun:
    """``extra_env`` adds variables; a None value removes one (e.g. CLAUDE_CODE_MAX_RETRIES, to run
    with Claude Code's default retries)."""
    env: dict[str, str | None] = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": auth_token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        **(extra_env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        claude_executable(),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        str(max_turns),
        *extra_args,
        cwd=str(cwd),
        env={name: value for name, value in env.items() if value is not None},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    events = []
    for line in stdout.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return ClaudeRun(process.returncode or 0, events, stderr.decode(errors="replace"))


class HelloFileTask:
    """The task most Claude Code tests give: "create hello.txt containing hi". The model (scripted
    in the emulator) answers with a Write tool call, Claude Code writes the file, and the model's
    second turn says so."""

    prompt = "create a file hello.txt containing hi"
    final_answer = "I created hello.txt containing hi."

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.project = tmp_path / "project"
        self.project.mkdir()
        self.target = self.project / "hello.txt"

    def write_call(self) -> Reply:
        return Reply.tool_use(
            "Write", {"file_path": str(self.target), "content": "hi\n"}, text="Writing it."
        )

    def replies(self) -> tuple[Reply, Reply]:
        return self.write_call(), Reply.text(self.final_answer)

    async def run(self, base_url: str, auth_token: str, *extra_args: str) -> ClaudeRun:
        """Claude Code on the task, headless; asserts what the user sees: the file and the answer."""
        run = await run_claude_headless(
            self.prompt,
            base_url=base_url,
            auth_token=auth_token,
            cwd=self.project,
            home=self.home,
            extra_args=extra_args,
        )
        assert run.result["is_error"] is False, run.result
        assert run.result["result"] == self.final_answer
        assert self.target.read_text() == "hi\n"
        return run


# -- the Codex CLI ---------------------------------------------------------------------------------

CODEX_VERSION = "0.171.0"


def codex_executable() -> str:
    """The pinned Codex CLI that scripts/test.sh installs; a missing CLI fails, it never skips."""
    path = os.environ.get("CORTEX_CLAUDE_TEST_CODEX") or shutil.which("codex")
    if not path:
        raise AssertionError(
            "The Codex CLI is needed: run `bash scripts/test.sh`, which installs "
            f"@openai/codex@{CODEX_VERSION}, or set CORTEX_CLAUDE_TEST_CODEX."
        )
    return path


@dataclass
class CodexRun:
    returncode: int
    events: list[dict[str, Any]]  # `codex exec --json` lines
    stderr: str

    def agent_messages(self) -> list[str]:
        return [
            event["item"]["text"]
            for event in self.events
            if event.get("type") == "item.completed"
            and event.get("item", {}).get("type") == "agent_message"
        ]


async def run_codex_headless(
    prompt: str,
    *,
    environment: dict[str, str],
    cwd: Path,
    home: Path,
    model: str | None = None,
    timeout: float = 240,
) -> CodexRun:
    """``codex exec`` without a terminal or approvals, as the issue's tests ask (stdin closed)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **environment}
    home.mkdir(parents=True, exist_ok=True)
    model_args = ("-m", model) if model else ()
    process = await asyncio.create_subprocess_exec(
        codex_executable(),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        *model_args,
        prompt,
        cwd=str(cwd),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    events = []
    for line in stdout.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return CodexRun(process.returncode or 0, events, stderr.decode(errors="replace"))
