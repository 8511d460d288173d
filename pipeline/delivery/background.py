"""Delivery confirmation in the service: reconcile passes on a thread of their own, one at a
start and then one every ``delivery_check.interval_seconds``, taking turns with ``reconcile``
commands on the same journal through the reconcile run lock.
"""

from __future__ import annotations

import logging
import threading

from pipeline.delivery.reconcile import Reconciler, log_pass
from pipeline.errors import LockBusy
from pipeline.periodic import Periodic
from pipeline.runlock import RunLock

log = logging.getLogger("pipeline.reconcile")


class BackgroundReconcile(Periodic):
    """Service mode: a pass at start, then one every ``interval`` seconds, in its own thread.

    ``stop_event`` must be the one the reconciler sleeps on and checks (app.make_reconciler),
    so ``stop()`` ends a pass at its next step instead of after a whole backoff. Passes share
    the ``lock_path`` run lock with ``reconcile`` commands on the same journal: while another
    pass holds it this one is skipped. A failed pass is logged; the service keeps sending.
    """

    name = "reconcile"

    def __init__(self, reconciler: Reconciler, interval: float, lock_path: str,
                 stop_event: threading.Event):
        super().__init__(interval, stop_event)
        self.reconciler, self.lock_path = reconciler, lock_path

    def one_pass(self) -> None:
        try:
            lock = RunLock(self.lock_path).acquire()
        except LockBusy as exc:
            log.info("reconcile pass skipped: another pass is running", extra={"holder": exc.holder})
            return
        except OSError as exc:
            log.error("reconcile pass skipped: cannot take its lock", extra={"error": str(exc)})
            return
        try:
            result = self.reconciler.run_pass()
            self.passes += 1
            log_pass(result)
        except Exception as exc:    # a bug or a broken journal must not stop the sending
            log.exception("reconcile pass failed", extra={"error": exc.__class__.__name__})
        finally:
            lock.release()
