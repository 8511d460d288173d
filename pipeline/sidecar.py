"""The sidecar: the ``<name>.redox.json`` object beside every finished file (README: The sidecar).

One module builds, encodes and reads sidecars, with one size cap: a sidecar holds names,
hashes, statuses, Log IDs and reasons, never message content, so anything larger than
:data:`MAX_BYTES` is not one of ours and reads as None.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import TYPE_CHECKING, BinaryIO, Optional

from pipeline import __version__, reasons
from pipeline.jsondoc import parse_object
from pipeline.timefmt import iso
from pipeline.values import Claim, Outcome

if TYPE_CHECKING:
    from pipeline.journal.core import Record

SUFFIX = ".redox.json"
MAX_BYTES = 4 << 20
_HOST = socket.gethostname()


def build(claim: Claim, record: Record, outcome: Outcome, attempts: list[dict],
          extra: Optional[dict] = None) -> dict:
    """Every documented sidecar field, plus the history an auditor needs (attempts, times,
    which process finished it). ``extra`` (data model, event type, ...) is merged in last.

    ``errors`` keeps Redox's texts as Redox sent them; ``reason`` (failed files) says the same
    in our own words, and is what ``status`` and ``report`` show."""
    sends = [a for a in attempts if a["kind"] == "send"]
    doc = {
        "status": outcome.status,
        "logs": [dict(entry) for entry in (outcome.logs or record.logs)],
        "errors": list(outcome.errors),
        "attempts": record.attempts,
        "http_status": record.http_status if sends else None,
        "sha256": record.sha256,
        "source": claim.source,
        "uploads": [u.as_json() for u in outcome.uploads] or list(record.uploads),
        "possible_duplicate": bool(record.possible_duplicate),
        "name": claim.name,
        "size": claim.size,
        "reason_kind": outcome.reason_kind,
        "reason": reasons.of_outcome(outcome),
        "claim_id": record.claim_id,
        "dropped_at": iso(claim.mtime),
        "claimed_at": iso(claim.claimed_at),
        "finished_at": iso(time.time()),
        "attempt_history": [_attempt(a) for a in attempts],
        "pipeline": {"version": __version__, "host": _HOST, "pid": os.getpid()},
    }
    if outcome.duplicate_of:
        doc["duplicate_of"] = outcome.duplicate_of
    if extra:
        doc.update(extra)
    return doc


# made once: json.dumps() with options builds a new encoder for every value
_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def encode(doc: dict) -> bytes:
    """One top-level key per line (easy to read and to grep), each value compact JSON.

    ``indent=`` would switch json to its pure-Python encoder, several times slower per file.
    Never raises on odd text: a lone surrogate (a name that is not UTF-8, a ``\\ud800`` escape in
    Redox's error text) is written as its JSON escape.
    """
    lines = ",\n".join(f"  {_ENCODE(key)}: {_ENCODE(value)}" for key, value in doc.items())
    return ("{\n" + lines + "\n}\n").encode("utf-8", "backslashreplace")


def parse(raw: bytes) -> Optional[dict]:
    """A sidecar's bytes as a dict; None when over the cap, not JSON or not an object."""
    if len(raw) > MAX_BYTES:
        return None
    return parse_object(raw)


def read(handle: BinaryIO) -> Optional[dict]:
    """Read a sidecar from an open file, never more than the cap (plus one byte to tell)."""
    return parse(handle.read(MAX_BYTES + 1))


def _attempt(a: dict) -> dict:
    return {"kind": a["kind"], "n": a["n"], "at": iso(a["started_at"]), "status": a["status"],
            "result": a["result"], "maybe_seen": bool(a["maybe_seen"]), "error": a["error"]}
