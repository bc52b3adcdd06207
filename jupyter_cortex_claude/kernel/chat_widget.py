"""``from jupyter_cortex_claude import chat; chat()``: a chat panel built with ipywidgets 8.

Threading: widget callbacks run on the kernel's main thread, between cells. If the Send callback
streamed the answer itself, the kernel could not handle the Stop button's click until the answer
ended. So Send starts a daemon thread that streams the answer and updates widget traits (each
update is a comm message, which ipykernel sends through its thread-safe IOPub channel); Stop hangs
up the answer's connection (a :class:`.messages_client.HangUp`), which wakes the streaming thread at
once even if the model stalls, and the gateway then closes its Cortex call.
"""

from __future__ import annotations

import html
import re
import threading
import time
import uuid
from typing import Any

from .chat_session import ChatSession
from .messages_client import ChatRequestError, HangUp, StreamedAnswer, list_models

UPDATE_INTERVAL = 0.05
INSERT_CELL_MIME_TYPE = "application/vnd.jupyter-cortex-claude.insert-cell+json"
CODE_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def _import_widgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise ImportError(
            "The chat widget needs ipywidgets 8, which the README's install (`pip install "
            "'jupyter-cortex-claude[lab]'`) includes; in a kernel's own environment: pip install "
            "'jupyter-cortex-claude[kernel]'"
        ) from None
    return ipywidgets


def code_blocks(markdown: str) -> list[str]:
    return [block.rstrip("\n") for block in CODE_BLOCK.findall(markdown)]


def _markdown_output(text: str) -> tuple[dict[str, Any], ...]:
    return (
        {
            "output_type": "display_data",
            "data": {"text/markdown": text, "text/plain": text},
            "metadata": {},
        },
    )


class ChatWidget:
    """History, a streaming answer, Stop, a model dropdown, a token counter, copy-to-cell."""

    def __init__(self, endpoint: Any = None, session: ChatSession | None = None) -> None:
        widgets = _import_widgets()
        self._widgets = widgets
        self.session = session or ChatSession()
        self.endpoint = endpoint
        self.error: str | None = None
        self._hang_up = HangUp()
        self._thread: threading.Thread | None = None
        self.updates = 0  # how often the streaming answer was re-rendered (for tests and curiosity)

        models = self._models()
        self.model = widgets.Dropdown(
            options=models, value=self.session.model, description="Model", layout={"width": "45%"}
        )
        self.model.observe(self._model_changed, names="value")
        self.tokens = widgets.Label(value=self._token_text())
        self.new_button = widgets.Button(description="New chat", icon="plus")
        self.new_button.on_click(lambda _button: self.new_conversation())
        self.history = widgets.VBox([])
        self.prompt = widgets.Textarea(
            placeholder="Ask Claude, then press Send",
            layout={"width": "100%", "height": "80px"},
        )
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="send")
        self.send_button.on_click(lambda _button: self.send())
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.stop_button.on_click(lambda _button: self.stop())
        self.status = widgets.Label(value="")
        self.copied = widgets.Output()  # where copy-to-cell's output is rendered (and acts)
        self.box = widgets.VBox(
            [
                widgets.HBox([self.model, self.tokens, self.new_button]),
                self.history,
                self.prompt,
                widgets.HBox([self.send_button, self.stop_button, self.status]),
                self.copied,
            ]
        )

    # -- display ------------------------------------------------------------------------------

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def _endpoint(self) -> Any:
        if self.endpoint is None:
            from .discovery import find_gateway

            self.endpoint = find_gateway(start_in_kernel=True)
        return self.endpoint

    def _models(self) -> list[str]:
        try:
            models = list_models(self._endpoint())
        except Exception as error:  # the panel still opens; the status line says why
            self.error = f"could not list models: {error}"
            models = []
        if self.session.model not in models:
            models.insert(0, self.session.model)
        return models

    def _token_text(self) -> str:
        session = self.session
        return (
            f"Conversation: {session.total_tokens} tokens "
            f"({session.input_tokens} in / {session.output_tokens} out)"
        )

    def _model_changed(self, change: dict[str, Any]) -> None:
        self.session.model = str(change["new"])

    # -- actions ------------------------------------------------------------------------------

    def send(self, text: str | None = None) -> threading.Thread | None:
        """Sends the prompt box (or ``text``); the answer streams in a background thread."""
        prompt = (self.prompt.value if text is None else text).strip()
        if not prompt or (self._thread is not None and self._thread.is_alive()):
            return None
        self.prompt.value = ""
        self._hang_up = HangUp()
        question = self._widgets.Output()
        question.outputs = _markdown_output(f"**You:** {prompt}")
        answer_view = self._widgets.Output()
        answer_view.outputs = _markdown_output("*…*")
        self.history.children = (*self.history.children, question, answer_view)
        self.send_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = "answering…"
        self._thread = threading.Thread(
            target=self._answer, args=(prompt, answer_view), name="cortex-claude-chat", daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._hang_up()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def new_conversation(self) -> None:
        self.stop()
        self.wait(10)
        self.session.reset()
        self.history.children = ()
        self.tokens.value = self._token_text()
        self.status.value = "new conversation"

    def _answer(self, prompt: str, view: Any) -> None:
        last = 0.0

        def on_text(answer: StreamedAnswer) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= UPDATE_INTERVAL:
                last = now
                view.outputs = _markdown_output(answer.text + " ▌")
                self.updates += 1

        try:
            answer = self.session.ask(self._endpoint(), prompt, on_text, self._hang_up)
        except ChatRequestError as error:
            view.outputs = _markdown_output(f"**cortex-claude:** {html.escape(str(error))}")
            self.status.value = "failed"
        except Exception as error:
            view.outputs = _markdown_output(f"**cortex-claude:** {type(error).__name__}: {error}")
            self.status.value = "failed"
        else:
            stopped = answer.stop_reason == "stopped"
            view.outputs = _markdown_output(answer.text + ("\n\n*(stopped)*" if stopped else ""))
            self.status.value = "stopped" if stopped else ""
            if not stopped:
                self._add_copy_buttons(answer.text)
        finally:
            self.tokens.value = self._token_text()
            self.send_button.disabled = False
            self.stop_button.disabled = True

    def _add_copy_buttons(self, text: str) -> None:
        blocks = code_blocks(text)
        if not blocks:
            return
        buttons = []
        for number, code in enumerate(blocks, 1):
            button = self._widgets.Button(
                description=f"Copy code {number} to a cell", icon="copy", layout={"width": "auto"}
            )
            button.on_click(lambda _button, code=code: self.copy_to_cell(code))
            buttons.append(button)
        self.history.children = (*self.history.children, self._widgets.HBox(buttons))

    def copy_to_cell(self, code: str) -> None:
        self.copied.outputs = (insert_cell_output(code),)


def insert_cell_output(code: str) -> dict[str, Any]:
    """An output that the JupyterLab extension renders by inserting ``code`` into a new cell below
    the active one (the chat's own cell), once; other frontends show the code to copy."""
    request = {"code": code, "nonce": uuid.uuid4().hex, "created_at": time.time()}
    return {
        "output_type": "display_data",
        "data": {
            INSERT_CELL_MIME_TYPE: request,
            "text/plain": code,
            "text/html": "<p>Copy this code into a cell:</p><pre>" + html.escape(code) + "</pre>",
        },
        "metadata": {},
    }


def chat(model: str | None = None, system: str | None = None) -> ChatWidget:
    """A chat panel; as a cell's last expression it shows up (or ``display(chat())``)."""
    session = ChatSession(system=system)
    if model:
        session.model = model
    return ChatWidget(session=session)
