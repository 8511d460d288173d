"""finish: write the sidecar, then move the file beside it (the move is the commit point).

The outcome is first recorded in the journal (``finishing``), so a crash at any point after it
is completed by start-up recovery; the sidecar carries the ``claim_id`` so recovery can tell its
own half-finished sidecar from someone else's file. Sidecars hold names, hashes, statuses, Log
IDs and reasons, never message content.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from typing import Optional

from pipeline import __version__, failpoints
from pipeline.journal import Journal, Record, SidecarView
from pipeline.values import Claim, Outcome


def finish(store, journal: Journal, claim: Claim, record: Record, outcome: Outcome,
           extra: Optional[dict] = None, view: Optional[SidecarView] = None) -> tuple[str, Record]:
    """Record ``outcome``, write the sidecar and move the file. Returns where it landed and
    the journal's record as the sidecar shows it.

    The sidecar's ``history`` lists the sidecars of earlier failures of the same file (same
    inbox name and bytes) that ``retry-failed`` put back, oldest first. ``view``: what the
    journal held when the SEND was accepted (read in the same transaction), if at hand.

    Raises StorageError (the file then stays claimed) or ClaimLost.
    """
    if outcome.status != "done" or outcome.duplicate_of:
        # a done outcome otherwise comes from an accepted SEND, which the journal already
        # holds (state accepted): enough for recovery to finish it as done
        journal.finishing(record.claim_id, outcome.status, list(outcome.errors), outcome.reason_kind,
                          outcome.duplicate_of)
        view = None
    if view is None:
        view = journal.for_sidecar(record.claim_id, claim.name)
    sidecar = build_sidecar(claim, view.record, outcome, view.attempts, extra)
    # A file put back by retry-failed carries its earlier sidecars along (journal: replays).
    if view.history:
        sidecar["history"] = view.history
    dest = store.finish(claim, outcome.status, encode(sidecar), record.claim_id)
    failpoints.reached("after_move")
    journal.finished(record.claim_id, dest, outcome.status, view.replay_ids)
    return dest, view.record


_HOST = socket.gethostname()


def build_sidecar(claim: Claim, record: Record, outcome: Outcome, attempts: list[dict],
                  extra: Optional[dict] = None) -> dict:
    """Every field of the documented sidecar (README: The sidecar), plus the history an auditor needs."""
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


def iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def _attempt(a: dict) -> dict:
    return {"kind": a["kind"], "n": a["n"], "at": iso(a["started_at"]), "status": a["status"],
            "result": a["result"], "maybe_seen": bool(a["maybe_seen"]), "error": a["error"]}
