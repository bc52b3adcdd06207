"""What the gateway refuses as implausible before anything reaches Cortex or the usage ledger.

A request that passed Jupyter's auth can still be broken or hostile (issue 11, finding 5): a 5 MiB
``model`` string went into the usage ledger as is, ``../../etc/passwd`` went to Cortex as a model
id, and 40,000 messages kept the server busy for a minute. Every bound here sits far above what a
real client sends; each refusal is a 400 that says what was wrong.
"""

from __future__ import annotations

import re

from ..errors import GatewayError, invalid_request

MAX_MODEL_ID_CHARS = 256

# Letters and digits, then also the punctuation real ids use: "." (llama3.1-70b,
# us.anthropic.claude-...), "-" and "_", ":" (Bedrock's "-v1:0", OpenAI's "ft:gpt-4o:org:x"),
# "/" (openai/gpt-5), "@" (Vertex's claude-sonnet-4-5@20250929), "[" and "]" (Claude Code's "[1m]").
# No spaces, quotes, control or non-ASCII characters: nothing that could read as something else in
# a log line, a terminal or a SQL string.
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*")

# Messages in one request. Claude Code compacts its history long before a 1M-token context holds
# 100,000 messages (every message costs a few tokens at least); the bound only stops a body made
# of tiny messages from keeping the server busy.
DEFAULT_MAX_MESSAGES = 100_000


def check_model_id(model: str, *, param: str = "model") -> None:
    """Raise a 400 unless ``model`` (surrounding blanks aside) looks like a model id."""
    candidate = model.strip()
    if (
        len(candidate) <= MAX_MODEL_ID_CHARS
        and _MODEL_ID.fullmatch(candidate)
        and ".." not in candidate
    ):
        return
    raise invalid_request(
        f"model {shown(model)} is not a model id: an id is at most {MAX_MODEL_ID_CHARS} "
        "characters, letters and digits and . - _ : / @ [ ] only, such as claude-sonnet-4-5 or "
        "openai-gpt-5 (GET .../v1/models lists them)",
        param=param,
    )


def too_many_messages(count: int | str, maximum: int) -> GatewayError:
    return invalid_request(
        f"messages holds {count} messages, more than this gateway accepts ({maximum:,}; "
        "c.CortexClaude.max_messages); compact the conversation or start a new one",
        param="messages",
    )


def check_message_count(count: int, maximum: int) -> None:
    if count > maximum:
        raise too_many_messages(f"{count:,}", maximum)


def shown(value: str, limit: int = 60) -> str:
    """``value`` quoted for an error message: control and non-ASCII characters escaped (a bidi
    override must not reorder the message it is shown in), long values cut."""
    head = ascii(value[:limit])
    return head if len(value) <= limit else f"{head}... ({len(value):,} characters)"
