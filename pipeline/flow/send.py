"""deliver: one SEND of a checked message, and Redox's answer recorded in the journal.

Redox has no idempotency key, so what matters is the window between the request leaving and
its answer being committed:

- the attempt is committed *before* the request leaves (a crash mid-request is visible later),
  and only once it has its turn at the rate limit and its connection (``departing``): a file
  still waiting for the limiter when the process dies never left, and is not flagged;
- the answer is kept on the Job (``job.answer``) the moment it arrives, and dropped only once
  the journal holds it. A step that could not record it (a full disk, a database locked past
  its timeout: StorageError) ends "stuck", and every later step records it again *instead of
  sending*: an accepted SEND is finished from its Log IDs, a failure that Redox may have seen
  still makes the file a possible duplicate. Should the Job itself be lost (the process dies, a
  ``--once`` run gives up and puts the file back), the attempt is still open in the journal,
  and the next claim closes it as interrupted: ``possible_duplicate`` (journal.begin);
- every way the request can end closes its attempt: Redox's answer (accepted, permanent,
  transient, as the client classified it), AuthError (voided: refused on the credentials, not
  on the file), and any other exception, which is not an answer at all (a bug, a broken HTTP
  library): recorded as a transient failure that Redox may have seen unless the exception says
  otherwise, and retried. It counts toward ``max_attempts``, so a bug ends in ``gave_up``
  instead of burning retries forever.

A Retry-After delays this file's next try only (the Step's ``delay``): nothing here waits.
"""

from __future__ import annotations

import logging
from typing import Optional

from pipeline import failpoints, reasons
from pipeline.errors import AuthError, DeliveryError, PermanentDelivery, StorageError
from pipeline.flow.job import Answer, Job, Step, unexpected
from pipeline.flow.stages import Stages
from pipeline.values import Message, Outcome

log = logging.getLogger("pipeline.work")


def attempt(work: Stages, job: Job, message: Message) -> Step:
    """Make the file's next SEND, unless its attempts are exhausted or its retry is not due."""
    record = job.held()
    if work.policy.exhausted(record.attempts):
        return work.give_up(job)
    wait = (record.next_retry_at or 0) - work.wall()
    if wait > 0:          # recovered after a restart: its retry is not due yet
        return Step("retry", delay=wait, error=job.last_reason)
    n = record.attempts + 1
    not_now = work.auth_ready(job, n)
    if not_now:
        return not_now
    left: list[bool] = []

    def departing() -> None:
        work.journal.attempt_started(record.claim_id, "send", n, described=work.routing.described(job))
        left.append(True)
        failpoints.reached("before_send")

    job.answer = _request(work, job, n, message, departing, left)
    if not left:          # it ended before it left (refused connection, a 429's pause): it
        departing()       # counts as an attempt all the same, one Redox cannot have seen
    failpoints.reached("after_send")
    return conclude(work, job)


def _request(work: Stages, job: Job, n: int, message: Message, departing, left: list) -> Answer:
    """The request itself. Only AuthError leaves here (its attempt voided), and what recording
    the departure raised (the request then did not leave); every other ending is an Answer,
    reported once (metrics, log line, breaker) whatever happens to it next."""
    try:
        sent = work.client.send(message.body, departing, destinations=message.destinations)
    except StorageError as exc:        # ClaimLost too
        if not left:
            raise                      # the journal or the lease refused it: never sent
        answer = Answer(n, error=unexpected(exc, "SEND", job.claim.name))
    except AuthError:
        _void(work, job, n)
        raise
    except DeliveryError as exc:
        answer = Answer(n, error=exc)
    except Exception as exc:   # not one of Redox's answers: see unexpected()
        answer = Answer(n, error=unexpected(exc, "SEND", job.claim.name))
    else:
        answer = Answer(n, sent=sent)
    _report(work, job, answer)
    return answer


def _void(work: Stages, job: Job, n: int) -> None:
    """Refused on the credentials, not on the file: not one of its attempts. The run stops
    either way; should the journal not take it, the attempt stays open and the next claim
    counts it as interrupted (a possible duplicate: the honest reading of an open attempt)."""
    try:
        work.journal.void_attempt(job.held().claim_id, "send", n)
    except StorageError as exc:
        log.error("cannot update the journal", extra={"file": job.claim.name, "error": str(exc)})


def _report(work: Stages, job: Job, answer: Answer) -> None:
    if answer.sent is not None:
        sent = answer.sent
        work.observe("send", status=sent.status, elapsed=sent.elapsed)
        log_send(job, answer.n, "accepted", sent.status, sent.elapsed,
                 log_ids=[entry.get("ID") for entry in sent.logs])
        work.breaker.record_success()
        return
    exc = answer.error
    assert exc is not None
    permanent = isinstance(exc, PermanentDelivery)
    work.observe("send", status=exc.status, elapsed=exc.elapsed)
    log_send(job, answer.n, "permanent" if permanent else "transient", exc.status, exc.elapsed,
             error=reasons.attempt(exc))
    if permanent:
        work.breaker.record_success()   # Redox is up; the message is at fault
    else:
        work.breaker.record_failure()


def conclude(work: Stages, job: Job) -> Step:
    """Record ``job.answer`` in the journal, then decide: finish (accepted, refused, attempts
    exhausted) or retry. A StorageError leaves the answer on the Job for the next step."""
    answer, record = job.answer, job.held()
    assert answer is not None
    if answer.sent is not None:
        sent = answer.sent
        view = work.journal.attempt_ended(record.claim_id, "send", answer.n, result="accepted",
                                          status=sent.status, maybe_seen=False, logs=list(sent.logs),
                                          sidecar_for=job.claim.name)
        job.answer = None
        failpoints.reached("after_accept")
        return work.done(job, Outcome("done", logs=sent.logs, http_status=sent.status), view)
    exc = answer.error
    assert exc is not None
    permanent = isinstance(exc, PermanentDelivery)
    work.journal.attempt_ended(record.claim_id, "send", answer.n,
                               result="permanent" if permanent else "transient", status=exc.status,
                               maybe_seen=exc.maybe_seen and not permanent, error=describe(exc))
    job.answer = None
    if permanent:
        return work.done(job, Outcome("failed", errors=tuple(exc.errors), http_status=exc.status,
                                      reason_kind="permanent", reason=reasons.refused(exc)))
    job.last_error, job.last_reason = describe(exc), reasons.attempt(exc)
    job.record = work.journal.get(record.claim_id)
    if work.policy.exhausted(answer.n):
        return work.give_up(job)
    return Step("retry", delay=work.policy.delay(answer.n, work.rand(), exc.retry_after),
                error=job.last_reason, unreachable=exc.status is None and not exc.maybe_seen)


def describe(exc: DeliveryError) -> str:
    """One line for the journal (and so the sidecar's attempt_history): the status, then
    Redox's own error texts. Never logged: log lines carry reasons.attempt(exc)."""
    text = "; ".join(exc.errors)
    prefix = f"HTTP {exc.status}" if exc.status else ""
    return f"{prefix}: {text}" if prefix and prefix not in text else (text or prefix)


def log_send(job: Job, n: int, result: str, status: Optional[int], elapsed: Optional[float], *,
             log_ids: Optional[list] = None, error: Optional[str] = None) -> None:
    """One line per SEND: which file, which attempt, what Redox answered, how long it took.
    ``error`` is in our own words (reasons.py): Redox's texts stay with the file."""
    log.info("send " + result, extra={
        "file": job.claim.name, "sha256": ((job.record.sha256 if job.record else None) or "")[:12],
        "attempt": n, "status": status, "log_ids": log_ids or [],
        "duration": round(elapsed, 3) if elapsed is not None else None, "error": error})
