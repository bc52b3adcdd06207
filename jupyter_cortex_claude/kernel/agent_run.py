"""``%%cortex_claude --agent``: Claude Code, headless, on the notebook's folder, rendered live.

Claude Code runs as ``claude -p PROMPT --output-format stream-json --verbose --max-turns N`` with
the environment every agent we launch gets (:func:`..claude_env.agent_environment`: the gateway's
URL and key in, the kernel's Snowflake secrets out); each line it prints is one JSON event (its init, the
assistant's turns with tool calls, tool results, the final result), which we render as Markdown
steps updated in place. The kernel's working directory is the notebook's folder (Jupyter starts
kernels there), so that is where Claude Code acts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from ..claude_binary import find_claude, install_hint
from ..claude_env import agent_environment
from ..config import CortexClaude
from .discovery import gateway_endpoint
from .endpoint import GatewayEndpoint

FILE_TOOLS = {"Write", "Edit", "MultiEdit", "NotebookEdit"}


def kernel_agent_environment(
    config: CortexClaude, endpoint: GatewayEndpoint, model: str | None = None
) -> dict[str, str]:
    """The kernel's environment made an agent's: the gateway in, the Snowflake secrets out."""
    return agent_environment(
        config,
        gateway_url=endpoint.gateway_url,
        key=endpoint.key,
        mode=endpoint.mode,
        model=model,
    )


class AgentSteps:
    """The Markdown of a run so far, built from Claude Code's stream-json events."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.files: list[str] = []
        self.result: str | None = None
        self.failed = False
        self.summary = ""

    def apply(self, event: dict[str, Any]) -> bool:
        """Returns True when the rendering changed."""
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            self.steps.append(f"*Claude Code started with model `{event.get('model', '?')}`*")
            return True
        if kind == "assistant":
            changed = False
            for block in (event.get("message") or {}).get("content") or []:
                if block.get("type") == "tool_use":
                    self.steps.append(self._tool_step(block))
                    changed = True
                elif block.get("type") == "text" and block.get("text", "").strip():
                    self.steps.append(block["text"].strip())
                    changed = True
            return changed
        if kind == "result":
            self.result = str(event.get("result") or "")
            self.failed = bool(event.get("is_error")) or event.get("subtype") != "success"
            turns = event.get("num_turns")
            self.summary = f"{event.get('subtype', 'done')}, {turns} turns"
            return True
        return False

    def _tool_step(self, block: dict[str, Any]) -> str:
        name = str(block.get("name"))
        tool_input = block.get("input") or {}
        target = (
            tool_input.get("file_path")
            or tool_input.get("notebook_path")
            or tool_input.get("command")
            or tool_input.get("pattern")
            or tool_input.get("path")
            or ""
        )
        if name in FILE_TOOLS and target:
            self.files.append(str(target))
            return f"✏️ **{name}** `{target}`"
        detail = f" `{str(target)[:200]}`" if target else ""
        return f"🔧 **{name}**{detail}"

    def markdown(self, running: bool) -> str:
        parts = [f"- {step}" if not step.startswith("*") else step for step in self.steps]
        if self.files:
            parts.append("**Files changed:** " + ", ".join(f"`{f}`" for f in self.files))
        if self.result is not None:
            label = "Claude Code failed" if self.failed else "Answer"
            parts.append(f"---\n**{label}** ({self.summary}):\n\n{self.result}")
        elif running:
            parts.append("*working…*")
        return "\n\n".join(parts)


def run_agent(
    prompt: str,
    shell: Any,
    *,
    model: str | None = None,
    max_turns: int = 8,
    mode: str = "acceptEdits",
    cwd: str | None = None,
) -> AgentSteps:
    from IPython.display import Markdown, display

    steps = AgentSteps()
    config = CortexClaude()  # a kernel has no Jupyter configuration: the defaults
    command = find_claude(config)
    if command is None:
        print(install_hint(config), file=sys.stderr)
        return steps
    if not prompt.strip():
        print("The cell is empty: write the task for Claude Code in it.", file=sys.stderr)
        return steps
    endpoint = gateway_endpoint()
    if endpoint is None:
        return steps
    argv = [*command, "-p", prompt, "--output-format", "stream-json", "--verbose"]
    argv += ["--max-turns", str(max_turns), "--permission-mode", mode]
    if model:
        argv += ["--model", model]
    handle = display(Markdown("*starting Claude Code…*"), display_id=True)
    # stderr to a file, not a pipe: a chatty stderr must not fill a pipe nobody reads meanwhile.
    with tempfile.TemporaryFile("w+") as stderr_file:
        process = subprocess.Popen(
            argv,
            cwd=cwd or os.getcwd(),
            env=kernel_agent_environment(config, endpoint, model),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
            # Its own process group: an interrupt kills Claude Code and the tools it started.
            start_new_session=True,
        )
        try:
            _follow(process, steps, lambda text: handle.update(Markdown(text)))
        except KeyboardInterrupt:
            _kill_group(process)
            handle.update(Markdown(steps.markdown(running=False) + "\n\n*(interrupted)*"))
            raise
        stderr_file.seek(0)
        stderr = stderr_file.read()
    text = steps.markdown(running=False)
    if process.returncode and steps.result is None:
        text += f"\n\n**Claude Code exited with {process.returncode}.** {stderr[-1500:]}"
    handle.update(Markdown(text))
    return steps


def _follow(
    process: subprocess.Popen[str], steps: AgentSteps, render: Callable[[str], None]
) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and steps.apply(event):
            render(steps.markdown(running=True))
    process.wait()


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
