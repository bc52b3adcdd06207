"""A local estimate for ``/v1/messages/count_tokens``, which Cortex does not serve.

Claude's tokenizer is not public and nothing may be fetched at run time, so this counts characters:
about 3.5 characters per token for English prose and code (Anthropic's rule of thumb), plus a small
overhead per message, block and tool. Claude Code uses the figure only to decide when to compact, so
an estimate within roughly ±25% serves; it is not a billing figure (the usage ledger has those).
"""

from __future__ import annotations

import json
import math
from typing import Any

CHARS_PER_TOKEN = 3.5
_PER_MESSAGE = 4
_PER_BLOCK = 3
_PER_TOOL = 12
_PER_IMAGE = 1600  # a typical ~1 MP image; the real count depends on pixels we do not decode


def estimate_input_tokens(body: dict[str, Any]) -> int:
    chars = 0
    overhead = 0
    system = body.get("system")
    chars += _text_chars(system)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            overhead += _PER_MESSAGE
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, list):
                    overhead += _PER_BLOCK * len(content)
                    overhead += sum(
                        _PER_IMAGE
                        for block in content
                        if isinstance(block, dict) and block.get("type") == "image"
                    )
                chars += _text_chars(content)
    tools = body.get("tools")
    if isinstance(tools, list):
        overhead += _PER_TOOL * len(tools)
        chars += len(json.dumps(tools, separators=(",", ":")))
    return max(1, math.ceil(chars / CHARS_PER_TOKEN) + overhead)


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "image":
            return 0
        if kind == "tool_use":
            return len(str(value.get("name", ""))) + len(json.dumps(value.get("input", {})))
        total = 0
        for key in ("text", "thinking", "content"):
            total += _text_chars(value.get(key))
        return total
    return 0
