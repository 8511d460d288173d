"""The journal, with each claim's SEND progress mirrored into its S3 lease.

Each machine keeps its own journal (state.path), so when a worker dies mid-object and a worker
on *another* machine takes over its expired lease, that journal knows nothing of the SENDs
already made. The lease travels with the claim, so it carries what matters (lease.py):

- before every SEND, ``sends_started = n`` is written into the lease — a compare-and-swap on
  the lease, so a worker whose lease was taken over finds out *before* sending, not after;
- after an answer that was not an acceptance, ``sends_ended``, the status and whether Redox may
  have seen any attempt (``maybe_seen``);
- once Redox accepted a SEND, its Log IDs (``accepted``).

When a claim is adopted from a dead owner, ``begin()`` replays that into the local journal: an
accepted SEND is finished without sending again; a SEND that was started but never answered is
recorded as interrupted, so the file is marked ``possible_duplicate`` (as after a local crash).
Nothing else changes: every other call goes straight to the journal.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Callable, Optional

from pipeline.errors import ClaimLost, PipelineError

if TYPE_CHECKING:
    from pipeline.sources.s3.api import Bucket
    from pipeline.sources.s3.lease import Leases

log = logging.getLogger("pipeline.s3")


PROGRESS_META = "redox-progress"     # x-amz-meta-redox-progress: SEND progress of a released object
DROPPED_META = "redox-dropped-at"    # x-amz-meta-redox-dropped-at: its drop time (epoch seconds)


def carry_progress(progress: Optional[dict], dropped: Optional[float] = None) -> Optional[dict]:
    """User metadata carrying a released object's SEND progress to whoever claims it next
    (S3 allows 2 KB of user metadata), and its drop time (a copy gets a new LastModified; the
    drop time decides its place in ordering's sequences). Accepted Log IDs that do not fit are
    dropped; the counts never are, and an accepted SEND then makes the next one a possible
    duplicate."""
    meta = {DROPPED_META: repr(float(dropped))} if dropped else {}
    if not progress:
        return meta or None
    text = json.dumps(progress, separators=(",", ":"))
    if len(text) > 1800:
        small = {k: progress[k] for k in ("sends_started", "sends_ended", "http_status", "maybe_seen")
                 if k in progress}
        if progress.get("accepted"):
            small["maybe_seen"] = True
        text = json.dumps(small, separators=(",", ":"))
    return {PROGRESS_META: text, **meta}


def dropped_at(head: dict) -> Optional[float]:
    """The drop time an object put back into the inbox carries (from its HEAD), or None."""
    text = (head.get("Metadata") or {}).get(DROPPED_META)
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value and value > 0 else None


def carried_progress(head: dict) -> Optional[dict]:
    """The SEND progress a released object carries (from its HEAD), or None."""
    text = (head.get("Metadata") or {}).get(PROGRESS_META)
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc else None


class Progress:
    """Mixed into S3Store: SEND progress kept in our leases (uses ``leases``, ``_abandon``)."""

    bucket: Bucket
    leases: Leases
    processing: str
    _inherited: dict[str, dict]
    _abandon: Callable[[str], None]             # Finishing's

    def inherited(self, name: str) -> Optional[dict]:
        """The SEND progress a dead owner left in the lease we took over, kept until
        :meth:`taken_in` says the journal holds it (a failed replay must not lose it)."""
        return self._inherited.get(name)

    def taken_in(self, name: str) -> None:
        """The journal now holds the inherited progress of ``name``: forget it here."""
        self._inherited.pop(name, None)

    def note_progress(self, name: str, **progress) -> None:
        """Record SEND progress in our lease (renewing it). ClaimLost if the lease is lost:
        the caller must not send."""
        lease = self.leases.get(name)
        if lease is None:
            raise ClaimLost("we no longer hold its lease", self.bucket.uri(self.processing + name))
        merged = dict(lease.body.get("progress") or {}, **progress)
        try:
            self.leases.renew(lease, progress=merged)
        except ClaimLost:
            self._abandon(name)
            raise

    def wrap_journal(self, journal) -> "LeaseJournal":
        """The journal the runner and FileWork use with this store (see the module docstring)."""
        return LeaseJournal(journal, self)


class LeaseJournal:
    """Wraps a :class:`~pipeline.journal.Journal` for an S3 store (``store.note_progress``,
    ``store.inherited``)."""

    def __init__(self, journal, store):
        self.journal, self.store = journal, store
        self._names: dict[str, str] = {}         # claim_id → name
        self._lock = threading.Lock()

    def __getattr__(self, attr):
        return getattr(self.journal, attr)

    def begin(self, name, sha256, size, source, location, owner, dropped_at):
        record = self.journal.begin(name, sha256, size, source, location, owner, dropped_at)
        with self._lock:
            self._names[record.claim_id] = name
        progress = self.store.inherited(name)
        if progress and record.state not in ("accepted", "finishing"):
            self._replay(record, progress)         # a failed write leaves it for the next try
            record = self.journal.get(record.claim_id)
        if progress:
            self.store.taken_in(name)
        return record

    def _replay(self, record, progress: dict) -> None:
        accepted = progress.get("accepted")
        started = int(progress.get("sends_started") or 0)
        cid = record.claim_id
        if accepted:
            n = int(accepted.get("n") or max(started, 1))
            self.journal.attempt_started(cid, "send", n)
            self.journal.attempt_ended(cid, "send", n, result="accepted", status=accepted.get("status"),
                                       maybe_seen=False, logs=list(accepted.get("logs") or []))
            log.info("the previous owner's SEND was accepted; finishing without sending again",
                     extra={"file": record.name})
        elif started > record.attempts:
            self.journal.attempt_started(cid, "send", started)
            if int(progress.get("sends_ended") or 0) >= started:     # answered, not accepted
                self.journal.attempt_ended(cid, "send", started, result="transient",
                                           status=progress.get("http_status"),
                                           maybe_seen=bool(progress.get("maybe_seen")),
                                           error="attempted by an earlier owner")
            else:
                self.journal.close_interrupted(cid)
                log.warning("the previous owner died during a SEND; marked as a possible duplicate",
                            extra={"file": record.name, "attempt": started})

    def _name(self, claim_id: str) -> str:
        with self._lock:
            name = self._names.get(claim_id)
        return name if name is not None else self.journal.get(claim_id).name

    def attempt_started(self, claim_id, kind, n, described=None):
        """Fence: the lease must still be ours (ClaimLost otherwise) before a SEND goes out."""
        if kind == "send":
            self.store.note_progress(self._name(claim_id), sends_started=n)
        return self.journal.attempt_started(claim_id, kind, n, described)

    def attempt_ended(self, claim_id, kind, n, *, result, status, maybe_seen, error=None, logs=None,
                      sidecar_for=None):
        view = self.journal.attempt_ended(claim_id, kind, n, result=result, status=status,
                                          maybe_seen=maybe_seen, error=error, logs=logs,
                                          sidecar_for=sidecar_for)
        if kind != "send":
            return view
        if logs is not None:
            self._mirror(claim_id, accepted={"n": n, "status": status, "logs": list(logs)})
        else:
            seen = bool(maybe_seen) or bool(self.journal.get(claim_id).possible_duplicate)
            self._mirror(claim_id, sends_ended=n, http_status=status, maybe_seen=seen)
        return view

    def void_attempt(self, claim_id, kind, n):
        self.journal.void_attempt(claim_id, kind, n)
        if kind == "send":
            self._mirror(claim_id, sends_started=n - 1)

    def _mirror(self, claim_id: str, **progress) -> None:
        """Best effort: the local journal already holds it; a failure here only matters if
        this worker also dies before finishing."""
        try:
            self.store.note_progress(self._name(claim_id), **progress)
        except (ClaimLost, PipelineError) as exc:
            log.warning("could not record progress in the lease", extra={"error": str(exc)})

    def finished(self, claim_id, *args, **kwargs):
        self.journal.finished(claim_id, *args, **kwargs)
        with self._lock:
            self._names.pop(claim_id, None)
