"""What may reach a terminal: every character visible, none of them a command.

File names come from whoever drops files (a name may hold ESC, CR, LF, a bidi override), and a
sidecar's fields from whoever writes the folders. Printed raw, an ESC sequence recolours or
retitles the operator's terminal, moves the cursor or rewrites what is on screen; a CR or LF
forges a line; U+202E turns ``exe.json`` around. So every text ``status``, ``report``,
``retry-failed`` and the other commands print, and every text log line, goes through
:func:`visible`, which writes each character that is not printable as its escape (``\\x1b``,
``\\u202e``) and keeps the rest as it is (``café.json`` stays ``café.json``).

JSON output stays valid JSON: :func:`dumps` writes what ``json`` would and then escapes the
characters json leaves raw (DEL, C1 controls, format characters such as U+202E, lone
surrogates) as ``\\uXXXX``; it reads back to the same strings.
"""

from __future__ import annotations

import json
import re

# anything outside printable ASCII is looked at; str.isprintable() decides (control, format,
# surrogate, private-use, unassigned and separator characters other than the space are not)
_SUSPECT = re.compile(r"[^\x20-\x7e]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char.isprintable():
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: object) -> str:
    """``text`` with every non-printable character escaped: ``new\\nline.json`` for a name
    with a newline, ``\\x1b[31m`` for an ESC sequence, ``\\u202e`` for a bidi override."""
    return _SUSPECT.sub(_escape, text if isinstance(text, str) else str(text))


def _json_escape(match: re.Match) -> str:
    char = match.group()
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000               # outside the BMP: a surrogate pair, as JSON writes it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def dumps(doc: object) -> str:
    """``doc`` as one line of JSON (UTF-8 text kept readable) in which no character is a
    terminal command. Outside strings json writes only printable ASCII, so every raw
    character escaped here sits inside a string, where ``\\uXXXX`` means that character."""
    return _SUSPECT.sub(_json_escape, json.dumps(doc, ensure_ascii=False, default=str))
