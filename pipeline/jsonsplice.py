"""jsonsplice: change one member of a JSON document by editing its text, not by re-encoding it.

A file is sent as it was dropped: a JSON library that parses and serializes it again rounds a
decimal longer than a double holds (``0.12345678901234567890123`` comes back as
``0.12345678901234568``), rewrites ``1E+2``, ``1e-400`` and ``-0`` and re-escapes strings. So the
pipeline finds where a member's value lies in the text and replaces that span (or inserts a new
member), leaving every other byte exactly as it was.

The text given here must already be valid JSON (message.parse checked it): this module only
walks it. Keys are compared decoded (``"Me\\u0074a"`` is ``Meta``), as the parser sees them.
"""

from __future__ import annotations

import json
import json.decoder
import re
from json.encoder import encode_basestring
from typing import Iterable, NamedTuple

_SPACE = re.compile(r"[ \t\n\r]*")
_WHITESPACE = " \t\n\r"
_SCALAR_END = re.compile(r"[^,}\]\s]*")
# a JSON string's end and decoded value, in C (json's own; the stubs do not declare it)
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]
# the C scanner: skips a container at C speed (the text is valid already, so its lenient
# defaults, NaN and duplicates, never come into play)
_skip_container = json.JSONDecoder().raw_decode


class Edit(NamedTuple):
    """Replace ``text[start:end]`` by ``replacement`` (start == end: an insertion)."""
    start: int
    end: int
    replacement: str


class NotFound(LookupError):
    """A key of the path is missing, or its value is not an object."""


def _find(text: str, brace: int, key: str) -> int:
    """Where the value of member ``key`` of the object at ``brace`` starts, or -1."""
    pos = _space(text, brace + 1)
    while text[pos] != "}":
        name, pos = _scanstring(text, pos + 1)
        start = _space(text, _space(text, pos) + 1)             # past the colon
        if name == key:
            return start
        pos = _space(text, _value_end(text, start))
        if text[pos] == ",":
            pos = _space(text, pos + 1)
    return -1


def _space(text: str, pos: int) -> int:
    if pos < len(text) and text[pos] in _WHITESPACE:
        match = _SPACE.match(text, pos)
        return match.end() if match else pos
    return pos


def _value_end(text: str, start: int) -> int:
    first = text[start]
    if first == '"':
        return _scanstring(text, start + 1)[1]
    if first in "{[":
        return _skip_container(text, start)[1]
    match = _SCALAR_END.match(text, start)
    return match.end() if match else start


def object_at(text: str, path: Iterable[str]) -> int:
    """Where the ``{`` of the object at ``path`` (keys from the top level) is. Raises NotFound."""
    pos = _space(text, 0)
    if text[pos:pos + 1] != "{":
        raise NotFound("the top level is not an object")
    for key in path:
        pos = _find(text, pos, key)
        if pos < 0 or text[pos] != "{":
            raise NotFound(key)
    return pos


def replace_member(text: str, path: Iterable[str], key: str, value: str) -> Edit:
    """The edit that puts ``value`` (JSON text) in place of the value of member ``key`` of
    the object at ``path``. Raises NotFound when the object has no such member."""
    brace = object_at(text, path)
    start = _find(text, brace, key)
    if start < 0:
        raise NotFound(key)
    return Edit(start, _value_end(text, start), value)


def add_member(text: str, path: Iterable[str], key: str, value: str) -> Edit:
    """The edit that adds member ``key`` holding ``value`` (JSON text) after the last member of
    the object at ``path`` (where a parsed dict puts a new key). The object must not have the
    key already (the caller knows from the parsed document); its members are skipped at C
    speed, not walked."""
    brace = object_at(text, path)
    close = _skip_container(text, brace)[1] - 1
    at = close
    while text[at - 1] in _WHITESPACE:
        at -= 1
    member = encode_basestring(key) + ":" + value
    return Edit(at, at, member if at == brace + 1 else "," + member)


def apply(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with ``edits`` made (they must not overlap)."""
    pieces, at = [], 0
    for edit in sorted(edits):
        if edit.start < at:
            raise ValueError("overlapping edits")
        pieces.append(text[at:edit.start])
        pieces.append(edit.replacement)
        at = edit.end
    pieces.append(text[at:])
    return "".join(pieces)
