"""The chat panel in a real kernel, driven by the comm messages a notebook frontend sends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_cortex_claude.kernel.chat_widget import INSERT_CELL_MIME_TYPE, code_blocks
from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply

from .kernels import RunningKernel, in_kernel_environment, running_kernel

ANSWER = (
    "Here is a function that adds two numbers, explained step by step for you:\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n\nCall it as `add(1, 2)`."
)


@pytest.fixture
def emulator() -> Iterator[CortexEmulator]:
    with CortexEmulator(token_delay=0.05) as running:
        yield running


@pytest.fixture
def kernel(emulator: CortexEmulator, tmp_path: Path) -> Iterator[RunningKernel]:
    with running_kernel(in_kernel_environment(emulator, tmp_path / "home"), tmp_path) as running:
        yield running


class Panel:
    """The widget ids a frontend would know from the comm_open messages."""

    def __init__(self, kernel: RunningKernel) -> None:
        self.kernel = kernel
        execution = kernel.run(
            "from jupyter_cortex_claude import chat\n"
            "panel = chat()\n"
            "display(panel)\n"
            "print(panel.prompt.model_id, panel.send_button.model_id, panel.stop_button.model_id,"
            " panel.tokens.model_id)\n"
            "print('|'.join(panel.model.options))"
        )
        ids_line, models_line = execution.stdout.strip().splitlines()
        self.prompt, self.send, self.stop, self.tokens = ids_line.split()
        self.models = models_line.split("|")
        views = [
            m
            for m in execution.of_type("display_data")
            if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        ]
        assert views, "the panel was not displayed as a widget"

    def ask(self, text: str) -> None:
        self.seen: list[dict[str, Any]] = []
        self.kernel.send_comm(
            self.prompt, {"method": "update", "state": {"value": text}, "buffer_paths": []}
        )
        self.click(self.send)

    def click(self, comm_id: str) -> None:
        self.kernel.send_comm(comm_id, {"method": "custom", "content": {"event": "click"}})

    def watch(self, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """IOPub messages since the last question, until ``until`` is satisfied."""
        consumed = 0

        def satisfied(new: list[dict[str, Any]]) -> bool:
            nonlocal consumed
            self.seen.extend(new[consumed:])
            consumed = len(new)
            return until(self.seen)

        self.kernel.collect(satisfied)
        return self.seen

    def answered(self, messages: list[dict[str, Any]]) -> bool:
        """The Send button was disabled and then enabled again: the answer is over."""
        states = [s["disabled"] for s in _states(messages, self.send) if "disabled" in s]
        return True in states and states[-1] is False


def _states(messages: list[dict[str, Any]], comm_id: str | None = None) -> list[dict[str, Any]]:
    return [
        m["content"]["data"]["state"]
        for m in messages
        if m["header"]["msg_type"] == "comm_msg"
        and m["content"]["data"].get("method") == "update"
        and (comm_id is None or m["content"]["comm_id"] == comm_id)
    ]


def _markdown_updates(messages: list[dict[str, Any]]) -> list[str]:
    return [
        state["outputs"][0]["data"]["text/markdown"]
        for state in _states(messages)
        if state.get("outputs") and "text/markdown" in state["outputs"][0]["data"]
    ]


def _insert_cell_requests(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        output["data"][INSERT_CELL_MIME_TYPE]
        for state in _states(messages)
        for output in state.get("outputs") or ()
        if INSERT_CELL_MIME_TYPE in output.get("data", {})
    ]


def test_the_panel_streams_an_answer_counts_tokens_and_copies_code_to_a_cell(
    kernel: RunningKernel, emulator: CortexEmulator
) -> None:
    panel = Panel(kernel)
    assert "claude-haiku-4-5" in panel.models and "claude-sonnet-4-6" in panel.models

    emulator.script(Reply.text(ANSWER))
    panel.ask("Write an add function")
    messages = panel.watch(panel.answered)

    shown = _markdown_updates(messages)
    assert shown[0] == "**You:** Write an add function"
    partial = [text for text in shown if text.endswith(" ▌")]
    assert len(partial) >= 3  # the answer grew in place several times
    assert shown[-1] == ANSWER
    counter = [s["value"] for s in _states(messages, panel.tokens) if "value" in s][-1]
    assert counter.startswith("Conversation: ") and "0 tokens" not in counter
    assert emulator.inference_requests()[-1].body["messages"][-1]["content"] == (
        "Write an add function"
    )

    # A copy button per code block; a click puts an insert-cell output in the panel, which the
    # JupyterLab extension renders by inserting the cell (tests/test_lab_chat_widget.py).
    copy_buttons = [
        m["content"]["comm_id"]
        for m in messages
        if m["header"]["msg_type"] == "comm_open"
        and m["content"]["data"]["state"].get("description") == "Copy code 1 to a cell"
    ]
    assert len(copy_buttons) == 1
    panel.seen = []
    panel.click(copy_buttons[0])
    inserted = panel.watch(lambda messages: _insert_cell_requests(messages) != [])
    (request,) = _insert_cell_requests(inserted)
    assert request["code"] == "def add(a, b):\n    return a + b"
    assert request["nonce"] and request["created_at"] > 0

    # The second question carries the first exchange.
    emulator.script(Reply.text("Sure."))
    panel.ask("Now subtract")
    panel.watch(panel.answered)
    roles = [m["role"] for m in emulator.inference_requests()[-1].body["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_stop_ends_the_answer_and_closes_the_upstream_call(
    kernel: RunningKernel, emulator: CortexEmulator
) -> None:
    panel = Panel(kernel)
    emulator.token_delay = 0.3
    emulator.script(Reply.text(" ".join(f"word{n}" for n in range(200))))
    panel.ask("Talk for a long time")
    panel.watch(lambda messages: any(t.endswith(" ▌") for t in _markdown_updates(messages)))
    panel.click(panel.stop)
    messages = panel.watch(panel.answered)
    final = _markdown_updates(messages)[-1]
    assert final.endswith("*(stopped)*")
    assert "word199" not in final
    for _ in range(50):
        if emulator.streams_abandoned:
            break
        time.sleep(0.1)
    assert emulator.streams_abandoned == 1


def test_stop_ends_an_answer_whose_model_stalled(
    kernel: RunningKernel, emulator: CortexEmulator
) -> None:
    panel = Panel(kernel)
    # The model sends a few words, then nothing for ten minutes: Stop must not wait for it.
    emulator.fail_next(Fault.stall_mid_stream(after_events=5, seconds=600))
    emulator.script(Reply.text(" ".join(f"word{n}" for n in range(50))))
    panel.ask("Think hard")
    panel.watch(lambda messages: any(t.endswith(" ▌") for t in _markdown_updates(messages)))
    time.sleep(1.0)  # the five events took ~0.2 s: the model is silent now
    panel.click(panel.stop)
    messages = panel.watch(panel.answered)  # times out after 60 s if Stop waited for the model
    final = _markdown_updates(messages)[-1]
    assert final.endswith("*(stopped)*"), final
    for _ in range(50):
        if emulator.streams_abandoned + emulator.requests_dropped:
            break
        time.sleep(0.1)
    assert emulator.streams_abandoned + emulator.requests_dropped == 1


def test_code_blocks_are_found_in_markdown() -> None:
    assert code_blocks(ANSWER) == ["def add(a, b):\n    return a + b"]
    assert code_blocks("no code here") == []
    assert code_blocks("```\nA\n```\ntext\n```sql\nB\n```") == ["A", "B"]
