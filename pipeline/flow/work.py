"""The path of one claimed file through one step, run in a worker thread.

``FileWork.run(job)`` reads and checks the file (first time only), then makes one attempt, and
returns what the runner should do next: it never sleeps, so a file waiting for a retry holds
no worker. Every stage it calls is one module: message (read + check),
route, transfer (files over the send limit: upload their documents, then build the small
message; retried step by step like SEND until ``job.message`` is set), redox (deliver), finish.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional

from pipeline import failpoints
from pipeline import message as message_stage
from pipeline.errors import (
    AuthError,
    ClaimLost,
    NotRegular,
    PermanentDelivery,
    RejectedFile,
    StorageError,
    TransientDelivery,
    Unreadable,
)
from pipeline.flow.addressing import Addressing, Routed
from pipeline.flow.finish import finish
from pipeline.flow.retry import CircuitBreaker, RetryPolicy
from pipeline.flow.route import route
from pipeline.journal import Journal, Record
from pipeline.redox.transfer.upload import Transfer
from pipeline.sources.base import Source
from pipeline.values import Claim, Message, Outcome

log = logging.getLogger("pipeline.work")


@dataclass
class Job:
    """A claimed file and what is known about it so far."""
    claim: Claim
    record: Optional[Record] = None
    message: Optional[Message] = None
    last_error: Optional[str] = None
    route: Optional[Routed] = None         # its route and ordering key, once checked


@dataclass(frozen=True)
class Step:
    """What happened: ``finished`` (status done|failed), ``retry`` (after ``delay`` s), ``auth``
    (credentials refused: stop), ``lost`` (the file vanished), ``released`` (not a regular
    file after all: put back in the inbox, where it is left alone), ``stuck`` (could not read it
    consistently or could not finish: try again later, the file stays claimed), ``wait``
    (ordering: an earlier file of its key goes first; ask again after ``delay`` s)."""
    kind: str
    status: Optional[str] = None
    delay: float = 0.0
    error: Optional[str] = None
    dest: Optional[str] = None
    unreachable: bool = False


@dataclass
class FileWork:
    """The per-file stages, wired to the shared store, journal and Redox client."""
    store: Source
    journal: Journal
    client: object
    policy: RetryPolicy
    breaker: CircuitBreaker
    destinations: tuple
    send_limit: int
    dedupe: bool
    transfer: Optional[Transfer] = None       # the upload path for files over send_limit
    addressing: Optional[Addressing] = None   # routes and ordering (None: every file to destinations)
    rand: Callable[[], float] = random.random
    wall: Callable[[], float] = time.time
    observe: Callable[..., None] = lambda *a, **k: None   # metrics hook

    def __post_init__(self):
        self.routing: Addressing = self.addressing or Addressing.fixed(self.destinations)

    def run(self, job: Job) -> Step:
        try:
            if job.record is None:
                early = self._prepare(job)
                if early:
                    return early
            else:
                # the journal is the truth: a finish that failed (done/ full) left it ahead of
                # job.record, and an accepted SEND must never be made again
                job.record = self.journal.get(job.record.claim_id)
            if job.record.state in ("accepted", "finishing"):
                return self._finish_recorded(job)
            if job.message is None:
                early = self._transfer(job)
                if early:
                    return early
            wait = self.routing.gate(job)     # ordering: an earlier file of its key first
            if wait:
                return Step("wait", delay=wait.delay, error=wait.reason)
            return self._attempt(job)
        except AuthError as exc:
            return Step("auth", error=str(exc))
        except ClaimLost:
            self.routing.lost(job)
            return Step("lost")
        except StorageError as exc:
            log.error("storage problem; the file stays claimed and is tried again later",
                      extra={"file": job.claim.name, "error": str(exc)})
            return Step("stuck", error=str(exc))

    # -- read + check + route ------------------------------------------------------------------
    def _prepare(self, job: Job) -> Optional[Step]:
        claim = job.claim
        decision = route(claim.size, self.send_limit, self.transfer is not None)
        try:
            raw = self._read(claim) if decision.action == "send" else None
            sha = hashlib.sha256(raw).hexdigest() if raw is not None else self._hash(claim)
        except NotRegular as exc:
            # swapped in after the scan: never opened, sent or moved to failed (a FIFO or
            # symlink there could be followed by whoever reads failed/); it goes back
            where = self.store.release(claim)
            self.routing.lost(job)
            return Step("released", error=f"not a regular file ({exc.args[0].split(':')[0]})",
                        dest=where)
        except Unreadable as exc:
            return self._reject_unread(job, exc.reason, "unreadable")
        if raw is not None and len(raw) != claim.size:
            # still being written after it looked settled: read it again once it is quiet
            job.claim = dataclasses.replace(claim, size=len(raw))
            return Step("stuck", error=f"the file changed after it was claimed ({claim.size} "
                                       f"bytes, now {len(raw)}); reading it again later")
        job.record = self.journal.begin(claim.name, sha, claim.size, claim.source, claim.location,
                                        self.store.owner, claim.mtime)
        if job.record.state in ("accepted", "finishing"):
            return None                          # recovery: Redox already accepted it
        if self.dedupe:
            earlier = self.journal.delivered(sha, exclude=job.record.claim_id)
            if earlier:
                return self._done(job, Outcome("done", duplicate_of=earlier))
        if decision.action == "transfer":
            return None                          # checked and uploaded by _transfer, step by step
        try:
            if decision.action == "reject":
                raise RejectedFile(decision.reason, decision.kind)
            job.message = message_stage.check(raw, self.routing.picker(job))
        except RejectedFile as exc:
            return self._done(job, Outcome("failed", errors=(exc.reason,), reason_kind=exc.kind))
        return None

    # -- transfer (files over send_limit: Redox's Transferring Files) --------------------
    def _transfer(self, job: Job) -> Optional[Step]:
        """Upload the documents still missing and build the small message (job.message); a
        Step when the file cannot go on now. Uploads share SEND's retry policy, breaker, rate
        limit and 401 handling; their attempts are counted apart from SEND's."""
        failures = self.transfer.failures(job.record.claim_id)
        if self.policy.exhausted(failures):
            return self._give_up(job, failures, "upload attempts")
        not_now = self._auth_ready(job, failures + 1)
        if not_now:
            return not_now
        try:
            job.message = self.routing.transfer(job, self.transfer).prepare(job.claim, job.record)
        except RejectedFile as exc:
            return self._done(job, Outcome("failed", errors=(exc.reason,), reason_kind=exc.kind))
        except PermanentDelivery as exc:
            self.breaker.record_success()   # Redox is up; the document is at fault
            return self._done(job, Outcome("failed", errors=tuple(exc.errors), reason_kind="permanent"))
        except TransientDelivery as exc:
            self.breaker.record_failure()
            job.last_error = "; ".join(exc.errors)
            if self.policy.exhausted(failures + 1):
                return self._give_up(job, failures + 1, "upload attempts")
            return Step("retry", delay=self.policy.delay(failures + 1, self.rand(), exc.retry_after),
                        error=job.last_error, unreachable=exc.status is None and not exc.maybe_seen)
        finally:
            job.record = self.journal.get(job.record.claim_id)
        return None

    def _read(self, claim: Claim) -> bytes:
        try:
            with self.store.open(claim) as handle:
                return handle.read()
        except OSError as exc:      # EIO and the like: a storage problem, tried again later
            raise StorageError(f"cannot read ({exc.strerror})", claim.location) from None

    def _hash(self, claim: Claim) -> str:
        try:
            with self.store.open(claim) as handle:   # streamed, never whole in memory
                return hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise StorageError(f"cannot read ({exc.strerror})", claim.location) from None

    def _reject_unread(self, job: Job, reason: str, kind: str) -> Step:
        claim = job.claim
        job.record = self.journal.begin(claim.name, "", claim.size, claim.source, claim.location,
                                        self.store.owner, claim.mtime)
        return self._done(job, Outcome("failed", errors=(reason,), reason_kind=kind))

    # -- deliver ---------------------------------------------------------------------------------
    def _attempt(self, job: Job) -> Step:
        record = job.record
        if self.policy.exhausted(record.attempts):
            return self._give_up(job)
        wait = (record.next_retry_at or 0) - self.wall()
        if wait > 0:          # recovered after a restart: its retry is not due yet
            return Step("retry", delay=wait, error=job.last_error)
        not_now = self._auth_ready(job, record.attempts + 1)
        if not_now:
            return not_now
        n = record.attempts + 1
        self.journal.attempt_started(record.claim_id, "send", n,
                                     described=self.routing.described(job))
        failpoints.reached("before_send")
        try:
            sent = self.client.send(job.message.body)
        except AuthError:
            self.journal.void_attempt(record.claim_id, "send", n)
            raise
        except PermanentDelivery as exc:
            self._ended(job, n, "permanent", exc, False)
            self.breaker.record_success()   # Redox is up; the message is at fault
            return self._done(job, Outcome("failed", errors=tuple(exc.errors),
                                           http_status=exc.status, reason_kind="permanent"))
        except TransientDelivery as exc:
            job.last_error = describe(exc)
            self._ended(job, n, "transient", exc, exc.maybe_seen)
            self.breaker.record_failure()
            if self.policy.exhausted(n):
                return self._give_up(job)
            delay = self.policy.delay(n, self.rand(), exc.retry_after)
            return Step("retry", delay=delay, error=job.last_error,
                        unreachable=exc.status is None and not exc.maybe_seen)
        failpoints.reached("after_send")
        view = self.journal.attempt_ended(record.claim_id, "send", n, result="accepted",
                                          status=sent.status, maybe_seen=False, logs=list(sent.logs),
                                          sidecar_for=job.claim.name)
        failpoints.reached("after_accept")
        self.observe("send", status=sent.status, elapsed=sent.elapsed)
        _log_send(job, n, "accepted", sent.status, sent.elapsed,
                  log_ids=[entry.get("ID") for entry in sent.logs])
        self.breaker.record_success()
        return self._done(job, Outcome("done", logs=sent.logs, http_status=sent.status), view)

    def _auth_ready(self, job: Job, next_attempt: int) -> Optional[Step]:
        """Get a token before an attempt: refused credentials raise AuthError (the run stops)
        and an unreachable auth endpoint means "later"; neither is one of the file's attempts."""
        try:
            self.client.tokens.token()
        except TransientDelivery as exc:
            self.breaker.record_failure()
            job.last_error = "; ".join(exc.errors)
            return Step("retry", delay=self.policy.delay(next_attempt, self.rand()),
                        error=job.last_error, unreachable=True)
        return None

    def _ended(self, job: Job, n: int, result: str, exc, maybe_seen: bool) -> None:
        error = describe(exc)
        self.journal.attempt_ended(job.record.claim_id, "send", n, result=result, status=exc.status,
                                   maybe_seen=maybe_seen, error=error)
        self.observe("send", status=exc.status, elapsed=exc.elapsed)
        _log_send(job, n, result, exc.status, exc.elapsed, error=error)
        job.record = self.journal.get(job.record.claim_id)

    def _give_up(self, job: Job, attempts: Optional[int] = None, what: str = "attempts") -> Step:
        attempts = job.record.attempts if attempts is None else attempts
        errors = [f"gave up after {attempts} {what}"]
        last = job.last_error or next((a["error"] for a in reversed(self.journal.attempts_of(
            job.record.claim_id)) if a["error"]), None)
        if last:
            errors.append(f"last error: {last}")
        return self._done(job, Outcome("failed", errors=tuple(errors), reason_kind="gave_up"))

    # -- finish ------------------------------------------------------------------------------------
    def _finish_recorded(self, job: Job) -> Step:
        """Complete an outcome the journal already holds (after a crash or a storage failure)."""
        r = job.record
        if r.state == "accepted":
            return self._done(job, Outcome("done", logs=tuple(r.logs), http_status=r.http_status))
        return self._done(job, Outcome(r.outcome, errors=tuple(r.errors), logs=tuple(r.logs),
                                       http_status=r.http_status, reason_kind=r.reason_kind,
                                       duplicate_of=r.duplicate_of))

    def _done(self, job: Job, outcome: Outcome, view=None) -> Step:
        extra = {}
        if job.message is not None:
            extra = {"data_model": job.message.data_model, "event_type": job.message.event_type}
        extra.update(self.routing.sidecar_fields(job))
        self.routing.before_finish(job, outcome)
        dest, job.record = finish(self.store, self.journal, job.claim, job.record, outcome, extra, view)
        self.routing.after_finish(job, outcome, dest)
        return Step("finished", status=outcome.status, dest=dest,
                    error="; ".join(outcome.errors) or None)


def describe(exc) -> str:
    """One line for the journal and logs: the status, then Redox's own error texts."""
    text = "; ".join(exc.errors)
    prefix = f"HTTP {exc.status}" if exc.status else ""
    return f"{prefix}: {text}" if prefix and prefix not in text else (text or prefix)


def _log_send(job: Job, n: int, result: str, status, elapsed, *, log_ids=None, error=None) -> None:
    """One line per SEND: which file, which attempt, what Redox answered, how long it took."""
    log.info("send " + result, extra={
        "file": job.claim.name, "sha256": (job.record.sha256 or "")[:12], "attempt": n,
        "status": status, "log_ids": log_ids or [],
        "duration": round(elapsed, 3) if elapsed is not None else None, "error": error})
