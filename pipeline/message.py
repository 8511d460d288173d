"""A Redox message: bytes as dropped → a :class:`Message`, or :class:`RejectedFile` with a reason.

A Redox message is a JSON object whose ``Meta.DataModel`` and ``Meta.EventType`` are strings
(a SEND needs both). Everything else is rejected here, precisely, and never sent: empty,
truncated, not UTF-8, not an object, NaN/Infinity, duplicate keys, absurd nesting or numbers.
Reasons name what is wrong, never what the message says (it holds patient data).

The body sent is the file's own text with only ``Meta.Destinations`` changed (jsonsplice): a
message is parsed to be checked, never serialized again, so every number, string escape, key
and byte of unicode reaches Redox exactly as it was dropped (a UTF-8 BOM is dropped).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Iterable, Union

from pipeline import jsonsplice
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
# a \uD800-\uDFFF escape: the rare text that needs the exact (slower) surrogate check
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def check(raw: bytes, destinations: Destinations) -> Message:
    """Check ``raw`` and build the body to SEND: the file's text with ``Meta.Destinations``
    set to ``destinations`` (replaced where it is, else added as Meta's last member), or to
    what a chooser picked for this file (see :data:`Destinations`).

    Raises RejectedFile(kind="invalid") with a precise reason for anything that is not a
    Redox message, or what the chooser raised. No I/O of its own (a chooser may record what
    it chose).
    """
    sha = hashlib.sha256(raw).hexdigest()
    text = decode(raw)
    doc = parse_text(text)
    data_model, event_type = describe(doc)
    picked = list(chosen(doc, destinations))
    return Message(sha256=sha, size=len(raw), data_model=data_model, event_type=event_type,
                   body=addressed(text, doc, picked).encode("utf-8"), destinations=max(1, len(picked)))


def chosen(doc: dict, destinations: Destinations) -> Iterable[dict]:
    """The destinations of a checked ``doc``: the list, or what the chooser picks for it."""
    return destinations(doc) if callable(destinations) else destinations


def addressed(text: str, doc: dict, destinations: Iterable[dict]) -> str:
    """``text`` (a checked message, ``doc`` as parsed) with its ``Meta.Destinations`` set:
    replaced where it is, else added as Meta's last member. Nothing else changes."""
    return jsonsplice.apply(text, [destinations_edit(text, doc, destinations)])


def destinations_edit(text: str, doc: dict, destinations: Iterable[dict]) -> jsonsplice.Edit:
    """The edit of ``text`` (``doc`` as parsed) that sets its ``Meta.Destinations``."""
    value = _destinations_text(destinations)
    if "Destinations" in doc["Meta"]:
        return jsonsplice.replace_member(text, ("Meta",), "Destinations", value)
    return jsonsplice.add_member(text, ("Meta",), "Destinations", value)


_last_destinations: tuple[list, str] = ([], "[]")


def _destinations_text(destinations: Iterable[dict]) -> str:
    """Compact JSON of ``destinations``. Every file of a run gets the same list, so the text of
    the last one asked for is kept (compared by value, never by identity)."""
    global _last_destinations
    wanted = [dict(d) for d in destinations]
    kept, text = _last_destinations
    if wanted != kept:
        text = serialize_text(wanted)
        _last_destinations = (wanted, text)
    return text


def describe(doc: dict) -> tuple[str, str]:
    """Check that ``doc`` (parsed) is a Redox message: (DataModel, EventType), or
    RejectedFile(kind="invalid")."""
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
    return meta["DataModel"], meta["EventType"]


def address(doc: dict, destinations: Destinations) -> tuple[str, str]:
    """:func:`describe`, then set ``doc``'s ``Meta.Destinations`` in place (for callers that
    build a message as a document; a chooser is called once ``doc`` passed). Returns
    (DataModel, EventType)."""
    names = describe(doc)
    doc["Meta"]["Destinations"] = [dict(d) for d in chosen(doc, destinations)]
    return names


def decode(raw: bytes) -> str:
    """``raw`` as text: a UTF-8 BOM is dropped; empty or non-UTF-8 bytes are rejected."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.strip():
        raise RejectedFile("empty file", "invalid")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedFile(f"not UTF-8 text (invalid byte at offset {exc.start})", "invalid") from None


def parse(raw: bytes) -> dict:
    """Strictly parse a JSON object from ``raw`` (a UTF-8 BOM is tolerated and dropped)."""
    return parse_text(decode(raw))


def parse_text(text: str) -> dict:
    """Strictly parse a JSON object from ``text``: no duplicate keys, NaN or Infinity, number
    literals of at most MAX_NUMBER_CHARS that a double can hold, nesting of at most MAX_DEPTH,
    no unpaired UTF-16 surrogate escape."""
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
    if text.count("{") + text.count("[") > MAX_DEPTH:   # fewer cannot nest deeper: no walk
        _check_depth(doc)
    if not isinstance(doc, dict):
        raise RejectedFile(f"not a Redox message: the top level is a JSON {_kind(doc)}, not an object",
                           "invalid")
    if _SURROGATE_ESCAPE.search(text):
        serialize(doc)                       # raises for an unpaired one; a pair is fine
    return doc


def serialize(doc: Any) -> bytes:
    """Compact UTF-8 JSON. Lone surrogates (valid JSON escapes, invalid text) are rejected."""
    return serialize_text(doc).encode("utf-8")


def serialize_text(doc: Any) -> str:
    """Compact JSON text (no BOM, non-ASCII as it is); RejectedFile for a lone surrogate."""
    text = _COMPACT(doc)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedFile("JSON contains an unpaired UTF-16 surrogate escape", "invalid") from None
    return text


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
