"""The text of a JSON value that arrives in pieces: a streamed tool call's arguments.

Two costs stay linear in the text's length however many pieces it comes in (issue 11, finding 1):
appending (``text += piece`` on an attribute copies the whole text every time) and asking whether
the text is complete yet, which the translated stream asks on every delta of another tool call
(parsing the whole text each time made an interleaved stream quadratic). Brackets and quotes are
tracked as the pieces arrive; the text is parsed once, when they say it closed.
"""

from __future__ import annotations

import json
import re

_STRUCTURE = re.compile(r'["\\{}\[\]]')
_BLANKS = re.compile(r"[ \t\n\r]*")


class StreamedJson:
    __slots__ = (
        "_checked_length",
        "_closed",
        "_complete",
        "_depth",
        "_escaped",
        "_in_string",
        "_length",
        "_pieces",
        "_scalar",
        "_started",
        "_trailing",
    )

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._length = 0
        self._started = False
        self._scalar = False  # the value is not an object or array: checked by parsing
        self._depth = 0
        self._in_string = False
        self._escaped = False  # the last piece ended with a backslash inside a string
        self._closed = False  # the outermost object or array has closed
        self._trailing = False  # something other than blanks follows it: never complete
        self._checked_length = -1
        self._complete = False

    def __bool__(self) -> bool:
        return self._length > 0

    @property
    def text(self) -> str:
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def append(self, piece: str) -> None:
        if not piece:
            return
        self._pieces.append(piece)
        self._length += len(piece)
        if self._scalar or self._trailing:
            return
        start = 0
        if not self._started:
            start = _BLANKS.match(piece).end()  # type: ignore[union-attr]
            if start == len(piece):
                return
            self._started = True
            if piece[start] not in "{[":
                self._scalar = True
                return
        if self._closed:
            self._trailing = bool(piece.strip())
            return
        self._track(piece, start)

    def _track(self, piece: str, start: int) -> None:
        skip = 0 if self._escaped else -1  # the position of an escaped character
        self._escaped = False
        for match in _STRUCTURE.finditer(piece, start):
            position = match.start()
            if position == skip:
                continue
            char = match.group()
            if self._in_string:
                if char == "\\":
                    skip = position + 1
                    self._escaped = skip == len(piece)
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._closed = True
                    self._trailing = bool(piece[position + 1 :].strip())
                    return

    def is_complete(self) -> bool:
        """True when the text so far is one whole JSON value."""
        if not self._started or self._trailing or not (self._closed or self._scalar):
            return False
        if self._checked_length != self._length:
            self._checked_length = self._length
            try:
                json.loads(self.text)
            except ValueError:
                self._complete = False
            else:
                self._complete = True
        return self._complete
