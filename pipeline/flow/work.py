"""The path of one claimed file through one step, run in a worker thread.

``FileWork.run(job)`` reads and checks the file (first time only), then makes one attempt, and
returns what the runner should do next: it never sleeps, so a file waiting for a retry holds
no worker. Every stage it calls is one module: check (the decision before sending, shared
with the ``check`` command: message read + check, the schema, routes, route by the size of
the body that would be sent), transfer_step (messages too large to SEND as they are: upload
their documents, then build the small message; retried step by step like SEND until
``job.message`` is set), send (deliver, and record Redox's answer), finish.

What the journal could not take yet stays on the Job (flow/job.py): a step that finds an
unrecorded answer or a decided outcome completes it and never sends again.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Optional

from pipeline import reasons
from pipeline.errors import (
    AuthError,
    ClaimLost,
    NotRegular,
    RejectedFile,
    StorageError,
    TransientDelivery,
    Unreadable,
)
from pipeline.flow import send, transfer_step
from pipeline.flow.addressing import Addressing
from pipeline.flow.check import Judge, rejection_errors
from pipeline.flow.finish import finish
from pipeline.flow.job import Answer, Client, Job, Step
from pipeline.flow.retry import CircuitBreaker, RetryPolicy
from pipeline.flow.route import Decision
from pipeline.journal import Journal, Record, SidecarView
from pipeline.redox.transfer.upload import Transfer
from pipeline.sources.base import Source
from pipeline.values import Claim, Outcome

if TYPE_CHECKING:
    from pipeline.validation import Gate

__all__ = ["Answer", "FileWork", "Job", "Step"]

log = logging.getLogger("pipeline.work")


@dataclass
class FileWork:
    """The per-file stages, wired to the shared store, journal and Redox client."""
    store: Source
    journal: Journal
    client: Client
    policy: RetryPolicy
    breaker: CircuitBreaker
    destinations: tuple
    send_limit: int
    dedupe: bool
    transfer: Optional[Transfer] = None       # the upload path for messages over send_limit
    addressing: Optional[Addressing] = None   # routes and ordering (None: every file to destinations)
    rand: Callable[[], float] = random.random
    wall: Callable[[], float] = time.time
    observe: Callable[..., None] = lambda *a, **k: None   # metrics hook
    gate: Optional[Gate] = None               # validation.schemas (None: no schema check)

    def __post_init__(self) -> None:
        self.routing: Addressing = self.addressing or Addressing.fixed(self.destinations)
        self._judge = Judge(self.send_limit, self.transfer is not None, self.gate)

    @property
    def judge(self) -> Judge:
        """The decision before sending, shared with the check command (flow/check.py), for
        the current send_limit, transfer and gate."""
        judge = self._judge
        if (judge.send_limit, judge.can_transfer, judge.gate) != (
                self.send_limit, self.transfer is not None, self.gate):
            judge = self._judge = Judge(self.send_limit, self.transfer is not None, self.gate)
        return judge

    def run(self, job: Job) -> Step:
        """One step of ``job``'s file. Storage trouble, refused credentials and a vanished
        claim come back as Steps ("stuck", "auth", "lost"); an exception raised by a request
        is an attempt's outcome (send.py, transfer_step.py). Anything else is a bug outside
        any request and reaches the runner, which keeps the file claimed."""
        try:
            return self._step(job)
        except AuthError as exc:
            return Step("auth", error=str(exc))
        except ClaimLost:
            self.routing.lost(job)
            return Step("lost")
        except StorageError as exc:
            log.error("storage problem; the file stays claimed and is tried again later",
                      extra={"file": job.claim.name, "error": str(exc)})
            return Step("stuck", error=str(exc), storage=True)

    def _step(self, job: Job) -> Step:
        if job.record is None:
            early = self._prepare(job)
            if early:
                return early
        else:
            # the journal is the truth: a finish that failed (done/ full) left it ahead of
            # job.record, and an accepted SEND must never be made again
            job.record = self.journal.get(job.record.claim_id)
        record = job.held()
        if job.answer is not None:           # Redox answered; the journal does not know yet
            return send.conclude(self, job)
        if job.outcome is not None:          # decided; only the finish is left
            return self.done(job, job.outcome)
        if record.state in ("accepted", "finishing"):
            return self._finish_recorded(job, record)
        if job.message is None:
            early = transfer_step.transfer(self, job)
            if early:
                return early
        assert job.message is not None
        wait = self.routing.gate(job)         # ordering: an earlier file of its key first
        if wait:
            return Step("wait", delay=wait.delay, error=wait.reason)
        return send.attempt(self, job, job.message)

    # -- read + check + route ------------------------------------------------------------------
    def _prepare(self, job: Job) -> Optional[Step]:
        """The file's first step: read and hash it, journal the claim, check and route it.
        None to go on (``job.message`` set: SEND it; unset: the transfer path), or a Step."""
        claim = job.claim
        # a file over the limit is not read whole: only the transfer path can take it
        first = self.judge.by_file_size(claim.size)
        got = self._read(job, whole=first.action == "send")
        if isinstance(got, Step):
            return got
        raw, sha = got
        record = job.record = self.journal.begin(claim.name, sha, claim.size, claim.source,
                                                 claim.location, self.store.owner, claim.mtime)
        if record.state in ("accepted", "finishing"):
            return None                          # recovery: Redox already accepted it
        if self.dedupe:
            earlier = self.journal.delivered(sha, exclude=record.claim_id)
            if earlier:
                return self.done(job, Outcome("done", duplicate_of=earlier))
        return self._route(job, raw, first)

    def _route(self, job: Job, raw: Optional[bytes], decision: Decision) -> Optional[Step]:
        """Check the message (JSON, Meta, its schema, its route) and route it by the size of the
        body that would be sent: Redox's limit applies to the body, Meta.Destinations written
        in, not to the file as dropped (flow/check.py: the same Judge as the check command)."""
        if raw is not None:
            try:
                message, decision = self.judge.message(raw, self.routing.picker(job))
            except RejectedFile as exc:
                return self.done(job, Outcome("failed", errors=rejection_errors(exc),
                                              reason_kind=exc.kind, reason=exc.reason))
            if decision.action == "send":
                job.message = message
        if decision.action == "reject":
            why = decision.reason or "too large"
            return self.done(job, Outcome("failed", errors=(why,), reason_kind=decision.kind or "too_large",
                                          reason=why))
        return None                              # "transfer": transfer_step builds the message

    def _read(self, job: Job, whole: bool) -> tuple[Optional[bytes], str] | Step:
        """(the bytes, when ``whole``, and their sha256), or the Step for a file that cannot be
        read as it is."""
        claim = job.claim
        try:
            raw = self._bytes(claim) if whole else None
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
            job.claim = replace(claim, size=len(raw))
            return Step("stuck", error=f"the file changed after it was claimed ({claim.size} "
                                       f"bytes, now {len(raw)}); reading it again later")
        return raw, sha

    def _bytes(self, claim: Claim) -> bytes:
        try:
            with self.store.open(claim) as handle:
                return handle.read()
        except OSError as exc:      # EIO and the like: a storage problem, tried again later
            raise StorageError(f"cannot read ({exc.strerror})", claim.location) from None

    def _hash(self, claim: Claim) -> str:
        try:
            with self.store.open(claim) as handle:   # streamed, never whole in memory
                digest = hashlib.sha256()
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                return digest.hexdigest()
        except OSError as exc:
            raise StorageError(f"cannot read ({exc.strerror})", claim.location) from None

    def _reject_unread(self, job: Job, reason: str, kind: str) -> Step:
        claim = job.claim
        job.record = self.journal.begin(claim.name, "", claim.size, claim.source, claim.location,
                                        self.store.owner, claim.mtime)
        return self.done(job, Outcome("failed", errors=(reason,), reason_kind=kind, reason=reason))

    # -- shared by the attempts (send, transfer_step) ---------------------------------------------
    def auth_ready(self, job: Job, next_attempt: int) -> Optional[Step]:
        """Get a token before an attempt: refused credentials raise AuthError (the run stops)
        and an unreachable auth endpoint means "later"; neither is one of the file's attempts."""
        try:
            self.client.tokens.token()
        except TransientDelivery as exc:
            self.breaker.record_failure()
            job.last_error, job.last_reason = "; ".join(exc.errors), reasons.attempt(exc)
            return Step("retry", delay=self.policy.delay(next_attempt, self.rand()),
                        error=job.last_reason, unreachable=True)
        return None

    def give_up(self, job: Job, attempts: Optional[int] = None, what: str = "attempts") -> Step:
        """Fail the file: its attempts are exhausted (``gave_up``). The sidecar's errors end
        with the last error as it was recorded (Redox's texts and all); the reason names the
        last failure in our words (after a restart: from the journal's attempt rows)."""
        record = job.held()
        attempts = record.attempts if attempts is None else attempts
        errors = [f"gave up after {attempts} {what}"]
        # after a restart the job knows neither: both come from the journal's attempt rows
        rows = [] if job.last_error and job.last_reason else self.journal.attempts_of(record.claim_id)
        last = job.last_error or next((a["error"] for a in reversed(rows) if a["error"]), None)
        if last:
            errors.append(f"last error: {last}")
        last_reason = job.last_reason or reasons.last_attempt(rows)
        return self.done(job, Outcome("failed", errors=tuple(errors), reason_kind="gave_up",
                                      reason=reasons.gave_up(attempts, what, last_reason)))

    # -- finish ------------------------------------------------------------------------------------
    def _finish_recorded(self, job: Job, r: Record) -> Step:
        """Complete an outcome the journal already holds (after a crash or a storage failure)."""
        if r.state == "accepted":
            return self.done(job, Outcome("done", logs=tuple(r.logs), http_status=r.http_status))
        return self.done(job, Outcome(r.outcome or "failed", errors=tuple(r.errors),
                                      logs=tuple(r.logs), http_status=r.http_status,
                                      reason_kind=r.reason_kind, duplicate_of=r.duplicate_of))

    def done(self, job: Job, outcome: Outcome, view: Optional[SidecarView] = None) -> Step:
        """Finish the file with ``outcome``. It is kept on the Job first: should the finish
        fail (StorageError: the file stays claimed), the next step finishes the same outcome."""
        job.outcome = outcome
        extra = {}
        if job.message is not None:
            extra = {"data_model": job.message.data_model, "event_type": job.message.event_type}
        extra.update(self.routing.sidecar_fields(job))
        self.routing.before_finish(job, outcome)
        dest, job.record = finish(self.store, self.journal, job.claim, job.held(), outcome, extra, view)
        self.routing.after_finish(job, outcome, dest)
        return Step("finished", status=outcome.status, dest=dest, error=reasons.of_outcome(outcome))
