"""What parsing and writing Claude Code's request bodies costs, standard library against orjson.

    python benchmarks/json_cost.py [--repeats 30]

Bodies are grown from the captured Claude Code requests in ``tests/fixtures/claude-code/`` (their
texts are redacted to ``<N chars of client text>``; each placeholder is filled back with N
characters of source-like text) by appending tool-use / tool-result turns of 2-8 KB, as an agent
session grows, to 50, 200 and 500 KB: the sizes Claude Code sends in practice.

Per size, the median CPU of: ``json.loads``; ``json.loads`` refusing non-finite numbers through
``parse_float`` / ``parse_constant`` hooks (how a strict stdlib parse is written);
``json.dumps(separators=(",", ":"), allow_nan=False)``, with and without ``ensure_ascii``
(the gateway's default escapes every non-ASCII character); ``orjson.loads`` (refuses ``NaN``,
``Infinity`` and ``1e999`` by itself); ``orjson.dumps`` (writes a NaN as ``null``: a strict writer
must check floats itself). Rounds alternate the implementations; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "claude-code"
    / "2.1.330-turn2-thinking-tool-result.json"
)
PLACEHOLDER = re.compile(r"<(\d+) chars of client text>")
SIZES_KB = (50, 200, 500)

_WORDS = [
    *[
        "def",
        "return",
        "self",
        "await",
        "async",
        "import",
        "from",
        "class",
        "None",
        "True",
        "False",
        "if",
        "else",
        "for",
        "in",
    ],
    *[
        "while",
        "result",
        "value",
        "index",
        "path",
        "error",
        "response",
        "request",
        "headers",
        "body",
        "model",
    ],
    *["messages", "content", "é", "ü", "日本", "—", "→", "✓"],
]


def text_of(length: int, rng: random.Random) -> str:
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(_WORDS)
        words.append(word + ("\n    " if rng.random() < 0.1 else " "))
        size += len(words[-1])
    return "".join(words)[:length]


def filled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: text_of(int(m.group(1)), rng), value)
    if isinstance(value, list):
        return [filled(item, rng) for item in value]
    if isinstance(value, dict):
        return {key: filled(item, rng) for key, item in value.items()}
    return value


def body_of_size(kilobytes: int) -> dict[str, Any]:
    rng = random.Random(kilobytes)
    body = filled(json.loads(FIXTURE.read_text())["body"], rng)
    messages = body["messages"]
    turn = 0
    while len(json.dumps(body)) < kilobytes * 1024:
        turn += 1
        tool_id = f"toolu_{turn:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": text_of(rng.randint(100, 600), rng)},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Read",
                        "input": {"file_path": f"/work/src/module_{turn}.py", "limit": 2000},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": text_of(rng.randint(2000, 8000), rng),
                    }
                ],
            }
        )
    return body  # type: ignore[no-any-return]


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


def _no_constant(name: str) -> float:
    raise ValueError(name)


def implementations() -> dict[str, Any]:
    strict = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)
    encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    utf8_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    found: dict[str, Any] = {
        "json.loads": lambda raw, obj: json.loads(raw),
        "json.loads, finite hooks": lambda raw, obj: strict.decode(raw.decode()),
        "json.dumps, allow_nan=False": lambda raw, obj: encoder.encode(obj).encode(),
        "json.dumps, allow_nan=False, ensure_ascii=False": (
            lambda raw, obj: utf8_encoder.encode(obj).encode()
        ),
    }
    try:
        import orjson

        found["orjson.loads"] = lambda raw, obj: orjson.loads(raw)
        found["orjson.dumps"] = lambda raw, obj: orjson.dumps(obj)
    except ImportError:
        pass
    return found


def main(repeats: int) -> None:
    impls = implementations()
    loads = [os.getloadavg()[0]]
    rows = []
    for kilobytes in SIZES_KB:
        body = body_of_size(kilobytes)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        times: dict[str, list[float]] = {name: [] for name in impls}
        for _ in range(repeats):
            for name, work in impls.items():
                started = time.process_time()
                work(raw, body)
                times[name].append(time.process_time() - started)
        loads.append(os.getloadavg()[0])
        rows.append((kilobytes, len(raw), len(body["messages"]), times))
    print(f"{repeats} rounds per size; 1-min load average {min(loads):.1f}-{max(loads):.1f}")
    print()
    print("| body | messages | " + " | ".join(f"{name} ms" for name in impls) + " |")
    print("|---|---:|" + "---:|" * len(impls))
    for kilobytes, size, count, times in rows:
        cells = " | ".join(f"{statistics.median(times[name]) * 1000:.2f}" for name in impls)
        print(f"| {kilobytes} KB ({size:,} bytes) | {count} | {cells} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    main(parser.parse_args().repeats)
