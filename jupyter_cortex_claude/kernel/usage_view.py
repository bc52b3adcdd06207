"""``%cortex_claude usage [--since 7d] [--by model|client] [--snowflake [--by-user]]``: what the
gateway used.

The numbers come from the gateway's ledger through ``GET cortex-claude/usage`` (the gateway owns the
ledger file, wherever it is configured). A table by model (or client) with *estimated* credits,
spend against the credit budget when one is set, and, when matplotlib is installed, a plot of
tokens and estimated credits over a real time axis (hours, or days when the data spans more than
three days; an idle stretch shows as a gap). ``--snowflake`` adds Snowflake's own account of
``CORTEX_REST_API_USAGE_HISTORY``, which lags 45 minutes to 3 hours (cortex-api.md); ``--by-user``
makes that the whole team's, by Snowflake user, for an admin whose role may read
``SNOWFLAKE.ACCOUNT_USAGE`` (docs/jupyterhub.md).
"""

from __future__ import annotations

import argparse
import html
import os
import shlex
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

SNOWFLAKE_USAGE_QUERY = """
SELECT MODEL_NAME, TO_CHAR(DATE_TRUNC('day', START_TIME), 'YYYY-MM-DD') AS DAY,
       COUNT(*) AS REQUESTS, SUM(TOKENS) AS TOKENS
FROM SNOWFLAKE.ACCOUNT_USAGE.CORTEX_REST_API_USAGE_HISTORY
WHERE START_TIME >= TO_TIMESTAMP_LTZ(%s)
GROUP BY 1, 2 ORDER BY 2, 1
"""

# The team's use by Snowflake user and model. Columns as documented for
# SNOWFLAKE.ACCOUNT_USAGE.CORTEX_REST_API_USAGE_HISTORY (USER_ID is TEXT; TOKENS_GRANULAR an OBJECT
# with "input", "output" and "cache_read_input") and ACCOUNT_USAGE.USERS (USER_ID NUMBER, NAME):
# docs.snowflake.com/en/sql-reference/account-usage/cortex_rest_api_usage_history and .../users.
# Not run against a real account by this project's tests (tests/test_team_usage.py).
TEAM_USAGE_QUERY = """
SELECT COALESCE(u.NAME, h.USER_ID) AS USER_NAME, h.MODEL_NAME,
       COUNT(*) AS REQUESTS, SUM(h.TOKENS) AS TOKENS,
       SUM(h.TOKENS_GRANULAR:"input"::NUMBER) AS INPUT_TOKENS,
       SUM(h.TOKENS_GRANULAR:"output"::NUMBER) AS OUTPUT_TOKENS,
       SUM(COALESCE(h.TOKENS_GRANULAR:"cache_read_input"::NUMBER, 0)) AS CACHE_READ_TOKENS
FROM SNOWFLAKE.ACCOUNT_USAGE.CORTEX_REST_API_USAGE_HISTORY h
LEFT JOIN SNOWFLAKE.ACCOUNT_USAGE.USERS u ON TO_VARCHAR(u.USER_ID) = h.USER_ID
WHERE h.START_TIME >= TO_TIMESTAMP_LTZ(%s)
GROUP BY 1, 2 ORDER BY 1, 2
"""
TEAM_COLUMNS = (
    "USER_NAME",
    "MODEL_NAME",
    "REQUESTS",
    "TOKENS",
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "CACHE_READ_TOKENS",
)

# Above this span of data the plot sums hours into days (a month of hourly bars is unreadable).
HOURLY_SPAN = timedelta(days=3)

TABLE_COLUMNS = (
    "model",
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "mean_first_token_ms",
    "estimated_credits",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise ValueError(f"%cortex_claude usage: {message}\n{self.format_usage()}")


def usage_url(endpoint: Any) -> str:
    base = endpoint.anthropic_url.rstrip("/")
    if base.endswith("/anthropic"):
        base = base[: -len("/anthropic")]
    return base + "/usage"


def fetch_usage(endpoint: Any, since: str, group_by: str) -> dict[str, Any]:
    response = httpx.get(
        usage_url(endpoint),
        params={"since": since, "group_by": group_by},
        headers={"authorization": f"Bearer {endpoint.key}"},
        timeout=30,
    )
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise RuntimeError(f"GET cortex-claude/usage answered {response.status_code}: {message}")
    return response.json()


def show_usage(line: str, shell: Any) -> None:
    from IPython.display import Image, Markdown, display

    parser = _Parser(prog="%cortex_claude usage", add_help=False)
    parser.add_argument("--since", default="30d", help="7d, 12h, 2025-01-31 or Unix seconds")
    parser.add_argument("--by", choices=("model", "client"), default="model")
    parser.add_argument("--snowflake", action="store_true")
    parser.add_argument("--by-user", action="store_true", help="with --snowflake: the team's")
    words = shlex.split(line)
    if words[:1] == ["usage"]:
        words = words[1:]
    try:
        args = parser.parse_args(words)
    except ValueError as error:
        print(error, file=sys.stderr)
        return
    from .discovery import gateway_endpoint

    endpoint = gateway_endpoint()
    if endpoint is None:
        return
    try:
        by_model = fetch_usage(endpoint, args.since, args.by)
        over_time = fetch_usage(endpoint, args.since, f"hour,{args.by}")
    except (RuntimeError, httpx.HTTPError) as error:
        print(f"cortex-claude: {error}", file=sys.stderr)
        return
    groups = by_model["groups"]
    total = sum(group["input_tokens"] + group["output_tokens"] for group in groups)
    display(
        Markdown(
            f"**cortex-claude usage since {args.since}:** "
            f"{sum(g['requests'] for g in groups)} requests, {total:,} tokens, "
            f"about **{by_model['estimated_credits']:.4f} credits** (an estimate from "
            "`c.CortexClaude.model_prices`, not Snowflake's bill)"
        )
    )
    budget = by_model.get("budget")
    if budget:
        display(Markdown(f"**Credit budget:** {budget_line(budget)}"))
    display_table(groups, columns=(args.by, *TABLE_COLUMNS[1:]))
    figure = plot_usage(over_time["groups"], by=args.by)
    if figure is not None:
        display(Image(data=figure_png(figure), format="png"))
    if args.snowflake:
        since = by_model.get("since") or 0.0
        if args.by_user:
            result = snowflake_usage(since, query=TEAM_USAGE_QUERY)
            title = "**The team, by Snowflake user** (`CORTEX_REST_API_USAGE_HISTORY`, lags hours):"
            columns = TEAM_COLUMNS
        else:
            result = snowflake_usage(since)
            title = "**Snowflake's account** (`CORTEX_REST_API_USAGE_HISTORY`, lags hours):"
            columns = ("MODEL_NAME", "DAY", "REQUESTS", "TOKENS")
        if isinstance(result, str):
            display(Markdown(result))
        else:
            display(Markdown(title))
            display_table(result, columns=columns)


def budget_line(budget: dict[str, Any]) -> str:
    """Spend against the credit budget in one line: what ``status`` and ``usage`` print."""
    text = (
        f"{budget['spent']:.2f} of {budget['credits']:g} credits this {budget['period']} "
        f"(UTC, {int(budget['fraction'] * 100)}%), resets {budget['resets_at']}"
    )
    if budget.get("refused"):
        text += f"; {budget['refused']} request(s) refused"
    if budget.get("state") != "ok":
        text += f". {budget.get('how_to_raise', '')}"
    return text


def display_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = TABLE_COLUMNS) -> None:
    from IPython.display import HTML, display

    if not rows:
        display(HTML("<p><i>No requests recorded in this period.</i></p>"))
        return
    try:
        import pandas
    except ImportError:
        head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns)
            + "</tr>"
            for row in rows
        )
        display(HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))
        return
    display(pandas.DataFrame([{c: row.get(c) for c in columns} for row in rows]))


def usage_series(
    groups: list[dict[str, Any]], by: str = "model"
) -> tuple[str, list[datetime], dict[str, list[float]], dict[str, list[float]]]:
    """Hourly ``hour,<by>`` groups as (bucket, bucket starts, tokens by series, credits by series).

    Buckets are hours, or days when the data spans more than :data:`HOURLY_SPAN`; only buckets with
    usage are listed (the plot's time axis shows the gaps)."""
    bucket = "hour"
    starts = [_utc(group["hour"]) for group in groups]
    if starts and max(starts) - min(starts) > HOURLY_SPAN:
        bucket = "day"
        starts = [moment.replace(hour=0) for moment in starts]
    times = sorted(set(starts))
    index = {moment: number for number, moment in enumerate(times)}
    tokens: dict[str, list[float]] = {}
    credits: dict[str, list[float]] = {}
    for group, moment in zip(groups, starts, strict=True):
        name = str(group.get(by) or "?")
        position = index[moment]
        tokens.setdefault(name, [0.0] * len(times))[position] += (
            group["input_tokens"]
            + group["output_tokens"]
            + group.get("cache_read_tokens", 0)
            + group.get("cache_write_tokens", 0)
        )
        credits.setdefault(name, [0.0] * len(times))[position] += group["estimated_credits"]
    return bucket, times, tokens, credits


def plot_usage(groups: list[dict[str, Any]], by: str = "model") -> Any:
    """Tokens (top) and estimated credits (bottom) per hour or day, stacked by model or client, on
    a real time axis, the legend beside the plot. None when there is nothing to plot or no
    matplotlib (the caller then shows only the table)."""
    try:
        import matplotlib.dates as mdates
        from matplotlib.figure import Figure
    except ImportError:
        print(
            "(no plot: matplotlib is missing from this kernel's environment; "
            "pip install 'jupyter-cortex-claude[kernel]')"
        )
        return None
    if not groups:
        return None
    bucket, times, tokens, credits = usage_series(groups, by)
    width = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    token_axes, credit_axes = figure.subplots(2, 1, sharex=True)
    for axes, series in ((token_axes, tokens), (credit_axes, credits)):
        bottom = [0.0] * len(times)
        for name in sorted(series):
            axes.bar(
                times, series[name], width=width * 0.9, bottom=bottom, align="edge", label=name
            )
            bottom = [b + v for b, v in zip(bottom, series[name], strict=True)]
        axes.grid(axis="y", alpha=0.3)
    token_axes.set_ylabel("tokens")
    token_axes.yaxis.set_major_formatter(_thousands())
    credit_axes.set_ylabel("credits (estimate)")
    token_axes.set_title(f"Tokens and estimated credits per {bucket} (UTC), by {by}")
    # Beside the plot, not over the bars (one legend: both panels share the series' colours).
    token_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=by)
    # A real time axis: the edges of the period with data, plus a bucket either side.
    credit_axes.set_xlim(times[0] - width, times[-1] + 2 * width)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    credit_axes.xaxis.set_major_locator(locator)
    credit_axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=timezone.utc))
    return figure


def figure_png(figure: Any) -> bytes:
    """The figure as PNG bytes: shown the same in every frontend, whatever matplotlib backend."""
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _utc(text: str) -> datetime:
    """The ledger's ``YYYY-MM-DDTHH:00`` (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{value:,.0f}")


def snowflake_usage(
    since: float, environ: Any = None, *, query: str = SNOWFLAKE_USAGE_QUERY
) -> list[dict[str, Any]] | str:
    """Rows of ``query`` (CORTEX_REST_API_USAGE_HISTORY since a Unix time), or a Markdown message
    saying why not."""
    environ = os.environ if environ is None else environ
    try:
        import snowflake.connector
    except ImportError:
        return (
            "**--snowflake:** the Snowflake connector is not installed: "
            "`pip install 'jupyter-cortex-claude[snowflake]'`."
        )
    connection = _snowpark_connection()
    if connection is None:
        from ..config import CortexClaude
        from ..snowflake.connection import resolve_connection
        from ..snowflake.errors import ConfigurationError

        try:
            settings = resolve_connection(CortexClaude(), environ)
        except ConfigurationError as error:
            return f"**--snowflake:** the Snowflake connection is not usable: {error}"
        if settings is None:
            return (
                "**--snowflake:** no Snowflake account is configured (set SNOWFLAKE_ACCOUNT or "
                "~/.snowflake/connections.toml), so there is no ACCOUNT_USAGE to compare with."
            )
        try:
            connection = snowflake.connector.connect(**_connector_arguments(settings))
        except Exception as error:
            return (
                f"**--snowflake:** could not connect to Snowflake: {type(error).__name__}: {error}"
            )
    try:
        return query_rows(connection, query, (since,))
    except Exception as error:
        return (
            f"**--snowflake:** the query failed ({type(error).__name__}: {error}). Reading "
            "SNOWFLAKE.ACCOUNT_USAGE needs a role with IMPORTED PRIVILEGES on the SNOWFLAKE "
            "database (or the USAGE_VIEWER database role)."
        )


def query_rows(connection: Any, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    """A query's rows as dicts by column name, through a DB-API connection (the connector's)."""
    cursor = connection.cursor()
    try:
        cursor.execute(query, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _snowpark_connection() -> Any:
    """Inside a Snowflake Notebook, the session it already has."""
    try:
        from snowflake.snowpark.context import get_active_session

        return get_active_session().connection
    except Exception:
        return None


def _connector_arguments(settings: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "host": settings.host,
        "port": settings.port,
        "protocol": settings.protocol,
        "login_timeout": 30,
    }
    if settings.role:
        arguments["role"] = settings.role
    if settings.private_key_file:
        arguments["authenticator"] = "SNOWFLAKE_JWT"
        arguments["private_key_file"] = settings.private_key_file
        if settings.private_key_file_pwd:
            arguments["private_key_file_pwd"] = settings.private_key_file_pwd
    elif settings.token or settings.token_file_path:
        arguments["authenticator"] = "PROGRAMMATIC_ACCESS_TOKEN"
        if settings.token:
            arguments["token"] = settings.token
        else:
            arguments["token_file_path"] = settings.token_file_path
    return {name: value for name, value in arguments.items() if value not in (None, "")}
