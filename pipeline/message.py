"""A Redox message: bytes as dropped → a :class:`Message`, or :class:`RejectedFile` with a reason.

A Redox message is a JSON object whose ``Meta.DataModel`` and ``Meta.EventType`` are strings
(a SEND needs both). Everything else is rejected here, precisely, and never sent: empty,
truncated, not UTF-8, not an object, NaN/Infinity, duplicate keys, absurd nesting or numbers.
Reasons name what is wrong, never what the message says (it holds patient data).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Iterable, Union

from pipeline.errors import RejectedFile
from pipeline.values import Message

# Meta.Destinations: the list itself, or (per-file routing) a function given the checked
# message that returns them, or raises RejectedFile when the file has nowhere to go
Destinations = Union[Iterable[dict], Callable[[dict], Iterable[dict]]]

MAX_DEPTH = 64          # deeper JSON is not a real Redox message, and would exhaust the stack
MAX_NUMBER_CHARS = 64   # an integer or float literal longer than this is not a real value
_BOM = b"\xef\xbb\xbf"
# Redox data model and event type names ("PatientAdmin", "Clinical Summary", "NewPatient"):
# they are recorded in the journal and the sidecar, so nothing else may pass for one.
_SCHEMA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9 _&/.-]{0,63}")


def check(raw: bytes, destinations: Destinations) -> Message:
    """Check ``raw`` and build the body to SEND with ``Meta.Destinations`` set from config
    (or chosen for this file: see :data:`Destinations`).

    Raises RejectedFile(kind="invalid") with a precise reason for anything that is not a
    Redox message. No I/O of its own (a chooser may record what it chose).
    """
    sha = hashlib.sha256(raw).hexdigest()
    doc = parse(raw)
    data_model, event_type = address(doc, destinations)
    return Message(sha256=sha, size=len(raw), data_model=data_model, event_type=event_type,
                   body=serialize(doc))


def address(doc: dict, destinations: Destinations) -> tuple[str, str]:
    """Check that ``doc`` (parsed) is a Redox message and set its ``Meta.Destinations`` from
    config, in place (a function is called with ``doc`` once it passed). Returns (DataModel,
    EventType); raises RejectedFile(kind="invalid"), or what the function raised."""
    meta = doc.get("Meta")
    if not isinstance(meta, dict):
        raise RejectedFile("not a Redox message: no Meta object", "invalid")
    for key in ("DataModel", "EventType"):
        value = meta.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RejectedFile(f"not a Redox message: Meta.{key} is missing or not a string", "invalid")
        if not _SCHEMA_NAME.fullmatch(value):
            what = "data model" if key == "DataModel" else "event type"
            raise RejectedFile(f"not a Redox message: Meta.{key} is not a {what} name (a "
                               "letter, then at most 63 letters, digits, spaces or _&/.-)",
                               "invalid")
    chosen = destinations(doc) if callable(destinations) else destinations
    meta["Destinations"] = [dict(d) for d in chosen]
    return meta["DataModel"], meta["EventType"]


def parse(raw: bytes) -> dict:
    """Strictly parse a JSON object from ``raw`` (a UTF-8 BOM is tolerated and dropped)."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.strip():
        raise RejectedFile("empty file", "invalid")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedFile(f"not UTF-8 text (invalid byte at offset {exc.start})", "invalid") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                         parse_int=_int, parse_float=_float)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "truncated JSON" if cut else "not valid JSON"
        raise RejectedFile(f"{what} (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                           "invalid") from None
    except RecursionError:
        raise RejectedFile(f"JSON nested deeper than {MAX_DEPTH} levels", "invalid") from None
    _check_depth(doc)
    if not isinstance(doc, dict):
        raise RejectedFile(f"not a Redox message: the top level is a JSON {_kind(doc)}, not an object",
                           "invalid")
    return doc


def serialize(doc: Any) -> bytes:
    """Compact UTF-8 JSON. Lone surrogates (valid JSON escapes, invalid text) are rejected."""
    try:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedFile("JSON contains an unpaired UTF-16 surrogate escape", "invalid") from None


def _check_depth(doc: Any) -> None:
    """Reject absurd nesting (iteratively: a deep document must not exhaust our own stack)."""
    stack = [(doc, 1)] if isinstance(doc, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RejectedFile(f"JSON nested deeper than {MAX_DEPTH} levels", "invalid")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    doc: dict = {}
    for key, value in pairs:
        if key in doc:
            # Which value would Redox use? Unknowable, so the file is not sent. The key itself
            # is not quoted: in a file that is not a Redox message it may be patient data.
            raise RejectedFile(f"duplicate key in a JSON object (a key of {len(key)} "
                               "characters appears twice)", "invalid")
        doc[key] = value
    return doc


def _no_constant(name: str):
    raise RejectedFile(f"JSON contains {name}, which is not valid JSON", "invalid")


def _int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise RejectedFile(f"JSON contains a number {len(literal)} digits long", "invalid")
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise RejectedFile(f"JSON contains a number {len(literal)} characters long", "invalid")
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise RejectedFile("JSON contains a number too large for a double", "invalid")
    return value


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
