"""Compact descriptions of notebook variables for ``%%cortex_claude --context VAR ...``.

A DataFrame is described by its shape, column types and first rows (not all of it: a prompt has a
budget, and every token is billed); anything else by a truncated repr. pandas is never imported
here: a DataFrame is recognised by its type's module, so the kernel works without pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_REPR_CHARS = 2000
HEAD_ROWS = 5


def describe_variables(names: Iterable[str], namespace: Mapping[str, Any]) -> str:
    """One Markdown section per variable; a missing name raises KeyError with a helpful message."""
    sections = []
    for name in names:
        if name not in namespace:
            raise KeyError(f"--context: no variable named {name!r} in the notebook")
        sections.append(describe_value(name, namespace[name]))
    return "\n\n".join(sections)


def describe_value(name: str, value: Any) -> str:
    kind = type(value)
    qualified = f"{kind.__module__}.{kind.__qualname__}"
    if _is_pandas(value, "DataFrame"):
        return _describe_dataframe(name, value)
    if _is_pandas(value, "Series"):
        head = _truncate(value.head(HEAD_ROWS).to_string())
        return (
            f"### `{name}`: pandas Series, {len(value)} values, dtype {value.dtype}\n"
            f"```\n{head}\n```"
        )
    shape = getattr(value, "shape", None)
    size = f", shape {tuple(shape)}" if isinstance(shape, tuple) else ""
    length = ""
    if isinstance(value, (list, tuple, dict, set, str, bytes)):
        length = f", {len(value)} items" if not isinstance(value, (str, bytes)) else ""
    return f"### `{name}`: {qualified}{size}{length}\n```\n{_truncate(repr(value))}\n```"


def _is_pandas(value: Any, class_name: str) -> bool:
    kind = type(value)
    return kind.__module__.startswith("pandas") and kind.__name__ == class_name


def _describe_dataframe(name: str, frame: Any) -> str:
    rows, columns = frame.shape
    schema = "\n".join(f"- `{column}`: {dtype}" for column, dtype in frame.dtypes.items())
    head = _truncate(frame.head(HEAD_ROWS).to_string())
    return (
        f"### `{name}`: pandas DataFrame, {rows} rows × {columns} columns\n"
        f"Columns:\n{schema}\n\nFirst {min(rows, HEAD_ROWS)} rows:\n```\n{head}\n```"
    )


def _truncate(text: str, limit: int = MAX_REPR_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters)"
