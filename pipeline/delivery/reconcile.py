"""reconcile: follow every Log ID of the files in done/ until Redox says where it ended.

A 200 on SEND only means Redox *received* the message; whether
each destination got it is in Redox's Logs. One pass:

    done/ refs ──(skip settled)──> sidecar ──> each open Log ID ──look up──> LogStatus
        ──> ledger (journal) ──> sidecar ``delivery`` (atomic replace) ──> settled when all final

A Log ID stops being checked once Redox reports succeeded, failed or filtered, or once it is
still pending ``give_up_after_hours`` after its SEND (then it is *given up* and reported).
Platform 5xx/429 and lost connections are retried within the pass with the same RetryPolicy as
SEND (the sleep is a seam); refused credentials stop the pass (exit 3), as does a Platform API
that cannot be reached at all. Nothing here sends a message or moves a file.

What the Platform API says when a look-up fails (its ``errors[].message`` may quote the message
the Log ID is about) is kept in the journal and the sidecar's ``delivery`` entry; log lines and
the pass's result carry our own account of it (pipeline/reasons.py).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from pipeline import reasons
from pipeline.delivery.records import as_sidecar, count, from_sidecar, log_ids_of, sent_time
from pipeline.errors import (
    AuthError,
    Interrupted,
    PermanentDelivery,
    PlatformUnreachable,
    StorageError,
    TransientDelivery,
)
from pipeline.exits import Exit
from pipeline.flow.retry import RetryPolicy
from pipeline.journal.ledger import Delivery, DeliveryLedger
from pipeline.sidecar import encode
from pipeline.values import LogStatus

log = logging.getLogger("pipeline.reconcile")


@dataclass
class PassResult:
    """What one pass found, over the files in scope (in done/, sent at or after ``since``).

    ``counts`` are per Log ID (one Log ID = one destination of one file); ``problems`` the
    failed and given-up deliveries; ``stopped`` says why the pass ended early (exit 3).
    """
    counts: dict
    looked_up: int
    files: int
    problems: list = field(default_factory=list)
    stopped: Optional[str] = None
    interrupted: bool = False     # the service is stopping: some files were not looked at

    @property
    def exit_status(self) -> int:
        """0 all delivered, 1 some failed, 3 refused, 4 none failed but some
        pending; failed wins over pending. A delivery given up is a failure to confirm it:
        it needs an operator just like a failed one, so it counts with failed."""
        if self.stopped:
            return Exit.REDOX
        if self.counts["failed"] or self.counts["gave_up"]:
            return Exit.FAILED
        return Exit.PENDING if self.counts["pending"] or self.interrupted else Exit.OK


class Reconciler:
    """One pass over ``folder`` (a done-folder seam), recording into ``ledger``.

    ``client.log_status(log_id)`` is the Platform API (platform.PlatformClient). ``sleep`` waits
    between retries and ``should_stop`` ends a pass early (the service passes an Event's
    ``wait`` and ``is_set``); ``clock`` gives epoch seconds.
    """

    def __init__(self, folder, ledger: DeliveryLedger, client, policy: RetryPolicy,
                 give_up_seconds: float, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], object] = time.sleep,
                 rand: Callable[[], float] = random.random,
                 should_stop: Callable[[], bool] = lambda: False):
        self.folder, self.ledger, self.client, self.policy = folder, ledger, client, policy
        self.give_up_seconds = give_up_seconds
        self.clock, self.sleep, self.rand, self.should_stop = clock, sleep, rand, should_stop
        self._looked_up = 0
        self._answered = False        # has the Platform API answered anything this pass?
        self._exhausted_streak = 0

    def run_pass(self, since: Optional[float] = None) -> PassResult:
        """Check every open Log ID of every file in scope; the result over all of them.

        Raises StorageError only for the ledger; an unreadable sidecar is skipped with a warning.
        """
        self._looked_up, self._answered, self._exhausted_streak = 0, False, 0
        settled = self.ledger.settled()
        refs = list(self.folder.refs())
        stopped, interrupted = None, False
        try:
            for ref in refs:
                if self.should_stop():
                    raise Interrupted()
                if ref not in settled:
                    self._reconcile_file(ref, since)
        except AuthError as exc:
            stopped = f"the Platform API refused the credentials: {exc}"
        except PlatformUnreachable as exc:
            stopped = f"the Platform API could not be reached: {exc}"
        except Interrupted:
            interrupted = True
        result = self._result(set(refs), since, stopped)
        result.interrupted = interrupted
        return result

    # -- one file ------------------------------------------------------------------------------
    def _reconcile_file(self, ref: str, since: Optional[float]) -> None:
        doc = self.folder.read_sidecar(ref)
        if doc is None:
            log.warning("sidecar unreadable; not checked", extra={"path": self.folder.where(ref)})
            return
        log_ids = log_ids_of(doc)
        sent_at = sent_time(doc)
        if since is not None and sent_at is not None and sent_at < since:
            return
        rows = self._known(ref, doc, log_ids, sent_at if sent_at is not None else self.clock())
        try:
            for log_id in log_ids:
                if not rows[log_id].final:
                    rows[log_id], unreachable, why = self._check(rows[log_id])
                    if unreachable:
                        raise PlatformUnreachable(why)
        finally:
            written = self._write_back(ref, doc, rows)
        if written and all(row.final for row in rows.values()):
            self.ledger.settle(ref, self.clock())

    def _known(self, ref: str, doc: dict, log_ids: list[str], sent_at: float) -> dict[str, Delivery]:
        """Each Log ID's row: from the ledger, else a final entry already in the sidecar (another
        journal checked it: no need to ask again), else a fresh pending one."""
        known = self.ledger.get(log_ids)
        name, claim_id = doc.get("name"), doc.get("claim_id")
        base = Delivery(log_id="", ref=ref, name=name if isinstance(name, str) else None,
                        claim_id=claim_id if isinstance(claim_id, str) else None, sent_at=sent_at)
        changed = []
        for log_id in log_ids:
            if log_id in known:
                if known[log_id].ref != ref:          # the file was renamed inside done/
                    known[log_id] = known[log_id].replace(ref=ref)
                    changed.append(known[log_id])
                continue
            earlier = from_sidecar(doc, log_id, base)
            if earlier is not None:
                changed.append(earlier)
            known[log_id] = earlier or base.replace(log_id=log_id)
        self.ledger.save(changed)
        return known

    def _check(self, row: Delivery) -> tuple[Delivery, bool, Optional[str]]:
        """Look one Log ID up, record it, and give up on it when its time has run out.
        Returns the new row, whether the Platform API is to be taken as unreachable, and why
        the look-up gave no status in our own words (the row's ``error`` keeps the Platform
        API's texts for the journal and the sidecar)."""
        give_up, unreachable = True, False
        try:
            status = self._look_up(row.log_id)
            row = row.replace(status=status.status, total=status.total,
                              attempt_at=status.attempt_at, error=status.note)
            why = status.note
        except PermanentDelivery as exc:
            row = row.replace(error="; ".join(exc.errors)[:500])
            why = reasons.attempt(exc)
        except TransientDelivery as exc:
            self._exhausted_streak += 1
            # Give up on a Log ID only when the Platform API answers others: an outage must
            # not turn every open delivery into "gave up".
            unreachable = not self._answered or self._exhausted_streak >= 2
            give_up = not unreachable
            last = f"HTTP {exc.status}" if exc.status else "no reply"
            row = row.replace(error=f"no answer after {self.policy.max_attempts} tries "
                                    f"(last: {last}): " + "; ".join(exc.errors)[:400])
            why = f"no answer after {self.policy.max_attempts} tries (last: {reasons.attempt(exc)})"
        now = self.clock()
        row = row.replace(checked_at=now, checks=row.checks + 1)
        if give_up and not row.final and now - (row.sent_at or now) >= self.give_up_seconds:
            row = row.replace(gave_up=True)
        self.ledger.save([row])
        _report(row, why)
        return row, unreachable, why

    def _look_up(self, log_id: str) -> LogStatus:
        """One Log ID, retried on transient failures with the SEND retry policy."""
        for n in itertools.count(1):
            if self.should_stop():
                raise Interrupted()
            try:
                self._looked_up += 1
                status = self.client.log_status(log_id)
                self._answered, self._exhausted_streak = True, 0
                return status
            except PermanentDelivery:
                self._answered, self._exhausted_streak = True, 0
                raise
            except TransientDelivery as exc:
                if self.policy.exhausted(n):
                    raise
                delay = self.policy.delay(n, self.rand(), exc.retry_after)
                log.info("Platform API look-up will be retried",
                         extra={"log_id": log_id, "status": exc.status, "delay": round(delay, 3),
                                "attempt": n, "error": reasons.attempt(exc)})
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_back(self, ref: str, doc: dict, rows: dict[str, Delivery]) -> bool:
        """Put every Log ID's delivery into the sidecar (atomic replace) when it changed.
        True when the sidecar now holds it."""
        # only what was learned: a Log ID never looked up yet has no entry ("once checked")
        delivery = {log_id: as_sidecar(row) for log_id, row in rows.items()
                    if row.checks or row.final}
        if not delivery or doc.get("delivery") == delivery:
            return True
        doc = dict(doc, delivery=delivery)
        try:
            return self.folder.write_sidecar(ref, encode(doc))
        except StorageError as exc:
            log.error("cannot record delivery in the sidecar; the journal has it and the next "
                      "pass tries again", extra={"path": exc.where, "error": str(exc)})
            return False

    # -- the result ------------------------------------------------------------------------------
    def _result(self, refs: set[str], since: Optional[float], stopped: Optional[str]) -> PassResult:
        rows = [row for row in self.ledger.all(since) if row.ref in refs]
        return PassResult(counts=count(rows), looked_up=self._looked_up,
                          files=len({row.ref for row in rows}),
                          problems=[r for r in rows if r.outcome() in ("failed", "gave_up")],
                          stopped=stopped)


def log_pass(result: PassResult) -> None:
    """One line per pass: the counts, and why it stopped early if it did."""
    fields = dict(result.counts, checked=result.looked_up, files=result.files)
    if result.stopped:
        log.error("reconcile pass stopped", extra=dict(fields, reason=result.stopped))
    else:
        log.info("reconcile pass finished", extra=fields)


def _report(row: Delivery, why: Optional[str]) -> None:
    """One line for a Log ID looked up; ``why`` a failed look-up in our own words."""
    fields = {"file": row.name or row.ref, "log_id": row.log_id, "status": row.status,
              "attempt": row.total}
    outcome = row.outcome()
    if outcome in ("failed", "gave_up"):
        event = "delivery failed" if outcome == "failed" else "gave up waiting for delivery"
        log.warning(event, extra=dict(fields, error=why))
    elif outcome == "pending":
        # every pass sees the same pending ones: only a look-up that failed is worth a line
        log.log(logging.INFO if why else logging.DEBUG, "delivery still pending",
                extra=dict(fields, error=why))
    else:
        log.info("delivered" if outcome == "delivered" else "delivery filtered by Redox", extra=fields)
