"""The small frozen values that flow from one stage to the next.

    Drop ──claim──> Claim ──check──> Message ──route──> Decision ──deliver──> Outcome
    (later, reconcile: each Outcome's Log IDs ──look up──> LogStatus)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Drop:
    """A candidate file seen in the inbox. ``name`` is its path below the inbox (or S3 prefix),
    with ``/`` separators; ``mtime`` is in seconds since the epoch."""
    name: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Claim:
    """A file this process owns: moved out of the inbox to ``location`` (a path or key)."""
    name: str            # the file's name below the inbox, kept all the way to done/ or failed/
    location: str        # where it lies now, in processing
    source: str          # where it came from: a path or s3://bucket/key (for the sidecar)
    size: int
    mtime: float         # mtime as dropped (restored when the file is released)
    claimed_at: float


@dataclass(frozen=True)
class Message:
    """A checked Redox message, ready to be routed.

    ``body`` is what goes on the wire (Meta.Destinations already set); ``sha256`` is of the
    file's bytes as dropped, not of the body.
    """
    sha256: str
    size: int
    data_model: str
    event_type: str
    body: bytes
    destinations: int = 0    # how many Meta.Destinations the body names (0: count them in it)


@dataclass(frozen=True)
class Upload:
    """One embedded document sent to Redox's upload endpoint."""
    URI: str
    field: str           # e.g. "Media.FileContents" or "Orders[0].Results[1].Value"
    size: int            # decoded size in bytes
    sha256: str          # of the decoded bytes

    def as_json(self) -> dict:
        return {"URI": self.URI, "field": self.field, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Sent:
    """Redox accepted a SEND (HTTP 200): ``logs`` are the Meta.Logs entries it returned."""
    status: int
    logs: tuple[dict, ...]
    elapsed: float


@dataclass(frozen=True)
class Outcome:
    """How a file ended: everything the sidecar records.

    ``errors`` may hold Redox's own texts, which can quote the message: they stay with the file
    (sidecar, journal). ``reason`` is the failure in our own words (pipeline/reasons.py), the
    only account of it that log lines, metrics, ``status`` and ``report`` carry; None for a
    failure lets reasons.of_outcome build one from ``reason_kind`` and ``http_status``."""
    status: str                          # "done" | "failed"
    errors: tuple[str, ...] = ()
    logs: tuple[dict, ...] = ()
    http_status: Optional[int] = None
    reason_kind: Optional[str] = None    # failed only: invalid | too_large | permanent | gave_up | ...
    duplicate_of: Optional[str] = None
    uploads: tuple[Upload, ...] = field(default_factory=tuple)
    reason: Optional[str] = None         # failed only: a summary that quotes nothing of a reply


DELIVERY_STATUSES = ("succeeded", "failed", "filtered", "pending")
FINAL_STATUSES = frozenset({"succeeded", "failed", "filtered"})


@dataclass(frozen=True)
class LogStatus:
    """Redox's word on one Log ID: the latest attempt's
    ``status`` (one of DELIVERY_STATUSES), ``attempts.total`` and ``attempts.latest.attemptAt``
    as Redox wrote it; ``note`` when the answer needed interpreting."""
    log_id: str
    status: str
    total: Optional[int] = None
    attempt_at: Optional[str] = None
    note: Optional[str] = None

    @property
    def final(self) -> bool:
        """succeeded, failed and filtered do not change any more; pending does."""
        return self.status in FINAL_STATUSES
