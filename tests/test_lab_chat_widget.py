"""The chat panel in a notebook, in a real browser: the answer streams in, and "Copy code to a
cell" puts the code into a new cell below the chat.

A real `jupyter lab` with this package's server extension against the Cortex emulator, a real
kernel, and headless Chromium driven by Playwright (the same set-up as test_lab_claude_tile.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_cortex_claude.testing import CortexEmulator, Reply

from .test_lab_claude_tile import (  # noqa: F401 (fixtures)
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOT_DIR_ENV,
    LabWithCortex,
    lab_with_cortex,
    playwright_sync,
)

pytestmark = pytest.mark.timeout(240)

CODE = "def add(a, b):\n    return a + b"
ANSWER = f"Here you are:\n\n```python\n{CODE}\n```\n\nCall it as `add(1, 2)`."
LAB_LOAD_MS = 60_000
KERNEL_AND_WIDGET_MS = 90_000  # the first kernel start in a fresh lab is slow on CI
ANSWER_MS = 30_000


@pytest.fixture
def emulator() -> Iterator[CortexEmulator]:
    with CortexEmulator(token_delay=0.02) as running:
        running.responder = lambda body: Reply.text(ANSWER)
        yield running


def chat_notebook(root_dir: Path) -> str:
    notebook = nbformat.v4.new_notebook()
    # Without a kernelspec JupyterLab asks which kernel to start.
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell("from jupyter_cortex_claude import chat\nchat()")]
    nbformat.write(notebook, root_dir / "chat.ipynb")
    return "chat.ipynb"


def cell_sources(page: Any) -> list[str]:
    """The text of every cell's editor, top to bottom, as the person sees it."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Cell'))
                .map(cell => cell.querySelector('.cm-content')?.innerText ?? '')"""
        )
    )


def test_copy_code_to_a_cell_inserts_the_answer_code_below_the_chat(
    lab_with_cortex: LabWithCortex,  # noqa: F811 (the fixture imported above)
    playwright_sync: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    lab, emulator = lab_with_cortex.lab, lab_with_cortex.emulator
    root_dir = tmp_path / "root"
    name = chat_notebook(root_dir)
    with playwright_sync() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}", timeout=LAB_LOAD_MS)
            try:
                page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(
                    state="visible", timeout=LAB_LOAD_MS
                )
                # Keys pressed before the kernel is up are lost: wait for it, as a person does.
                page.get_by_text("| Idle").wait_for(state="visible", timeout=KERNEL_AND_WIDGET_MS)
                page.locator(".jp-NotebookPanel .jp-Cell").first.click()
                page.keyboard.press("Escape")  # command mode
                page.keyboard.press("Control+Enter")  # run the cell, stay on it

                prompt = page.get_by_placeholder("Ask Claude, then press Send")
                prompt.wait_for(state="visible", timeout=KERNEL_AND_WIDGET_MS)
                prompt.fill("Write an add function")
                page.get_by_role("button", name="Send").click()

                copy = page.get_by_role("button", name="Copy code 1 to a cell")
                copy.wait_for(state="visible", timeout=ANSWER_MS)
                copy.click()
                page.get_by_text("Inserted into a new cell below.").wait_for(
                    state="visible", timeout=ANSWER_MS
                )
                page.wait_for_function(
                    "() => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length >= 2"
                )
                sources = cell_sources(page)
            finally:
                directory = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tempfile.gettempdir())
                directory.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(directory / "cortex-claude-lab-chat-widget.png"))
        finally:
            browser.close()

    assert len(sources) == 2, sources
    assert sources[0].startswith("from jupyter_cortex_claude import chat")
    assert sources[1].replace("\xa0", " ").strip() == CODE
    asked = [r for r in emulator.inference_requests() if "add function" in json.dumps(r.body)]
    assert asked, "the question never reached Cortex"
