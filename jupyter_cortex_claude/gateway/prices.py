"""What a Cortex request costs: Snowflake's per-model rates, converted to the credits budgets count.

The rates are Snowflake's **published example** of its *Service Consumption Table*
(https://www.snowflake.com/legal-files/CreditConsumptionTable.pdf), Tables 6(b) "REST API with Prompt
Caching" and 6(c) "REST API", as quoted by Snowflake Labs' quickstart "Cortex REST API Billing & Cost
Analysis" (https://www.snowflake.com/en/developers/guides/cortex-rest-api-billing-cost; repository
Snowflake-Labs/sfquickstarts, site/sfguides/src/cortex-rest-api-billing-cost/, commit a0c6d24e, read
2026-11-30). The guide labels them "example rates — for current pricing consult the PDF": the PDF is
the authority, and ``c.CortexClaude.model_prices`` takes your own. Its unit is **USD per million
tokens** (Global region where available), so the gateway divides by ``c.CortexClaude.usd_per_credit``
to count credits: Snowflake prices the AI features of Table 6 in *AI Credits* at $2.00 each with
global cross-region routing, $2.20 with regional routing (docs.snowflake.com, "Snowflake AI pricing",
read 2026-11-30).

Billing rules from the same guide, applied here per request:

- cache reads cost the model's cache-read rate only when the request read at least
  :data:`CACHE_DISCOUNT_MIN_TOKENS` tokens from the cache; fewer are billed at the full input rate;
- its cost formula has input, cached input and output only (``TOKENS_GRANULAR`` has the keys
  ``input``, ``output``, ``cache_read_input``): cache writes are billed as input;
- a model not in the table costs its fallback, the ``*`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# USD per million tokens: Tables 6(b) (input / cache read / output) and 6(c) (input / output; those
# models have no prompt caching), as quoted by the quickstart named above; "*" is its fallback for
# models it does not list.
DEFAULT_MODEL_PRICES: dict[str, dict[str, float]] = {
    # Table 6(b): REST API with Prompt Caching
    "claude-sonnet-4-5": {"input": 3.00, "cache_read": 0.30, "output": 15.00},
    "claude-sonnet-4-6": {"input": 3.00, "cache_read": 0.30, "output": 15.00},
    "claude-haiku-4-5": {"input": 1.00, "cache_read": 0.10, "output": 5.00},
    "claude-opus-4-5": {"input": 5.00, "cache_read": 0.50, "output": 25.00},
    "claude-opus-4-6": {"input": 5.00, "cache_read": 0.50, "output": 25.00},
    "openai-gpt-5": {"input": 1.25, "cache_read": 0.13, "output": 10.00},
    "openai-gpt-5.2": {"input": 1.75, "cache_read": 0.18, "output": 14.00},
    "openai-gpt-5.4": {"input": 2.50, "cache_read": 0.25, "output": 15.00},
    "openai-gpt-4.1": {"input": 2.00, "cache_read": 0.50, "output": 8.00},
    # Table 6(c): REST API (no prompt caching)
    "deepseek-r1": {"input": 1.35, "output": 5.40},
    "mistral-large2": {"input": 2.00, "output": 6.00},
    "llama3.3-70b": {"input": 0.72, "output": 0.72},
    "llama4-maverick": {"input": 0.24, "output": 0.97},
    "snowflake-llama-3.3-70b": {"input": 0.72, "output": 0.72},
    # The guide's fallback for models not in the table
    "*": {"input": 2.00, "cache_read": 0.20, "output": 8.00},
}

# USD per credit: Snowflake's price of an AI Credit with global routing (module docstring). The same
# number is config.py's default (not imported there: config sits below the gateway).
DEFAULT_USD_PER_CREDIT = 2.00

# A request's cache reads earn the cache-read rate only from this many tokens on (the guide's rule).
CACHE_DISCOUNT_MIN_TOKENS = 1024
# An entry without a cache-read rate: 10 % of its input rate, the discount the guide describes.
CACHE_READ_SHARE_OF_INPUT = 0.1
PRICE_KEYS = ("input", "output", "cache_read", "cache_write")


class PriceTableError(ValueError):
    """``model_prices`` or ``usd_per_credit`` cannot price a request; the message names the fix."""


def credit_prices(
    model_prices: Mapping[str, Mapping[str, float]] | None = None,
    usd_per_credit: float = DEFAULT_USD_PER_CREDIT,
) -> dict[str, dict[str, float]]:
    """Credits per million tokens per model: the defaults with ``model_prices`` (USD) over them.

    A model's entry in ``model_prices`` replaces its default entry as a whole; keys it leaves out
    follow the guide: ``cache_read`` 10 % of ``input``, ``cache_write`` = ``input``, ``output`` 0.
    Built once when the gateway starts, so pricing a request stays a few multiplications.
    Raises :class:`PriceTableError` naming the setting to fix.
    """
    if not (isinstance(usd_per_credit, int | float) and math.isfinite(usd_per_credit)):
        shown = ascii(usd_per_credit)[:40]
        raise PriceTableError(f"c.CortexClaude.usd_per_credit={shown} is not a number")
    if usd_per_credit <= 0:
        raise PriceTableError(
            f"c.CortexClaude.usd_per_credit={usd_per_credit!r}: a credit must cost more than 0 USD "
            "(Snowflake's AI Credit: 2.00 with global routing, 2.20 with regional routing)"
        )
    merged = {**DEFAULT_MODEL_PRICES, **dict(model_prices or {})}
    return {model: _in_credits(model, entry, usd_per_credit) for model, entry in merged.items()}


def _in_credits(model: str, entry: object, usd_per_credit: float) -> dict[str, float]:
    where = f"c.CortexClaude.model_prices[{ascii(model)[:60]}]"
    if not isinstance(entry, Mapping):
        raise PriceTableError(f"{where} must be a dict such as {{'input': 3.0, 'output': 15.0}}")
    unknown = [ascii(key)[:40] for key in entry if key not in PRICE_KEYS]
    if unknown:
        raise PriceTableError(
            f"{where} has {', '.join(unknown[:3])}: the keys are {', '.join(PRICE_KEYS)} "
            "(USD per million tokens)"
        )
    for key, value in entry.items():
        if not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        ):
            shown = ascii(value)[:40]
            raise PriceTableError(
                f"{where}[{key!r}]={shown}: expected USD per million tokens, >= 0"
            )
    usd = {"input": 0.0, "output": 0.0, **entry}
    usd.setdefault("cache_read", usd["input"] * CACHE_READ_SHARE_OF_INPUT)
    usd.setdefault("cache_write", usd["input"])
    return {key: float(usd[key]) / usd_per_credit for key in PRICE_KEYS}


def discounted_cache_reads(cache_read_tokens: int) -> int:
    """The part of one request's cache reads billed at the cache-read rate (all of them, or none)."""
    return cache_read_tokens if cache_read_tokens >= CACHE_DISCOUNT_MIN_TOKENS else 0


def estimate_credits(
    model: str, tokens: Mapping[str, int | float], prices: Mapping[str, Mapping[str, float]]
) -> float:
    """Estimated credits for token counts of one model (``prices``: credits per million tokens).

    ``tokens`` are one request's (``input_tokens``, ``output_tokens``, ``cache_read_tokens``,
    ``cache_write_tokens``), or sums over many requests with ``discounted_cache_read_tokens`` added:
    the sum of :func:`discounted_cache_reads` per request, since the threshold applies per request
    and a sum alone cannot tell. Cache reads not discounted cost the input rate.
    """
    price = prices.get(model) or prices.get("*") or {}
    input_rate = price.get("input", 0.0)
    cache_read = tokens.get("cache_read_tokens", 0)
    discounted = tokens.get("discounted_cache_read_tokens")
    if discounted is None:
        discounted = discounted_cache_reads(cache_read)
    total = (
        (tokens.get("input_tokens", 0) + cache_read - discounted) * input_rate
        + discounted * price.get("cache_read", input_rate * CACHE_READ_SHARE_OF_INPUT)
        + tokens.get("output_tokens", 0) * price.get("output", 0.0)
        + tokens.get("cache_write_tokens", 0) * price.get("cache_write", input_rate)
    )
    return total / 1_000_000
