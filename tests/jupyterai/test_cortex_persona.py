"""Jupyter AI's chat, persona "Claude Code (Cortex)": Claude Code over ACP answers from Cortex."""

from __future__ import annotations

import json
from typing import Any

import psutil
import pytest

from jupyter_cortex_claude.config import CORTEX_DOCUMENTED_BETAS
from jupyter_cortex_claude.testing import Reply

from ..conftest import TEST_PAT, RunningGateway

PERSONA = "Claude Code (Cortex)"
ANSWER = "Hello from Cortex, through the Jupyter AI persona"
# The server's own Snowflake secrets: the gateway may hold them, no agent may see them.
SERVER_SECRETS = {
    "SNOWFLAKE_TOKEN": "server-secret-token-1",
    "SNOWFLAKE_PASSWORD": "server-secret-password-2",
    "SNOWFLAKE_PRIVATE_KEY_FILE_PWD": "server-secret-passphrase-3",
}


async def ask(jp_fetch: Any, persona: str, message: str) -> str:
    """Jupyter AI's own message API (jupyter_ai_persona_manager/handlers.py, MessageHandler):
    the persona answers in a chat of its own, and the reply comes back as text."""
    response = await jp_fetch(
        "api",
        "ai",
        "message",
        persona,
        method="POST",
        body=json.dumps({"message": message}),
        request_timeout=180,
    )
    return json.loads(response.body)["response"]


async def ask_for(jp_fetch: Any, persona: str, message: str, expected: str) -> str:
    """``ask``, asked again (at most twice) when the reply is cut short by Jupyter AI itself.

    Its message API answers once the persona stops "processing", which its ACP client signals when
    the prompt's result arrives, while the agent's streamed chunks are still being handled on their
    own (jupyter-ai 3.2.0, ``default_acp_client.prompt_and_reply``). Seen in CI on a loaded
    machine: "Hello " of an eight-word answer, the other seven chunks logged after "completed" (the
    chat itself gets them all). Only that symptom, a strict beginning of the expected text, is
    asked again; any other reply is returned for the test to judge."""
    answer = ""
    for _ in range(3):
        answer = await ask(jp_fetch, persona, message)
        if expected in answer or not (answer and expected.startswith(answer)):
            return answer
    return answer


def adapter_processes() -> list[psutil.Process]:
    """The persona's adapter and everything it started (Claude Code)."""
    from jupyter_cortex_claude.server.cortex_persona import ClaudeCodeCortexPersona

    adapter = psutil.Process(ClaudeCodeCortexPersona._subprocess_future.result().pid)
    return [adapter, *adapter.children(recursive=True)]


async def test_the_cortex_persona_answers_from_cortex(
    running_gateway: RunningGateway, jp_fetch: Any
) -> None:
    running_gateway.emulator.responder = lambda body: Reply.text(ANSWER)

    answer = await ask_for(jp_fetch, PERSONA, "say hi", ANSWER)

    assert ANSWER in answer
    requests = running_gateway.emulator.inference_requests()
    assert requests, "Cortex saw no request"
    for request in requests:
        # Through the gateway: Cortex sees the Snowflake credential, a Cortex model, an output
        # budget Cortex accepts, and only betas it documents.
        assert request.headers["authorization"] == f"Bearer {TEST_PAT}"
        assert request.body["model"] in ("claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5")
        assert request.body["max_tokens"] <= 16384
        betas = [b for b in request.headers.get("anthropic-beta", "").split(",") if b]
        assert set(betas) <= set(CORTEX_DOCUMENTED_BETAS), betas


@pytest.fixture
def server_with_snowflake_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)


async def test_the_persona_runs_with_the_gateway_key_and_no_snowflake_secret(
    server_with_snowflake_secrets: None, running_gateway: RunningGateway, jp_fetch: Any
) -> None:
    running_gateway.emulator.responder = lambda body: Reply.text(ANSWER)

    assert ANSWER in await ask_for(jp_fetch, PERSONA, "say hi", ANSWER)

    processes = adapter_processes()
    # Claude Code sets its process title to "claude".
    assert any(p.cmdline()[:1] == ["claude"] for p in processes[1:]), "Claude Code is not running"
    for process in processes:
        environ = process.environ()
        assert environ["ANTHROPIC_BASE_URL"] == running_gateway.anthropic_url.replace(
            "localhost", "127.0.0.1"
        )
        assert environ["ANTHROPIC_AUTH_TOKEN"] == running_gateway.key
        for name, secret in SERVER_SECRETS.items():
            assert name not in environ
            assert secret not in "\0".join(environ.values())
        assert TEST_PAT not in "\0".join(environ.values())
