"""The team's usage by Snowflake user (``%cortex_claude usage --snowflake --by-user``).

These queries were NOT run against a Snowflake account: they are parsed as Snowflake SQL (sqlglot)
and checked against the columns Snowflake documents for the views they read, and their rows are
read through a real DB-API connection (sqlite3) the way the connector's are.
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlglot
from sqlglot import exp

from jupyter_cortex_claude.kernel.usage_view import (
    SNOWFLAKE_USAGE_QUERY,
    TEAM_COLUMNS,
    TEAM_USAGE_QUERY,
    query_rows,
    snowflake_usage,
)

# docs.snowflake.com/en/sql-reference/account-usage/cortex_rest_api_usage_history and .../users
DOCUMENTED_COLUMNS = {
    "CORTEX_REST_API_USAGE_HISTORY": {
        "START_TIME",
        "END_TIME",
        "REQUEST_ID",
        "MODEL_NAME",
        "TOKENS",
        "TOKENS_GRANULAR",
        "USER_ID",
        "INFERENCE_REGION",
    },
    "USERS": {"USER_ID", "NAME", "LOGIN_NAME", "DISPLAY_NAME", "CREATED_ON", "DELETED_ON"},
}
# The keys of TOKENS_GRANULAR (Snowflake's "Cortex REST API Billing & Cost Analysis" guide).
TOKENS_GRANULAR_KEYS = {"input", "output", "cache_read_input"}


def parsed(query: str) -> exp.Expression:
    assert query.count("%s") == 1  # the connector's pyformat placeholder: `since`, bound once
    return sqlglot.parse_one(query.replace("%s", "0"), read="snowflake")


@pytest.mark.parametrize("query", [SNOWFLAKE_USAGE_QUERY, TEAM_USAGE_QUERY])
def test_usage_queries_read_only_documented_account_usage_columns(query: str) -> None:
    tree = parsed(query)
    tables = {table.alias_or_name: table for table in tree.find_all(exp.Table)}
    assert {(t.catalog, t.db) for t in tables.values()} == {("SNOWFLAKE", "ACCOUNT_USAGE")}
    for column in tree.find_all(exp.Column):
        if column.table:
            view = tables[column.table].name
        elif column.name in TEAM_COLUMNS or len(tables) > 1:
            continue  # an output alias (ORDER BY / GROUP BY by name)
        else:
            (view,) = (table.name for table in tables.values())
        assert column.name in DOCUMENTED_COLUMNS[view], (view, column.name)
    for path in tree.find_all(exp.JSONExtract):
        assert path.expression.sql().strip("'").removeprefix("$.") in TOKENS_GRANULAR_KEYS


def test_the_team_view_is_one_row_per_user_and_model() -> None:
    tree = parsed(TEAM_USAGE_QUERY)
    assert tuple(select.alias_or_name for select in tree.selects) == TEAM_COLUMNS
    join = tree.find(exp.Join)
    assert join is not None and join.side == "LEFT"  # a user deleted since still counts
    group = tree.find(exp.Group)
    assert group is not None
    assert [e.sql() for e in group.expressions] == ["1", "2"]  # USER_NAME, MODEL_NAME


def test_rows_come_back_by_column_name_through_a_db_api_connection() -> None:
    connection = sqlite3.connect(":memory:")
    rows = query_rows(
        connection,
        "SELECT 'ALICE' AS USER_NAME, 'claude-sonnet-4-6' AS MODEL_NAME, 3 AS REQUESTS "
        "WHERE ? >= 0",
        (1700000000.0,),
    )
    assert rows == [{"USER_NAME": "ALICE", "MODEL_NAME": "claude-sonnet-4-6", "REQUESTS": 3}]


def test_without_an_account_the_team_view_says_what_is_missing() -> None:
    message = snowflake_usage(0.0, environ={}, query=TEAM_USAGE_QUERY)
    assert isinstance(message, str) and "no Snowflake account is configured" in message
