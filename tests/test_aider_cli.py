"""Aider, an OpenAI-compatible coding agent from PyPI, edits a file through Jupyter's OpenAI endpoint.

Aider talks to the endpoint through litellm and the openai SDK, streaming, as Cursor and Continue
do; the strict Cortex emulator answers in Aider's "whole" edit format.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from jupyter_cortex_claude.testing import CHAT_PATH, Reply

from .conftest import RunningGateway


def aider_executable() -> str:
    """Aider pins many packages, so it lives in its own venv (`pip install aider-chat` there)."""
    path = os.environ.get("CORTEX_CLAUDE_TEST_AIDER") or shutil.which("aider")
    if not path:
        raise AssertionError(
            "Aider is needed: `python -m venv V && V/bin/pip install aider-chat`, then set "
            "CORTEX_CLAUDE_TEST_AIDER=V/bin/aider."
        )
    return path


async def test_aider_writes_a_file_through_the_openai_endpoint(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    # Aider's "whole" edit format: the file name, then the whole file in a fence.
    running_gateway.emulator.script(Reply.text("hello.txt\n```\nhi\n```\n"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "OPENAI_API_BASE": running_gateway.url("cortex-claude/openai/v1"),
        "OPENAI_API_KEY": running_gateway.key,
        # No fetching of litellm's model price list: only the registries are reachable here.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    process = await asyncio.create_subprocess_exec(
        aider_executable(),
        "--model",
        "openai/openai-gpt-4.1",
        "--edit-format",
        "whole",
        "--message",
        "create hello.txt containing hi",
        "--yes-always",
        "--no-git",
        "--no-check-update",
        "--no-analytics",
        "--no-show-model-warnings",
        "--no-pretty",
        "--map-tokens",
        "0",
        "hello.txt",
        cwd=str(project),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 240)
    transcript = output.decode(errors="replace")
    assert process.returncode == 0, transcript[-3000:]
    assert (project / "hello.txt").read_text() == "hi\n", transcript[-3000:]
    (sent,) = [r.body for r in running_gateway.emulator.inference_requests() if r.path == CHAT_PATH]
    assert sent["model"] == "openai-gpt-4.1"
    assert sent["stream"] is True
    assert any(
        message["role"] == "user" and "create hello.txt" in str(message["content"])
        for message in sent["messages"]
    )
