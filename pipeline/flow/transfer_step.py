"""transfer: a message too large to SEND as it is takes Redox's Transferring Files path, step by step.

Each step uploads the documents still missing and builds the small message (``job.message``);
it is retried like a SEND until that is done. Uploads share SEND's retry policy, breaker, rate
limit and 401 handling; their attempts are counted apart from SEND's. As for a SEND, every way
an upload can end closes its attempt: an exception that is not an answer from Redox (a bug, a
broken HTTP library) is recorded as a transient failure and counts toward ``max_attempts``.
"""

from __future__ import annotations

from typing import Optional

from pipeline import reasons
from pipeline.errors import PermanentDelivery, PipelineError, RejectedFile, TransientDelivery
from pipeline.flow.check import rejection_errors
from pipeline.flow.job import Job, Step, unexpected
from pipeline.flow.stages import Stages
from pipeline.values import Outcome


def transfer(work: Stages, job: Job) -> Optional[Step]:
    """Upload what is missing and set ``job.message``; a Step when the file cannot go on now."""
    transfer, record = work.transfer, job.held()
    if transfer is None:
        raise RuntimeError("the Transferring Files path is not configured")
    failures = transfer.failures(record.claim_id)
    if work.policy.exhausted(failures):
        return work.give_up(job, failures, "upload attempts")
    not_now = work.auth_ready(job, failures + 1)
    if not_now:
        return not_now
    try:
        # routed (the file's route recorded, as for a SEND) and checked against its schema
        # (flow/check.py) before anything is uploaded
        job.message = transfer.prepare(job.claim, record,
                                       work.judge.screen(work.routing.picker(job)))
    except RejectedFile as exc:
        return work.done(job, Outcome("failed", errors=rejection_errors(exc), reason_kind=exc.kind,
                                      reason=exc.reason))
    except PermanentDelivery as exc:
        work.breaker.record_success()   # Redox is up; the document is at fault
        return work.done(job, Outcome("failed", errors=tuple(exc.errors), reason_kind="permanent",
                                      reason=reasons.refused(exc, upload=True)))
    except TransientDelivery as exc:
        return _failed(work, job, failures, exc)
    except PipelineError:
        raise                           # storage, a lost claim, credentials: run() knows them
    except Exception as exc:            # not one of Redox's answers: see unexpected()
        error = unexpected(exc, "upload", job.claim.name)
        work.journal.end_open_attempts(record.claim_id, "upload", error="; ".join(error.errors),
                                       maybe_seen=error.maybe_seen)
        return _failed(work, job, failures, error)
    finally:
        job.record = work.journal.get(record.claim_id)
    return None


def _failed(work: Stages, job: Job, failures: int, exc: TransientDelivery) -> Step:
    """One more failed upload attempt (already in the journal): retry later, or give up."""
    work.breaker.record_failure()
    job.last_error, job.last_reason = "; ".join(exc.errors), reasons.attempt(exc)
    if work.policy.exhausted(failures + 1):
        return work.give_up(job, failures + 1, "upload attempts")
    return Step("retry", delay=work.policy.delay(failures + 1, work.rand(), exc.retry_after),
                error=job.last_reason, unreachable=exc.status is None and not exc.maybe_seen)
