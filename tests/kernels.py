"""A real IPython kernel for tests: started with jupyter_client, driven over ZMQ like a notebook."""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from jupyter_cortex_claude.testing import CortexEmulator

from .conftest import TEST_PAT


def in_kernel_environment(emulator: CortexEmulator, home: Path, **extra: str) -> dict[str, str]:
    """A kernel with no Jupyter server around it and Snowflake settings aimed at the emulator."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SNOWFLAKE_", "CORTEX_CLAUDE_GATEWAY", "JPY_", "JUPYTER_"))
    }
    env.update(
        {
            "HOME": str(home),
            "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
            "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
            "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
            "SNOWFLAKE_HOME": str(home / "no-snowflake-home"),
            "SNOWFLAKE_ACCOUNT": "testorg-testaccount",
            "SNOWFLAKE_USER": "testuser",
            "SNOWFLAKE_HOST": emulator.host,
            "SNOWFLAKE_PORT": str(emulator.port),
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_TOKEN": TEST_PAT,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            **extra,
        }
    )
    return env


@dataclass
class Execution:
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, *kinds: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["header"]["msg_type"] in kinds]

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stderr"
        )

    def markdown_versions(self) -> list[str]:
        """Every Markdown the cell showed, first display and each update, in order."""
        return [
            m["content"]["data"]["text/markdown"]
            for m in self.of_type("display_data", "update_display_data", "execute_result")
            if "text/markdown" in m["content"].get("data", {})
        ]

    @property
    def updates(self) -> list[dict[str, Any]]:
        return self.of_type("update_display_data")

    @property
    def final_markdown(self) -> str:
        versions = self.markdown_versions()
        assert versions, f"no Markdown output; stderr: {self.stderr}; reply: {self.reply}"
        return versions[-1]

    def error_text(self) -> str:
        content = self.reply["content"]
        return f"{content.get('ename')}: {content.get('evalue')}"


class RunningKernel:
    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        self.client = manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def execute(
        self,
        code: str,
        timeout: float = 120,
        while_running: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> Execution:
        """Runs a cell and collects its IOPub messages until the kernel is idle again.

        ``while_running`` sees the messages so far after each one; returning True interrupts the
        kernel (as the notebook's stop button does).
        """
        msg_id = self.client.execute(code)
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        interrupted = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"cell did not finish in {timeout}s: {code[:200]}")
            try:
                message = self.client.get_iopub_msg(timeout=min(remaining, 0.5))
            except queue.Empty:
                if while_running is not None and not interrupted and while_running(messages):
                    self.manager.interrupt_kernel()
                    interrupted = True
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            if kind == "status" and message["content"]["execution_state"] == "idle":
                break
            messages.append(message)
            if while_running is not None and not interrupted and while_running(messages):
                self.manager.interrupt_kernel()
                interrupted = True
        reply = self.client.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=30)
        return Execution(reply, messages)

    def run(self, code: str, timeout: float = 120) -> Execution:
        """Runs a cell that must succeed."""
        execution = self.execute(code, timeout)
        assert execution.status == "ok", execution.error_text() + "\n" + execution.stderr
        return execution

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> None:
        """A comm message as the frontend sends it (a widget click, a changed value)."""
        message = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.client.shell_channel.send(message)

    def collect(
        self, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Every IOPub message (whatever its parent) until ``until`` says enough."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not until(messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met in {timeout}s; {len(messages)} messages")
            try:
                messages.append(self.client.get_iopub_msg(timeout=min(remaining, 0.5)))
            except queue.Empty:
                continue
        return messages

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@contextmanager
def running_kernel(env: dict[str, str], cwd: Path) -> Iterator[RunningKernel]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(cwd))
    kernel = RunningKernel(manager)
    try:
        kernel.run("%load_ext jupyter_cortex_claude")
        yield kernel
    finally:
        kernel.stop()
