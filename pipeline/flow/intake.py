"""discover + claim, for the runner: which inbox files are ready, and taking them.

Events are hints, the listing is the truth: a *pass* lists the source on a thread of its own
(scanner.py) while the runner takes what it has found so far, a few chunks per loop turn
(``advance``), so a backlog of a million files starts sending within a second of the listing's
start instead of after it; ``rescan()`` does a whole pass at once. ``hint(name)`` looks at one
name an event mentioned, ``recheck_settling()`` looks again at files whose settle time has
come. Claiming is split so that it can run off the loop: ``next_settled()`` (loop) hands out
the oldest settled file, ``try_claim(drop)`` (any thread) checks it is still as it settled and
claims it, ``claimed(...)`` (loop) books the outcome: a file that changed since it settled
settles again, one someone else was first to is skipped. Storage trouble skips a name for now
(it is seen again); a source that refuses our credentials sets ``fatal``.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Callable, Iterable, Optional, Union

from pipeline import failpoints
from pipeline.errors import AuthError, ClaimLost, StorageError
from pipeline.flow.scanner import DEPTH, Pass
from pipeline.flow.settle import Settler
from pipeline.values import Claim, Drop

log = logging.getLogger("pipeline.run")
Tried = tuple[str, Union[Claim, Drop, str, None]]     # what try_claim found (see there)
# listed files ready to claim at or above which no more of the listing is taken in (a chunk: 500)
LOW_WATER = 250


class Intake:
    """The runner's view of the source. ``once``: only the names present at the first pass
    count (``initial``), unless the store is queue-fed (its events are the only names)."""

    def __init__(self, store, journal, settler: Settler, *, once: bool, queue_fed: bool,
                 wall: Callable[[], float] = time.time, wake: Optional[queue.Queue] = None):
        self.store, self.journal, self.settler = store, journal, settler
        self.once, self.queue_fed, self.wall, self.wake = once, queue_fed, wall, wake
        self.initial: Optional[set[str]] = None   # --once: the names present at start
        self.not_due: dict[str, float] = {}       # released for a retry not due yet
        self.oldest_inbox: Optional[float] = None # mtime of the oldest inbox file at the last pass
        self.fatal: Optional[str] = None
        self.unfinished: set[str] = set()         # --once: names it could not claim
        self.passes = 0                           # passes ended (listed everything, or failed)
        self._pass: Optional[Pass] = None
        self._oldest: Optional[float] = None
        self._first: Optional[set[str]] = set() if once and not queue_fed else None
        ordering = store.claim_hooks             # ordering, when on, registered with the source
        if ordering is not None:
            settler.paused = ordering.crowded    # enough files parked: claim no more for now
        # the listing is taken in as claims need it, not as fast as it comes: memory holds what
        # is about to be claimed, not the whole backlog, and a remote listing's next page is not
        # asked for while the first claims are on their way. With ordering on, the first full
        # listing must come before any claim: everything is taken in at once.
        self.paced = ordering is None

    # -- passes --------------------------------------------------------------------------------
    @property
    def scanning(self) -> bool:
        return self._pass is not None

    def start_pass(self) -> None:
        """Begin listing the source in the background (unless a pass is under way)."""
        if self._pass is not None:
            return
        if not self.queue_fed:
            try:
                self.not_due = self.journal.not_due(self.wall())
            except StorageError as exc:
                log.error("cannot read the journal", extra={"error": str(exc)})
        self.settler.begin_pass()
        self._oldest = None
        # paced, one chunk ahead: the listing's next page waits until the claims need it
        self._pass = Pass(self.store, self.wake, depth=1 if self.paced else DEPTH)

    def advance(self, chunks: int = 8) -> None:
        """Observe what the pass found since the last call (at most ``chunks`` chunks; when
        ``paced``, none while LOW_WATER listed files are ready to be claimed)."""
        current = self._pass
        if current is None:
            return
        if self.paced and self.settler.ready_count() >= LOW_WATER:
            chunks = 0
        try:
            self._observe_all(current.take(chunks))
        except AuthError as exc:
            self.fatal = str(exc)
        except StorageError as exc:   # permissions changed, S3 throttling: the next pass tries again
            log.error("cannot scan the source; trying again", extra={"error": str(exc)})
        if not current.finished:
            return
        self._pass = None
        self.passes += 1
        if self._first is not None:              # --once: the first pass decides what counts
            self.initial, self._first = self._first, None
        if self.fatal or current.failed:
            return                               # what it did not list is not known to be gone
        self.settler.end_pass()
        self.oldest_inbox = self._oldest

    def also_initial(self, names: Iterable[str]) -> None:
        """--once: these names count too (claims adopted at start, by name)."""
        if self._first is not None:
            self._first.update(names)
        elif self.initial is not None:
            self.initial.update(names)

    def rescan(self) -> None:
        """A whole pass, now (the caller waits for the listing)."""
        self.start_pass()
        current = self._pass
        while current is not None and self._pass is current:
            self.advance(chunks=1 << 30)
            if self._pass is current:
                time.sleep(0.001)

    @property
    def oldest_waiting(self) -> Optional[float]:
        """The mtime of the oldest inbox file known: while a pass is under way, the oldest it
        has listed so far (a paced pass over a backlog lasts as long as the backlog), else the
        last pass's."""
        if self._pass is not None and self._oldest is not None:
            return self._oldest
        return self.oldest_inbox

    def stop(self) -> None:
        if self._pass is not None:
            self._pass.stop()
            self._pass = None

    def _observe_all(self, drops: Iterable[Drop]) -> None:
        oldest, first = self._oldest, self._first
        for drop in drops:
            oldest = drop.mtime if oldest is None or drop.mtime < oldest else oldest
            if first is not None:
                first.add(drop.name)
            if self.wanted(drop.name):
                self.settler.observe(drop)
        self._oldest = oldest

    # -- events and timers ---------------------------------------------------------------------
    def hint(self, name: str) -> None:
        """An event named ``name``: look at it now (only a listing decides in --once)."""
        if self.once and not self.queue_fed:
            return
        drop = self.stat(name)
        if drop and self.wanted(drop.name):
            self.settler.observe(drop)

    def recheck_settling(self) -> None:
        """Look again at files whose settle time has passed (no event is needed for that)."""
        for name in self.settler.due():
            drop = self.stat(name)
            if drop is None:
                self.settler.forget(name)
            elif self.wanted(name):
                self.settler.observe(drop)

    def stat(self, name: str) -> Optional[Drop]:
        """The store's stat; a storage problem skips the name for now (it is seen again)."""
        try:
            return self.store.stat(name)
        except AuthError as exc:
            self.fatal = str(exc)
        except StorageError as exc:
            log.error("cannot look at a file; trying again later", extra={"file": name, "error": str(exc)})
        return None

    def wanted(self, name: str) -> bool:
        if self.initial is not None and name not in self.initial:
            return False
        due = self.not_due.get(name)
        return due is None or due <= self.wall()

    # -- claims --------------------------------------------------------------------------------
    def next_settled(self) -> Optional[Drop]:
        """Loop: the oldest settled file, to be claimed (None: none, or we are stopping)."""
        return None if self.fatal else self.settler.pop_settled()

    def try_claim(self, settled: Drop) -> Tried:
        """Any thread: look at ``settled`` as it is now and claim it if it is still as it
        settled. Returns ("claimed", Claim), ("changed", the Drop as it is now), ("gone",
        None), ("lost", None) (someone else was first), ("auth", why) or ("unclaimed", why):
        storage trouble, tried again later. Touches nothing of the loop's."""
        try:
            drop = self.store.stat_to_claim(settled)
            if drop is None:
                return "gone", None
            if (drop.size, drop.mtime) != (settled.size, settled.mtime):
                return "changed", drop          # rewritten since it settled: settle again
            claim = self.store.claim(drop)
        except ClaimLost:
            return "lost", None
        except AuthError as exc:
            return "auth", str(exc)
        except StorageError as exc:
            log.error("cannot claim", extra={"file": settled.name, "error": str(exc)})
            return "unclaimed", str(exc)
        failpoints.reached("after_claim")
        log.debug("claimed", extra={"file": settled.name})
        return "claimed", claim

    def claimed(self, settled: Drop, tried: Tried) -> Optional[Claim]:
        """Loop: book what ``try_claim(settled)`` found; the Claim when it claimed."""
        kind, value = tried
        if kind == "claimed":
            assert isinstance(value, Claim)
            return value
        if kind == "changed" and isinstance(value, Drop) and self.wanted(value.name):
            self.settler.observe(value)
        elif kind == "auth":
            self.fatal = str(value)
        elif kind == "unclaimed" and self.once:
            self.unfinished.add(settled.name)   # (by name: it never got a location)
        return None

