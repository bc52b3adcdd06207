"""A notebook user asks questions with ``%%cortex_claude`` in a real kernel; the answer streams in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import claude_executable
from .kernels import RunningKernel, in_kernel_environment, running_kernel

LONG_ANSWER = (
    "Cortex streams this answer word by word, so the notebook shows it growing: "
    "first a few words, then a sentence, then the whole paragraph with **Markdown** in it."
)


@pytest.fixture
def slow_emulator() -> Iterator[CortexEmulator]:
    with CortexEmulator(token_delay=0.05) as emulator:
        yield emulator


@pytest.fixture
def kernel(slow_emulator: CortexEmulator, tmp_path: Path) -> Iterator[RunningKernel]:
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    env = in_kernel_environment(
        slow_emulator, tmp_path / "home", CORTEX_CLAUDE_COMMAND=claude_executable()
    )
    with running_kernel(env, notebook_dir) as running:
        yield running


def _user_text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)


def test_the_answer_streams_into_the_output_as_markdown(
    kernel: RunningKernel, slow_emulator: CortexEmulator
) -> None:
    slow_emulator.script(Reply.text(LONG_ANSWER))
    execution = kernel.run("%%cortex_claude\nExplain streaming in one paragraph.")

    versions = execution.markdown_versions()
    assert versions[-1].startswith(LONG_ANSWER)
    assert "claude-sonnet-4-6" in versions[-1]  # the footer names the model and the tokens
    partial = [text for text in versions[1:-1] if text.rstrip(" ▌") and text != versions[-1]]
    # Updated in place several times before the end, each time showing more of the answer.
    assert len(execution.updates) >= 4
    assert len(partial) >= 3
    lengths = [len(text) for text in partial]
    assert lengths == sorted(lengths)
    assert all(LONG_ANSWER.startswith(text.rstrip(" ▌")) for text in partial)
    request = slow_emulator.inference_requests()[-1].body
    assert request["stream"] is True
    assert _user_text(request["messages"][-1]) == "Explain streaming in one paragraph."


def test_the_conversation_continues_across_cells_until_new(
    kernel: RunningKernel, slow_emulator: CortexEmulator
) -> None:
    slow_emulator.token_delay = 0.0
    slow_emulator.script(Reply.text("Oslo is the capital."), Reply.text("About 700,000 people."))
    kernel.run("%%cortex_claude --system 'Answer briefly.'\nWhat is the capital of Norway?")
    kernel.run("%%cortex_claude\nHow many people live there?")
    second = slow_emulator.inference_requests()[-1].body
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert _user_text(second["messages"][0]) == "What is the capital of Norway?"
    assert _user_text(second["messages"][1]) == "Oslo is the capital."
    assert _user_text(second["messages"][2]) == "How many people live there?"
    assert "Answer briefly." in str(second["system"])

    kernel.run("%%cortex_claude --new --model claude-haiku-4-5\nStart over.")
    third = slow_emulator.inference_requests()[-1].body
    assert len(third["messages"]) == 1
    assert third["model"] == "claude-haiku-4-5"
    assert "system" not in third or "Answer briefly." not in str(third["system"])


def test_context_describes_notebook_variables(
    kernel: RunningKernel, slow_emulator: CortexEmulator
) -> None:
    slow_emulator.token_delay = 0.0
    kernel.run(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south', 'east'], 'revenue': [10.5, 20.0, 7.25]})\n"
        "settings = {'threshold': 0.75, 'owner': 'ada'}\n"
        "numbers = list(range(5000))"
    )
    execution = kernel.run(
        "%%cortex_claude --context sales settings numbers\nWhich region earns the most?"
    )
    assert execution.final_markdown
    prompt = _user_text(slow_emulator.inference_requests()[-1].body["messages"][-1])
    assert "`sales`: pandas DataFrame, 3 rows × 2 columns" in prompt
    assert "- `revenue`: float64" in prompt and "north" in prompt
    assert "`settings`: builtins.dict" in prompt and "'owner': 'ada'" in prompt
    assert "`numbers`: builtins.list, 5000 items" in prompt
    assert "more characters" in prompt  # a long repr is truncated, not sent whole
    assert len(prompt) < 6000
    assert prompt.endswith("Which region earns the most?")

    missing = kernel.run("%%cortex_claude --context nowhere\nHi")
    assert "no variable named 'nowhere'" in missing.stderr


def test_interrupting_the_kernel_closes_the_upstream_call(
    kernel: RunningKernel, slow_emulator: CortexEmulator
) -> None:
    slow_emulator.token_delay = 0.3
    slow_emulator.script(Reply.text(" ".join(f"word{n}" for n in range(200))))

    def answer_is_streaming(messages: list[dict[str, Any]]) -> bool:
        return any(m["header"]["msg_type"] == "update_display_data" for m in messages)

    execution = kernel.execute(
        "%%cortex_claude\nWrite two hundred words.", while_running=answer_is_streaming
    )
    assert execution.status == "error"
    assert execution.reply["content"]["ename"] == "KeyboardInterrupt"
    assert "interrupted" in execution.final_markdown
    assert "word199" not in execution.final_markdown
    # The emulator saw its client (the gateway) leave mid-answer.
    kernel.run("import time\ntime.sleep(1)")
    assert slow_emulator.streams_abandoned == 1
    # The kernel is usable at once, and the interrupted exchange is not part of the conversation.
    slow_emulator.token_delay = 0.0
    kernel.run("%%cortex_claude\nAre you still there?")
    last = slow_emulator.inference_requests()[-1].body
    assert len(last["messages"]) == 1


def test_agent_runs_claude_code_in_the_notebook_folder_and_shows_its_steps(
    kernel: RunningKernel, slow_emulator: CortexEmulator, tmp_path: Path
) -> None:
    slow_emulator.token_delay = 0.0
    target = tmp_path / "notebooks" / "report.md"
    slow_emulator.script(
        Reply.tool_use(
            "Write", {"file_path": str(target), "content": "# Report\n"}, text="Writing it."
        ),
        Reply.text("I wrote report.md with a title."),
    )
    execution = kernel.run(
        "%%cortex_claude --agent --max-turns 4\nCreate report.md with a title.", timeout=240
    )
    final = execution.final_markdown
    assert target.read_text() == "# Report\n"
    assert "✏️ **Write**" in final and "report.md" in final
    assert "**Answer**" in final and "I wrote report.md with a title." in final
    assert len(execution.markdown_versions()) >= 3  # rendered live, step by step
    requests = slow_emulator.inference_requests()
    assert len(requests) == 2
    assert requests[0].headers["authorization"] == "Bearer test-pat-0123456789"


def test_bad_options_explain_themselves(kernel: RunningKernel) -> None:
    execution = kernel.run("%%cortex_claude --frobnicate\nHi")
    assert "unrecognized arguments: --frobnicate" in execution.stderr
    assert "usage: %%cortex_claude" in execution.stderr
