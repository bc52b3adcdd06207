"""A strict Snowflake Cortex REST emulator for tests, benchmarks and offline demos.

```python
from jupyter_cortex_claude.testing import CortexEmulator, Fault, Reply

with CortexEmulator() as cortex:
    cortex.script(Reply.tool_use("Write", {"file_path": "hello.txt"}), Reply.text("Done."))
    cortex.fail_next(Fault.status(429))
    # point a client at f"{cortex.url}/api/v2/cortex", "Authorization: Bearer test-pat-0123456789"
```

It refuses what Cortex documents as refused (Claude Code's unshaped requests included), so a
gateway that passes it has a fair chance on a real account. The opt-in pytest plugin
(``pytest -p jupyter_cortex_claude.testing.pytest_plugin``) offers the ``cortex_emulator``,
``cortex_emulator_factory`` and ``cortex_keypair`` fixtures.
"""

from __future__ import annotations

from .auth import KeyPair, public_key_fingerprint
from .emulator import (
    CHAT_PATH,
    MESSAGES_PATH,
    MODELS_PATH,
    RESPONSES_PATH,
    CortexEmulator,
    RecordedRequest,
)
from .messages_validation import BETA_ALLOWLIST
from .replies import Block, Fault, Reply, TextBlock, ThinkingBlock, ToolUseBlock

__all__ = [
    "BETA_ALLOWLIST",
    "CHAT_PATH",
    "MESSAGES_PATH",
    "MODELS_PATH",
    "RESPONSES_PATH",
    "Block",
    "CortexEmulator",
    "Fault",
    "KeyPair",
    "RecordedRequest",
    "Reply",
    "TextBlock",
    "ThinkingBlock",
    "ToolUseBlock",
    "public_key_fingerprint",
]
