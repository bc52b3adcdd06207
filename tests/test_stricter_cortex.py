"""Cortex stricter than configured, and models the account does not have (issue 12, items 4-5).

An emulated account whose output ceiling for a model is 8,192 (the gateway is configured for the
documented 16,384), or that refuses a documented beta: the gateway learns from Cortex's 400, retries
that request once, and sends later ones right. A model id the account does not have is named as
such, with a few it has. Through a real Jupyter server, the real Claude Code CLI and the SDKs.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from jupyter_cortex_claude.snowflake.cortex_limits import CortexLimits
from jupyter_cortex_claude.snowflake.models import ModelCatalogue
from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply

from .clients import HelloFileTask, run_claude_headless
from .conftest import RunningGateway

CEILING = 8192
LOWER_CEILING = {"model_output_ceilings": {"claude-opus-4-6": CEILING}}
BETA = "interleaved-thinking-2025-05-14"
REFUSED_BETA = {"refused_betas": [BETA]}


@pytest.fixture
def cortex_emulator(request: pytest.FixtureRequest) -> Iterator[CortexEmulator]:
    """The emulator with this test's account quirks (indirect parameter)."""
    with CortexEmulator(**getattr(request, "param", {})) as emulator:
        yield emulator


@pytest.fixture
def server_log(jp_serverapp: Any) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    jp_serverapp.log.addHandler(handler)
    yield stream
    jp_serverapp.log.removeHandler(handler)


def refusals_for(emulator: CortexEmulator, model: str) -> list[str]:
    return [message for _, asked, _, message in emulator.refusals if asked == model]


async def health(gateway: RunningGateway) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(
            gateway.url("cortex-claude/health"),
            headers={"Authorization": f"token {gateway.jupyter_token}"},
        )
    return dict(response.json())


# -- 4. a lower output ceiling, a refused beta ------------------------------------------------


@pytest.mark.parametrize("cortex_emulator", [LOWER_CEILING], indirect=True)
async def test_claude_code_writes_a_file_where_cortex_allows_fewer_output_tokens(
    server_log: io.StringIO, running_gateway: RunningGateway, tmp_path: Path
) -> None:
    task = HelloFileTask(tmp_path)
    emulator = running_gateway.emulator
    emulator.script(*task.replies())

    await task.run(running_gateway.anthropic_url, running_gateway.key)

    refused = refusals_for(emulator, "claude-opus-4-6")
    assert len(refused) == 1, refused  # the first request; the second turn was right at once
    assert f"> {CEILING}, which is the maximum allowed number of output tokens" in refused[0]
    answered = [r.body for r in emulator.inference_requests()][1:]
    assert answered and all(body["max_tokens"] <= CEILING for body in answered)
    learned = [line for line in server_log.getvalue().splitlines() if "Learned" in line]
    assert len(learned) == 1 and learned[0].startswith("WARNING"), learned
    assert f"output ceiling of {CEILING}" in learned[0]
    assert (await health(running_gateway))["learned_limits"]["output_ceilings"] == {
        "claude-opus-4-6": CEILING
    }


@pytest.mark.parametrize("cortex_emulator", [REFUSED_BETA], indirect=True)
async def test_a_beta_cortex_refuses_is_dropped_remembered_and_retried_once(
    running_gateway: RunningGateway,
) -> None:
    emulator = running_gateway.emulator
    emulator.script(Reply.text("first"), Reply.text("second"))
    client = running_gateway.anthropic()
    for expected in ("first", "second"):
        message = await client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": f"{BETA},token-efficient-tools-2025-02-19"},
        )
        assert message.content[0].text == expected
    assert len(refusals_for(emulator, "claude-sonnet-4-6")) == 1
    sent = [r.headers.get("anthropic-beta") for r in emulator.inference_requests()]
    assert BETA in sent[0] and sent[1:] == ["token-efficient-tools-2025-02-19"] * 2


async def test_a_400_that_names_nothing_to_learn_is_not_re_sent(
    running_gateway: RunningGateway,
) -> None:
    running_gateway.emulator.fail_next(Fault.status(400, "Invalid request options."))
    with pytest.raises(anthropic.BadRequestError):
        await running_gateway.anthropic().messages.create(
            model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        )
    assert len(running_gateway.emulator.inference_requests()) == 1


def test_repairs_read_the_refusals_of_both_apis_and_never_repeat() -> None:
    """One function, its inputs as Cortex words them: the parsing the tests above rely on."""
    limits = CortexLimits(ModelCatalogue())
    chat = b'{"model":"openai-gpt-5","messages":[],"max_completion_tokens":16384,"seed":1}'
    said = (
        "max_completion_tokens: 16384 > 4096, which is the maximum allowed number of output "
        "tokens for openai-gpt-5; unsupported request field(s): seed"
    )
    repair = limits.repair(400, said, chat, {}, "openai-gpt-5")
    assert repair is not None
    assert repair.content == b'{"model":"openai-gpt-5","messages":[],"max_completion_tokens":4096}'
    assert limits.catalogue.output_ceiling("openai-gpt-5") == 4096
    # Already right: nothing more to learn, so no second retry.
    assert limits.repair(400, said, repair.content, {}, "openai-gpt-5") is None
    # Later requests lose the refused field before they are sent.
    assert limits.prepare(chat, {}, "openai-gpt-5")[0].find(b"seed") == -1
    # Cortex's "max tokens of N exceeded" is a context too long: not a ceiling.
    messages = b'{"model":"claude-sonnet-4-6","messages":[],"max_tokens":16384}'
    assert limits.repair(400, "max tokens of 200000 exceeded", messages, {}, "m") is None


# -- 5. a model the account does not have ---------------------------------------------------


@pytest.mark.parametrize("with_tools", [True, False], ids=["tools", "no-tools"])
async def test_an_unknown_model_is_named_as_unknown_with_a_few_the_account_has(
    running_gateway: RunningGateway, with_tools: bool
) -> None:
    tools = [{"name": "Write", "description": "write", "input_schema": {"type": "object"}}]
    with pytest.raises(anthropic.BadRequestError) as refused:
        await running_gateway.anthropic().messages.create(
            model="gpt-nonexistent",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            **({"tools": tools} if with_tools else {}),
        )
    message = str(refused.value)
    assert "unknown model gpt-nonexistent" in message
    assert "not a model this Snowflake account has" in message
    assert "claude-sonnet-4-6" in message
    assert "cannot call tools" not in message
    if with_tools:
        assert "llama" not in message  # only models that can call tools are offered
    openai_tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with pytest.raises(openai.BadRequestError) as refused_openai:
        await running_gateway.openai().chat.completions.create(
            model="gpt-nonexistent",
            messages=[{"role": "user", "content": "hi"}],
            **({"tools": openai_tools} if with_tools else {}),
        )
    assert "not a model this Snowflake account has" in str(refused_openai.value)
    assert running_gateway.emulator.inference_requests() == []


async def test_claude_code_with_an_unknown_model_says_so_and_lists_models(
    running_gateway: RunningGateway, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    run = await run_claude_headless(
        "say hi",
        base_url=running_gateway.anthropic_url,
        auth_token=running_gateway.key,
        cwd=project,
        home=tmp_path / "home",
        max_turns=1,
        extra_args=("--model", "gpt-nonexistent"),
    )
    result = run.result
    assert result["is_error"] is True, result
    shown = result["result"]
    assert "gpt-nonexistent: it is not a model this Snowflake account has" in shown, shown
    assert "claude-sonnet-4-6" in shown and "cannot call tools" not in shown
    assert running_gateway.emulator.inference_requests() == []
