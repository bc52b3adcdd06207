"""The Cortex emulator in its own process, so its CPU never counts against the server being measured.

Started by :mod:`benchmarks.run`; prints one JSON line ``{"port": N, "pid": N}`` when it listens and
serves until its stdin closes (so it also stops when the benchmark process dies).

The answer's length comes from the prompt: a user message ``words:<n>`` gets ``n`` words back, which
the emulator streams as ``n`` delta events (one word each), so one emulator serves every scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from jupyter_cortex_claude.testing import CortexEmulator, Reply

_WORDS = re.compile(r"words:(\d+)")


def _prompt_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    if not messages:
        return ""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def make_responder(emulator: CortexEmulator) -> Any:
    def respond(body: dict[str, Any]) -> Reply:
        # The emulator records every request for tests; a benchmark sends hundreds of thousands.
        if len(emulator.requests) > 200:
            emulator.requests.clear()
        match = _WORDS.search(_prompt_text(body))
        count = int(match.group(1)) if match else 5
        # Distinct words: LiteLLM aborts a stream that repeats the same chunk ("the model is
        # repeating"), which a real model does not do either.
        return Reply.text("".join(f"w{index} " for index in range(max(1, count))))

    return respond


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pat", required=True)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args()
    emulator = CortexEmulator(
        account="BENCHORG-BENCH", user="BENCH", pats=[args.pat], token_delay=args.token_delay
    )
    emulator.responder = make_responder(emulator)
    emulator.start()
    print(json.dumps({"port": emulator.port, "pid": os.getpid()}), flush=True)
    sys.stdin.read()  # returns when the parent closes the pipe or dies
    emulator.stop()


if __name__ == "__main__":
    main()
