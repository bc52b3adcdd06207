"""The example notebooks run top to bottom (nbclient, a real kernel, the in-kernel gateway, the
emulator) and show what they promise."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_cortex_claude.kernel.usage_view import snowflake_usage
from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .clients import claude_executable
from .kernels import in_kernel_environment

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, emulator: CortexEmulator, tmp_path: Path) -> Any:
    folder = tmp_path / "work"
    folder.mkdir(exist_ok=True)
    shutil.copy(NOTEBOOKS / name, folder / name)
    notebook = nbformat.read(folder / name, as_version=4)
    env = in_kernel_environment(
        emulator, tmp_path / "home", CORTEX_CLAUDE_COMMAND=claude_executable()
    )
    client = NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env=env)
    return notebook


def outputs_of(cell: Any) -> str:
    """Everything a cell shows, as text (Markdown, plain text, HTML, streams)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        for mime in ("text/markdown", "text/plain", "text/html"):
            if mime in output.get("data", {}):
                parts.append(output["data"][mime])
    return "\n".join(parts)


def cell_starting(notebook: Any, prefix: str, nth: int = 0) -> Any:
    cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(prefix)]
    return cells[nth]


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_kept_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, name


def test_quickstart_configures_checks_status_and_chats(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    cortex_emulator.script(
        Reply.text("I can explain code, write pandas and plot with you."),
        Reply.text("Use `pd.read_csv(path, dtype=...)` to fix column types early."),
    )
    notebook = run_notebook("quickstart.ipynb", cortex_emulator, tmp_path)

    status = outputs_of(cell_starting(notebook, "%cortex_claude status"))
    assert "in-kernel" in status
    first = outputs_of(cell_starting(notebook, "%%cortex_claude"))
    assert "I can explain code, write pandas and plot with you." in first
    second = outputs_of(cell_starting(notebook, "%%cortex_claude", 1))
    assert "pd.read_csv(path, dtype=...)" in second
    follow_up = cortex_emulator.inference_requests()[-1].body["messages"]
    assert len(follow_up) == 3  # the second cell continued the conversation
    widget = cell_starting(notebook, "from jupyter_cortex_claude import chat")
    assert any(
        "application/vnd.jupyter.widget-view+json" in output.get("data", {})
        for output in widget.outputs
    )


def test_chat_with_dataframe_sends_the_schema_and_shows_the_answer(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    cortex_emulator.script(
        Reply.text("North earns the most per order: `(orders.revenue / orders.orders)`."),
        Reply.text("Look at west first: fewest orders."),
    )
    notebook = run_notebook("chat_with_dataframe.ipynb", cortex_emulator, tmp_path)
    answer = outputs_of(cell_starting(notebook, "%%cortex_claude --new --context orders"))
    assert "North earns the most per order" in answer
    assert "Look at west first" in outputs_of(cell_starting(notebook, "%%cortex_claude\n"))
    first_prompt = cortex_emulator.inference_requests()[0].body["messages"][-1]["content"]
    assert "`orders`: pandas DataFrame, 6 rows × 3 columns" in first_prompt
    assert "- `revenue`: float64" in first_prompt


def test_agent_from_a_cell_writes_the_file_and_shows_the_steps(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    target = tmp_path / "work" / "summary.md"
    cortex_emulator.script(
        Reply.tool_use(
            "Write",
            {"file_path": str(target), "content": "Examples of Claude on Cortex.\n"},
            text="I'll write the summary.",
        ),
        Reply.text("Created summary.md."),
    )
    notebook = run_notebook("agent_from_a_cell.ipynb", cortex_emulator, tmp_path)
    steps = outputs_of(cell_starting(notebook, "%%cortex_claude --agent"))
    assert "✏️ **Write**" in steps and "summary.md" in steps
    assert "Created summary.md." in steps
    printed = outputs_of(cell_starting(notebook, "from pathlib import Path"))
    assert "Examples of Claude on Cortex." in printed


def test_usage_report_shows_tokens_cost_and_a_plot(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    cortex_emulator.script(Reply.text("Hello there, nice to meet."))
    notebook = run_notebook("usage_report.ipynb", cortex_emulator, tmp_path)
    assert "Hello there, nice to meet." in outputs_of(cell_starting(notebook, "%%cortex_claude"))
    usage_cell = cell_starting(notebook, "%cortex_claude usage")
    report = outputs_of(usage_cell)
    assert "1 requests" in report and "credits" in report
    assert "claude-sonnet-4-6" in report  # the table, one row per model
    assert "estimate" in report and "not Snowflake's bill" in report
    assert any("image/png" in output.get("data", {}) for output in usage_cell.outputs)
    by_client = cell_starting(notebook, "%cortex_claude usage --since 1d --by client")
    assert "client" in outputs_of(by_client) and "1 requests" in outputs_of(by_client)
    assert any("image/png" in output.get("data", {}) for output in by_client.outputs)
    by_day = outputs_of(cell_starting(notebook, "from jupyter_cortex_claude.kernel.cell_chat"))
    assert "claude-sonnet-4-6 1 requests," in by_day


def test_usage_comparison_with_snowflake_explains_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = snowflake_usage(0.0, environ={})
    assert isinstance(message, str)
    assert "no Snowflake account is configured" in message

    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    message = snowflake_usage(0.0, environ={"SNOWFLAKE_ACCOUNT": "x"})
    assert isinstance(message, str)
    assert "pip install 'jupyter-cortex-claude[snowflake]'" in message
    json.dumps(message)  # plain text, nothing else
