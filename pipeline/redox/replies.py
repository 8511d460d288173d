"""Reading Redox's replies defensively: every field optional, every value of any shape.

Nothing here raises on a hostile reply, and nothing here logs: what a reply says may echo
message content (a patient's name in an error text), so it only ever travels inside the
exceptions' ``errors`` (kept by the journal and the sidecar), never into a log line.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from typing import Mapping, Optional

from pipeline.jsondoc import parse_object

# Log IDs and attempt IDs are UUIDs; anything else in their place is not an ID (and may be
# anything at all, so it is not kept)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9.+-]{1,40}/[A-Za-z0-9.+-]{1,60}")
_DELTA_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
ERROR_TEXT_CHARS = 300


def json_object(body: bytes) -> dict:
    """The reply body as a JSON object, or {} when it is not one (or nests too deep to parse)."""
    try:
        return parse_object(body) or {}
    except RecursionError:
        return {}


def meta(doc: dict) -> dict:
    found = doc.get("Meta")
    return found if isinstance(found, dict) else {}


def log_entries(doc: dict) -> list[dict]:
    """Meta.Logs[] entries that carry a usable ``ID`` (extra fields dropped)."""
    logs = meta(doc).get("Logs")
    if not isinstance(logs, list):
        return []
    found = []
    for entry in logs:
        if isinstance(entry, dict) and usable_id(entry.get("ID")):
            attempt = entry.get("AttemptID")
            found.append({"ID": entry["ID"], "AttemptID": attempt if usable_id(attempt) else None})
    return found


def usable_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def error_texts(doc: dict) -> list[str]:
    """Meta.Errors[].Text, as Redox sent them (each at most 300 characters), except a lone
    surrogate (a "\\ud800" escape), which no UTF-8 journal or sidecar can hold."""
    errors = meta(doc).get("Errors")
    if not isinstance(errors, list):
        return []
    return [storable(e.get("Text")) for e in errors if isinstance(e, dict) and e.get("Text")]


def storable(value: object) -> str:
    """An error text from a reply as the journal and the sidecar can hold it: at most 300
    characters, a lone surrogate (a "\\ud800" escape, which UTF-8 cannot encode) replaced."""
    return str(value)[:ERROR_TEXT_CHARS].encode("utf-8", "replace").decode("utf-8")


def parse_errors(body: bytes) -> list[str]:
    """Meta.Errors[].Text from an error reply; a short plain-text body when it is not JSON
    (not an HTML page: its markup says nothing useful)."""
    doc = json_object(body)
    texts = error_texts(doc)
    if texts or doc:
        return texts
    text = body[:ERROR_TEXT_CHARS].decode("utf-8", "replace").strip()
    return [text] if text and not text.startswith("<") else []


def retry_after(headers: Optional[Mapping[str, str]], cap: float) -> Optional[float]:
    """Retry-After (delta-seconds or an HTTP date) as seconds in [0, ``cap``], or None when
    there is none or it is unreadable. Never raises, never returns inf or nan."""
    value = headers.get("Retry-After") if headers else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()[:64]
    seconds = float(text) if _DELTA_SECONDS.fullmatch(text) else _until_date(text)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, cap), max(0.0, seconds))


def _until_date(text: str) -> Optional[float]:
    try:
        return email.utils.parsedate_to_datetime(text).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def media_type(headers: Optional[Mapping[str, str]]) -> str:
    """The reply's Content-Type without parameters, when it looks like one."""
    value = (headers.get("Content-Type") if headers else None) or ""
    found = _MEDIA_TYPE.match(value.strip())
    return found.group(0).lower() if found else "no content type"
