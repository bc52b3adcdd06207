"""JSON in and out of the gateway: finite numbers only, and large bodies in slices, off the loop.

**Finite numbers.** Python's ``json`` reads ``NaN``, ``Infinity`` and an overflowing ``1e999`` as
floats and writes them back as the non-standard tokens ``NaN``/``Infinity``, which Cortex and every
strict client refuse (issue 11, finding 5). Requests with such a number are a 400 here; answers
from Cortex are read the same way (one with a non-finite number counts as malformed); everything
the gateway writes goes through ``allow_nan=False``.

**Slices.** ``json.loads`` and ``json.dumps`` are C loops that hold the GIL from start to end: about
50 ms per MB of short messages on the 2-CPU build machine, so a 20 MiB body held the event loop,
and with it every notebook of the server, for a second or more, even from a worker thread. The
``messages`` list is read one message at a time and written a few hundred messages at a time; run
in a worker thread (:func:`off_loop`), the work then gives the GIL back to the event loop every
switch interval (5 ms). docs/reliability.md has the measurements.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import re
import threading
from collections.abc import Callable
from json.decoder import scanstring
from typing import Any, TypeVar

from ..errors import invalid_request
from .limits import shown, too_many_messages

T = TypeVar("T")

# Bodies from this size on are parsed, shaped and encoded in a worker thread. Below it the work
# takes a few milliseconds, less than the hop to a thread and back costs under load.
LARGE_BODY_BYTES = 256 * 1024

# Messages encoded per json.dumps call: a few milliseconds of GIL for short messages.
_SLICE = 256


class NonFiniteNumber(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise NonFiniteNumber(text)
    return value


def _no_constant(name: str) -> float:
    raise NonFiniteNumber(name)


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
_SCAN = _DECODER.scan_once
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_SKIP_BLANKS = re.compile(r"[ \t\n\r]*").match
_BLANK_CHARS = frozenset(" \t\n\r")


def loads_finite(data: bytes | str) -> Any:
    """``json.loads`` that raises ``ValueError`` on ``NaN``, ``Infinity`` and overflowing numbers."""
    if isinstance(data, str):
        return _DECODER.decode(data)
    # An object whose second byte is not NUL is UTF-8 (json.detect_encoding's own rule, RFC 8259
    # §8.1): the common case skips the detection, a few µs per streamed event.
    if data[:1] == b"{" and data[1:2] != b"\x00":
        return _DECODER.decode(data.decode("utf-8", "surrogatepass"))
    return _DECODER.decode(data.decode(json.detect_encoding(data), "surrogatepass"))


def dumps_finite(value: Any) -> str:
    """Compact JSON; a non-finite float raises ``ValueError`` instead of writing ``NaN``."""
    return _ENCODER.encode(value)


def encode_body(body: Any) -> bytes:
    """Compact JSON bytes of a request or answer body, its ``messages`` in slices."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or len(messages) <= _SLICE:
        return _ENCODER.encode(body).encode()
    parts = []  # joined once at the end: each copy of a 20 MiB text costs ~10 ms of GIL
    for key, value in body.items():
        parts.append(f",{_ENCODER.encode(key)}:")
        if key != "messages":
            parts.append(_ENCODER.encode(value))
            continue
        for start in range(0, len(messages), _SLICE):
            encoded = _ENCODER.encode(messages[start : start + _SLICE])
            parts.append(encoded[:-1] if start == 0 else "," + encoded[1:-1])
        parts.append("]")
    parts[0] = "{" + parts[0][1:]
    parts.append("}")
    return "".join(parts).encode()


def parse_request_body(raw_body: bytes, *, max_messages: int | None = None) -> dict[str, Any]:
    """The client's JSON object, or a 400 that says what is wrong with it.

    ``messages`` holding more than ``max_messages`` entries is refused as soon as the parser
    passes the limit, without reading the rest.
    """
    if not raw_body:
        raise invalid_request("The request body is empty; expected a JSON object.")
    try:
        text = raw_body.decode(json.detect_encoding(raw_body), "surrogatepass")
        body = _parse_object(text, max_messages)
    except RecursionError:
        raise invalid_request("The request body is nested too deeply.") from None
    except NonFiniteNumber as exc:
        raise invalid_request(
            f"The request body holds the number {shown(str(exc), 40)}, which is not finite; "
            "JSON numbers must be finite (NaN, Infinity and overflowing values such as 1e999 "
            "are refused)."
        ) from None
    except ValueError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if body is None:
        raise invalid_request("The request body must be a JSON object.")
    return body


def is_large(raw_body: bytes) -> bool:
    return len(raw_body) >= LARGE_BODY_BYTES


async def off_loop(large: bool, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``: in a worker thread when ``large``, so the event loop keeps serving."""
    if not large:
        return work(*args)
    return await asyncio.to_thread(_without_collections, work, *args)


_collector_lock = threading.Lock()
_collector_paused = 0  # workers running with the cyclic garbage collector paused by us


def _without_collections(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` with Python's cyclic garbage collector paused.

    Parsing a 20 MiB body creates about a million objects; the collector then runs full
    collections over every object of the server, each holding the GIL, and so the event loop
    (50-100 ms each on the build machine). The objects made here hold no cycles (refcounting frees
    them with the request), so nothing is lost by not looking for cycles meanwhile. Measured with a
    5 ms loop-lag probe while a worker shaped a 20 MiB body of 100,000 messages: longest stall
    132-204 ms with the collector, 43-61 ms without (docs/reliability.md).
    """
    global _collector_paused
    with _collector_lock:
        if _collector_paused == 0 and not gc.isenabled():
            return work(*args)  # turned off by someone else: theirs to turn back on
        _collector_paused += 1
        gc.disable()
    try:
        return work(*args)
    finally:
        with _collector_lock:
            _collector_paused -= 1
            if _collector_paused == 0:
                gc.enable()


# -- the sliced parser -----------------------------------------------------------------------------


def _scan(text: str, index: int) -> tuple[Any, int]:
    try:
        return _SCAN(text, index)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None


def _parse_object(text: str, max_messages: int | None) -> dict[str, Any] | None:
    """A top-level object as ``json.loads`` reads it (the last of duplicate keys wins), but with
    ``messages`` read message by message; ``None`` when the body is not an object."""
    index = _SKIP_BLANKS(text, 0).end()
    if not text.startswith("{", index):
        return None
    body: dict[str, Any] = {}
    index = _SKIP_BLANKS(text, index + 1).end()
    if text.startswith("}", index):
        index += 1
    else:
        while True:
            if not text.startswith('"', index):
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", text, index
                )
            key, index = scanstring(text, index + 1)
            index = _SKIP_BLANKS(text, index).end()
            if not text.startswith(":", index):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, index)
            index = _SKIP_BLANKS(text, index + 1).end()
            if key == "messages" and text.startswith("[", index):
                body[key], index = _parse_messages(text, index, max_messages)
            else:
                body[key], index = _scan(text, index)
            index = _SKIP_BLANKS(text, index).end()
            if text.startswith(",", index):
                index = _SKIP_BLANKS(text, index + 1).end()
            elif text.startswith("}", index):
                index += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    if _SKIP_BLANKS(text, index).end() != len(text):
        raise json.JSONDecodeError("Extra data", text, index)
    return body


def _parse_messages(text: str, index: int, max_messages: int | None) -> tuple[list[Any], int]:
    messages: list[Any] = []
    index = _SKIP_BLANKS(text, index + 1).end()
    if text.startswith("]", index):
        return messages, index + 1
    limit = max_messages if max_messages is not None else math.inf
    # The loop runs once per message: names bound locally, blanks skipped only where present.
    scan, skip_blanks, append = _SCAN, _SKIP_BLANKS, messages.append
    while True:
        try:
            message, index = scan(text, index)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", text, stop.value) from None
        append(message)
        if len(messages) > limit:
            raise too_many_messages(f"more than {limit:,}", int(limit))
        char = text[index : index + 1]
        if char in _BLANK_CHARS:
            index = skip_blanks(text, index).end()
            char = text[index : index + 1]
        if char == ",":
            index += 1
            if text[index : index + 1] in _BLANK_CHARS:
                index = skip_blanks(text, index).end()
        elif char == "]":
            return messages, index + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
