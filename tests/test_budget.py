"""Credit budgets: a gateway stops its user at the budget, before Cortex is called."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from jupyter_cortex_claude.gateway.budget import EDGE_RETRY_AFTER, CreditBudget, period_bounds
from jupyter_cortex_claude.gateway.ledger import UsageLedger
from jupyter_cortex_claude.gateway.prices import credit_prices
from jupyter_cortex_claude.gateway.usage import UsageRecord
from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply
from jupyter_cortex_claude.testing.replies import TextBlock

from .clients import run_claude_headless
from .conftest import RunningGateway, emulator_config
from .kernels import in_kernel_environment, running_kernel

BUDGET = 1.0
MODEL = "claude-sonnet-4-6"
# Credits one million output tokens of MODEL cost, by the built-in prices at the default USD/credit.
OUTPUT_PRICE = credit_prices()[MODEL]["output"]


def spend(credits: float) -> Reply:
    """A short answer whose usage says it cost ``credits`` (output tokens at MODEL's price)."""
    return Reply([TextBlock("Done.")], output_tokens=round(credits / OUTPUT_PRICE * 1_000_000))


def seed_ledger(path: Path, credits: float) -> None:
    """Earlier requests of this period, as a previous run of the server recorded them."""
    if not credits:
        return
    ledger = UsageLedger(path)
    ledger.record(
        UsageRecord(
            endpoint="anthropic",
            client="claude-cli/2.1.330",
            client_model=MODEL,
            cortex_model=MODEL,
            stream=True,
            output_tokens=round(credits / OUTPUT_PRICE * 1_000_000),
        )
    )
    ledger.close()


@pytest.fixture
def seeded_credits() -> float:
    return 0.0


@pytest.fixture
def cortex_claude_config(
    cortex_emulator: CortexEmulator, tmp_path: Path, seeded_credits: float
) -> dict[str, Any]:
    ledger_path = tmp_path / "budget-ledger" / "usage.sqlite"
    ledger_path.parent.mkdir()
    seed_ledger(ledger_path, seeded_credits)
    return emulator_config(
        cortex_emulator,
        credit_budget=BUDGET,
        credit_budget_period="day",
        usage_db_path=str(ledger_path),
        default_model=MODEL,
    )


def next_utc_midnight() -> str:
    return datetime.fromtimestamp(period_bounds("day", time.time())[1], timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def assert_names_spend_budget_period_reset_and_fix(message: str, spent: str) -> None:
    assert "Credit budget reached" in message
    assert f"an estimated {spent} of its 1 credits for this day (UTC)" in message
    assert f"resets at {next_utc_midnight()}" in message
    assert "c.CortexClaude.credit_budget" in message
    assert "CORTEX_CLAUDE_CREDIT_BUDGET" in message


async def health(gateway: RunningGateway) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            gateway.url("cortex-claude/health"), headers={"authorization": f"Bearer {gateway.key}"}
        )
    assert response.status_code == 200
    return response.json()


async def test_under_budget_passes_and_the_request_that_finds_it_spent_is_refused_before_cortex(
    running_gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = running_gateway.emulator
    emulator.script(spend(0.85), spend(0.3))
    client = running_gateway.anthropic()
    caplog.set_level(logging.WARNING)

    first = await client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "one"}]
    )
    assert first.content[0].text == "Done."
    budget = (await health(running_gateway))["budget"]
    assert budget["state"] == "warning" and budget["spent"] == pytest.approx(0.85, abs=0.01)
    assert "85% of the credit budget is spent" in caplog.text

    # 0.85 < 1: still under budget, so this stream passes and runs to its end although it takes
    # the spend past the budget: a request admitted is never cut.
    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "two"}]
    ) as stream:
        second = await stream.get_final_message()
    assert second.content[0].text == "Done." and second.stop_reason == "end_turn"

    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        await client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "three"}]
        )
    assert refused.value.status_code == 403
    assert refused.value.body["error"]["type"] == "permission_error"
    assert_names_spend_budget_period_reset_and_fix(refused.value.body["error"]["message"], "1.15")
    assert len(emulator.inference_requests()) == 2  # the third never reached Cortex

    budget = (await health(running_gateway))["budget"]
    assert budget["state"] == "exhausted" and budget["refused"] == 1


@pytest.mark.parametrize("seeded_credits", [1.2])
async def test_the_openai_endpoint_refuses_in_its_own_dialect(
    running_gateway: RunningGateway,
) -> None:
    client = running_gateway.openai()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    error = refused.value.body
    assert refused.value.status_code == 403
    assert error["type"] == "permission_error"
    assert_names_spend_budget_period_reset_and_fix(error["message"], "1.20")
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("seeded_credits", [1.2])
async def test_claude_code_stops_at_once_on_a_spent_budget(
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
        max_turns=2,
        # Claude Code's own default: ten retries for anything it deems retryable.
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "10"},
        timeout=120,
    )
    assert run.result["is_error"] is True, run.result
    assert "Credit budget reached" in run.result["result"]
    assert not [event for event in run.events if event.get("subtype") == "api_retry"]
    assert running_gateway.service.budget.refused == 1  # asked once, never again
    assert running_gateway.emulator.inference_requests() == []


@pytest.mark.parametrize("seeded_credits", [1.2])
async def test_the_next_period_starts_with_the_whole_budget(
    running_gateway: RunningGateway,
) -> None:
    client = running_gateway.anthropic()
    with pytest.raises(anthropic.PermissionDeniedError):
        await client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "today"}]
        )

    budget = running_gateway.service.budget
    tomorrow = period_bounds("day", time.time())[1] + 60
    budget.clock = lambda: tomorrow

    answer = await client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "tomorrow"}]
    )
    assert answer.content[0].text
    assert len(running_gateway.emulator.inference_requests()) == 1
    status = (await health(running_gateway))["budget"]
    assert status["state"] == "ok"
    assert status["period_start"] == datetime.fromtimestamp(
        period_bounds("day", tomorrow)[0], timezone.utc
    ).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("seeded_credits", [0.9])
async def test_a_burst_at_the_edge_lets_only_the_requests_in_flight_through(
    running_gateway: RunningGateway,
) -> None:
    emulator = running_gateway.emulator
    # The first request to reach Cortex stays in flight while the rest of the burst arrives.
    emulator.fail_next(Fault.stall_before_first_byte(1.5))
    client = running_gateway.anthropic()

    async def ask(n: int) -> Any:
        return await client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": f"burst {n}"}]
        )

    outcomes = await asyncio.gather(*(ask(n) for n in range(6)), return_exceptions=True)

    answered = [o for o in outcomes if isinstance(o, anthropic.types.Message)]
    waited = [o for o in outcomes if isinstance(o, anthropic.RateLimitError)]
    assert len(answered) == 1, outcomes
    assert len(waited) == 5, outcomes
    assert len(emulator.inference_requests()) == 1
    for refusal in waited:
        assert refusal.response.headers["retry-after"] == str(round(EDGE_RETRY_AFTER))
        assert "Credit budget nearly reached" in refusal.body["error"]["message"]

    # The one in flight cost little: with it settled, there is room again.
    again = await ask(7)
    assert again.content[0].text


def test_periods_are_utc_days_iso_weeks_and_months() -> None:
    moment = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc).timestamp()  # a Thursday

    def utc(start_end: tuple[float, float]) -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d") for t in start_end
        )

    assert utc(period_bounds("day", moment)) == ("2026-12-31", "2027-01-01")
    assert utc(period_bounds("week", moment)) == ("2026-12-28", "2027-01-04")
    assert utc(period_bounds("month", moment)) == ("2026-12-01", "2027-01-01")


def test_the_magics_show_spend_against_the_budget(
    cortex_emulator: CortexEmulator, tmp_path: Path
) -> None:
    environment = in_kernel_environment(
        cortex_emulator, tmp_path / "home", CORTEX_CLAUDE_CREDIT_BUDGET="2"
    )
    with running_kernel(environment, tmp_path) as kernel:
        status = kernel.run("%cortex_claude status").stdout
        assert f"0.00 of 2 credits this day (UTC, 0%), resets {next_utc_midnight()}" in status

        cortex_emulator.script(spend(1.7))
        kernel.run("%%cortex_claude\nSpend most of it.")
        usage = kernel.run("%cortex_claude usage --since 1d")
        line = next(m for m in usage.markdown_versions() if m.startswith("**Credit budget:**"))
        assert "1.70 of 2 credits this day (UTC, 85%)" in line
        assert "CORTEX_CLAUDE_CREDIT_BUDGET" in line  # at 80 %: how to raise it


async def test_without_a_budget_nothing_is_read_or_said_of_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The default (credit_budget 0). The server loads the budget when it starts; this used to log
    # "Credit budget reached ... sends nothing more to Cortex" (0.00 of 0 credits) at WARNING on
    # every server without a budget.
    reads: list[float] = []
    budget = CreditBudget(
        credits=0, spent_since=lambda start: reads.append(start) or 0.0,
        logger=logging.getLogger("test.budget"),
    )  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="test.budget")

    await budget.load()
    async with budget.admit(10_000):
        pass

    assert caplog.records == [] and reads == []
