"""What a request costs: Snowflake's published rates, the 1,024-token cache rule, USD → credits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from traitlets import TraitError

from jupyter_cortex_claude.config import CortexClaude
from jupyter_cortex_claude.gateway.budget import CreditBudget
from jupyter_cortex_claude.gateway.ledger import UsageLedger
from jupyter_cortex_claude.gateway.prices import (
    DEFAULT_MODEL_PRICES,
    PriceTableError,
    credit_prices,
    estimate_credits,
)
from jupyter_cortex_claude.gateway.usage import UsageRecord
from jupyter_cortex_claude.testing import CortexEmulator, Reply
from jupyter_cortex_claude.testing.replies import TextBlock

from .conftest import RunningGateway, emulator_config

DOCS = Path(__file__).resolve().parent.parent / "docs" / "budgets.md"
MILLION = 1_000_000


def record(model: str, **tokens: int) -> UsageRecord:
    return UsageRecord(
        endpoint="anthropic",
        client="test-client/1.0",
        client_model=model,
        cortex_model=model,
        stream=False,
        **tokens,
    )


def tokens_of(item: UsageRecord) -> dict[str, int]:
    return {
        "input_tokens": item.input_tokens,
        "output_tokens": item.output_tokens,
        "cache_read_tokens": item.cache_read_tokens,
        "cache_write_tokens": item.cache_write_tokens,
    }


# -- one request ----------------------------------------------------------------------------------


def test_cache_reads_get_the_cache_rate_only_from_1024_tokens_in_a_request() -> None:
    prices = credit_prices()  # claude-sonnet-4-6: $3 input, $0.30 cache read; 2 USD per credit
    below = estimate_credits(
        "claude-sonnet-4-6", {"input_tokens": 1000, "cache_read_tokens": 1023}, prices
    )
    at = estimate_credits(
        "claude-sonnet-4-6", {"input_tokens": 1000, "cache_read_tokens": 1024}, prices
    )
    assert below == pytest.approx((1000 + 1023) * 3.00 / 2 / MILLION)
    assert at == pytest.approx((1000 * 3.00 + 1024 * 0.30) / 2 / MILLION)
    assert at < below  # one more cached token, and the request costs less


def test_cache_writes_are_billed_as_input() -> None:
    prices = credit_prices()
    written = estimate_credits("claude-opus-4-6", {"cache_write_tokens": 10_000}, prices)
    as_input = estimate_credits("claude-opus-4-6", {"input_tokens": 10_000}, prices)
    assert written == as_input == pytest.approx(10_000 * 5.00 / 2 / MILLION)


def test_an_openai_model_costs_its_own_rates() -> None:
    credits = estimate_credits(
        "openai-gpt-5",
        {"input_tokens": 2000, "cache_read_tokens": 4096, "output_tokens": 1000},
        credit_prices(),
    )
    assert credits == pytest.approx((2000 * 1.25 + 4096 * 0.13 + 1000 * 10.00) / 2 / MILLION)


def test_a_model_not_in_the_table_costs_the_guides_fallback() -> None:
    prices = credit_prices()
    assert "mistral-7b" not in prices
    credits = estimate_credits(
        "mistral-7b",
        {"input_tokens": 1000, "cache_read_tokens": 2048, "output_tokens": 100},
        prices,
    )
    assert credits == pytest.approx((1000 * 2.00 + 2048 * 0.20 + 100 * 8.00) / 2 / MILLION)


def test_models_without_prompt_caching_have_their_input_and_output_rates() -> None:
    prices = credit_prices()
    assert prices["deepseek-r1"]["input"] == pytest.approx(1.35 / 2)
    assert prices["deepseek-r1"]["output"] == pytest.approx(5.40 / 2)
    assert prices["llama4-maverick"]["output"] == pytest.approx(0.97 / 2)


# -- settings ---------------------------------------------------------------------------------------


def test_usd_per_credit_converts_every_rate() -> None:
    at_2_20 = credit_prices(usd_per_credit=2.2)
    assert at_2_20["claude-sonnet-4-6"] == pytest.approx(
        {"input": 3 / 2.2, "output": 15 / 2.2, "cache_read": 0.3 / 2.2, "cache_write": 3 / 2.2}
    )
    assert at_2_20["*"]["output"] == pytest.approx(8 / 2.2)


def test_a_users_entry_replaces_the_models_and_leaves_the_others() -> None:
    prices = credit_prices(
        {
            "claude-sonnet-4-6": {"input": 2.7, "output": 13.5},
            "*": {"input": 4.0, "output": 16.0, "cache_read": 0.5},
        },
        usd_per_credit=3.0,
    )
    # Keys left out follow the guide: cache reads at 10 % of input, cache writes as input.
    assert prices["claude-sonnet-4-6"] == pytest.approx(
        {"input": 0.9, "output": 4.5, "cache_read": 0.09, "cache_write": 0.9}
    )
    assert prices["claude-opus-4-6"]["input"] == pytest.approx(5.00 / 3.0)
    assert estimate_credits("some-new-model", {"cache_read_tokens": 2000}, prices) == (
        pytest.approx(2000 * 0.5 / 3.0 / MILLION)
    )


@pytest.mark.parametrize(
    ("model_prices", "usd_per_credit", "named"),
    [
        ({"claude-sonnet-4-6": {"input": -1.0}}, 2.0, "model_prices['claude-sonnet-4-6']"),
        ({"claude-sonnet-4-6": {"input": "3"}}, 2.0, "expected USD per million tokens"),
        ({"claude-sonnet-4-6": {"prompt": 3.0}}, 2.0, "the keys are input, output"),
        ({"claude-sonnet-4-6": 3.0}, 2.0, "must be a dict"),
        ({}, 0.0, "usd_per_credit"),
        ({}, float("nan"), "usd_per_credit"),
    ],
)
def test_prices_that_cannot_price_a_request_are_refused_with_the_setting_to_fix(
    model_prices: dict[str, Any], usd_per_credit: float, named: str
) -> None:
    with pytest.raises(PriceTableError, match=re.escape(named)):
        credit_prices(model_prices, usd_per_credit)


def test_usd_per_credit_comes_from_the_environment_for_hub_admins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CORTEX_CLAUDE_USD_PER_CREDIT", raising=False)
    assert CortexClaude().usd_per_credit == 2.0
    monkeypatch.setenv("CORTEX_CLAUDE_USD_PER_CREDIT", "2.2")
    assert CortexClaude().usd_per_credit == 2.2
    assert CortexClaude(usd_per_credit=3.0).usd_per_credit == 3.0  # the config wins
    monkeypatch.setenv("CORTEX_CLAUDE_USD_PER_CREDIT", "two")
    with pytest.raises(TraitError, match="CORTEX_CLAUDE_USD_PER_CREDIT='two'"):
        _ = CortexClaude().usd_per_credit


# -- many requests: the rule is per request -------------------------------------------------------


def test_the_ledger_applies_the_cache_rule_per_request_not_to_the_sum(tmp_path: Path) -> None:
    requests = [
        record("claude-sonnet-4-6", input_tokens=100, cache_read_tokens=1000, output_tokens=50),
        record("claude-sonnet-4-6", input_tokens=100, cache_read_tokens=1000, output_tokens=50),
        record("claude-sonnet-4-6", input_tokens=100, cache_read_tokens=5000, output_tokens=50),
        record("openai-gpt-5", input_tokens=300, cache_read_tokens=1024, output_tokens=70),
    ]
    prices = credit_prices()
    ledger = UsageLedger(tmp_path / "usage.sqlite", prices=prices)
    for item in requests:
        ledger.record(item)
    ledger.flush()
    by_model = {group["model"]: group for group in ledger.aggregate()}
    expected = {
        model: sum(
            estimate_credits(model, tokens_of(item), prices)
            for item in requests
            if item.cortex_model == model
        )
        for model in ("claude-sonnet-4-6", "openai-gpt-5")
    }
    sonnet = by_model["claude-sonnet-4-6"]
    assert sonnet["cache_read_tokens"] == 7000
    # (the two requests under 1,024 cached tokens pay the input rate for theirs)
    assert sonnet["estimated_credits"] == pytest.approx(
        ((300 + 2000) * 3.00 + 5000 * 0.30 + 150 * 15.00) / 2 / MILLION, abs=1e-6
    )
    assert sonnet["estimated_credits"] == pytest.approx(expected["claude-sonnet-4-6"], abs=1e-6)
    assert by_model["openai-gpt-5"]["estimated_credits"] == pytest.approx(
        expected["openai-gpt-5"], abs=1e-6
    )
    assert ledger.credits_since(0) == pytest.approx(sum(expected.values()), abs=2e-6)
    ledger.close()


def test_the_budget_prices_each_request_it_settles_with_the_same_rule() -> None:
    prices = credit_prices()
    budget = CreditBudget(credits=100.0, prices=prices)
    under = record("claude-haiku-4-5", input_tokens=10, cache_read_tokens=1023, output_tokens=5)
    over = record("claude-haiku-4-5", input_tokens=10, cache_read_tokens=4096, output_tokens=5)
    budget.settle(under)
    budget.settle(over)
    assert budget.spent == pytest.approx(
        ((10 + 1023) * 1.00 + 5 * 5.00 + 10 * 1.00 + 4096 * 0.10 + 5 * 5.00) / 2 / MILLION
    )


def test_openai_usage_is_stored_without_its_cached_part() -> None:
    """OpenAI's prompt count includes the cache; stored as-is, cached tokens were priced twice."""
    chat = record("openai-gpt-5")
    chat.add_openai_usage(
        {
            "prompt_tokens": 5000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 4000},
        }
    )
    responses = record("openai-gpt-5")
    responses.add_responses_usage(
        {"input_tokens": 5000, "output_tokens": 10, "input_tokens_details": {"cached_tokens": 4000}}
    )
    claude_via_chat = record("claude-sonnet-4-6")
    claude_via_chat.add_openai_usage(
        {
            "prompt_tokens": 5000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 4000, "cache_write_tokens": 1500},
        }
    )
    for item in (chat, responses):
        assert (item.input_tokens, item.cache_read_tokens, item.output_tokens) == (1000, 4000, 10)
    assert (claude_via_chat.input_tokens, claude_via_chat.cache_read_tokens) == (1000, 2500)
    assert claude_via_chat.cache_write_tokens == 1500


# -- the docs show the table the code uses --------------------------------------------------------


def test_the_docs_table_is_the_default_table() -> None:
    """docs/budgets.md lists every default rate in USD per million tokens, as in the code."""
    text = DOCS.read_text()
    rows = re.findall(
        r"^\| `([^`]+)` \| ([\d.]+) \| ([\d.]+|—) \| ([\d.]+) \|", text, flags=re.MULTILINE
    )
    documented = {
        model: {"input": float(price_in), "output": float(price_out)}
        | ({} if cache == "—" else {"cache_read": float(cache)})
        for model, price_in, cache, price_out in rows
    }
    assert documented == DEFAULT_MODEL_PRICES


# -- through Jupyter, with the real SDKs -----------------------------------------------------------


@pytest.fixture
def cortex_claude_config(cortex_emulator: CortexEmulator, tmp_path: Path) -> dict[str, Any]:
    return emulator_config(
        cortex_emulator,
        usage_db_path=str(tmp_path / "ledger" / "usage.sqlite"),
        usd_per_credit=2.5,
        model_prices={"llama3.1-70b": {"input": 1.0, "output": 2.0}},
    )


async def test_requests_through_jupyter_are_priced_per_request_in_credits(
    running_gateway: RunningGateway,
) -> None:
    emulator = running_gateway.emulator
    emulator.script(
        Reply(
            blocks=[TextBlock("Cached a lot.")],
            input_tokens=1000,
            output_tokens=400,
            cache_read_tokens=2048,
        )
    )
    openai_answer = await running_gateway.openai().chat.completions.create(
        model="openai-gpt-5", messages=[{"role": "user", "content": "hello"}]
    )
    emulator.script(
        Reply(
            blocks=[TextBlock("Cached a little.")],
            input_tokens=1000,
            output_tokens=400,
            cache_read_tokens=1000,
        )
    )
    claude_answer = await running_gateway.anthropic().messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1000,
        messages=[{"role": "user", "content": "hello"}],
    )
    emulator.script(Reply(blocks=[TextBlock("Mine.")], input_tokens=500, output_tokens=50))
    await running_gateway.anthropic().messages.create(
        model="llama3.1-70b", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    # What each client was told: OpenAI counts the cache in the prompt, Anthropic beside it.
    assert openai_answer.usage.prompt_tokens == 3048
    assert openai_answer.usage.prompt_tokens_details.cached_tokens == 2048
    assert claude_answer.usage.input_tokens == 1000
    assert claude_answer.usage.cache_read_input_tokens == 1000

    async with httpx.AsyncClient() as http:
        response = await http.get(
            running_gateway.url("cortex-claude/usage"),
            headers={"authorization": f"Bearer {running_gateway.key}"},
        )
    assert response.status_code == 200
    groups = {group["model"]: group for group in response.json()["groups"]}
    gpt = groups["openai-gpt-5"]
    assert (gpt["input_tokens"], gpt["cache_read_tokens"]) == (1000, 2048)
    assert gpt["estimated_credits"] == pytest.approx(
        (1000 * 1.25 + 2048 * 0.13 + 400 * 10.00) / 2.5 / MILLION, abs=1e-6
    )
    sonnet = groups["claude-sonnet-4-6"]
    assert (sonnet["input_tokens"], sonnet["cache_read_tokens"]) == (1000, 1000)
    assert sonnet["estimated_credits"] == pytest.approx(
        ((1000 + 1000) * 3.00 + 400 * 15.00) / 2.5 / MILLION, abs=1e-6
    )
    assert groups["llama3.1-70b"]["estimated_credits"] == pytest.approx(
        (500 * 1.0 + 50 * 2.0) / 2.5 / MILLION, abs=1e-6
    )
