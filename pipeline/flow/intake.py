"""discover + claim, for the runner: which inbox files are ready, and taking them.

Events are hints, the listing is the truth: ``rescan()`` lists the source,
``hint(name)`` looks at one name an event mentioned, ``recheck_settling()`` looks again at files
whose settle time has come. ``claim_next()`` claims the oldest settled file, unless it changed
since it settled (then it settles again) or someone else was first. Storage trouble skips a name
for now (it is seen again); a source that refuses our credentials sets ``fatal``.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from pipeline import failpoints
from pipeline.errors import AuthError, ClaimLost, StorageError
from pipeline.flow.settle import Settler
from pipeline.values import Claim, Drop

log = logging.getLogger("pipeline.run")


class Intake:
    """The runner's view of the source. ``once``: only the names present at the first scan
    count (``initial``), unless the store is queue-fed (its events are the only names)."""

    def __init__(self, store, journal, settler: Settler, *, once: bool, queue_fed: bool,
                 wall: Callable[[], float] = time.time):
        self.store, self.journal, self.settler = store, journal, settler
        self.once, self.queue_fed, self.wall = once, queue_fed, wall
        self.initial: Optional[set[str]] = None   # --once: the names present at start
        self.not_due: dict[str, float] = {}       # released for a retry not due yet
        self.oldest_inbox: Optional[float] = None # mtime of the oldest inbox file at the last scan
        self.fatal: Optional[str] = None
        self.unfinished: set[str] = set()         # --once: names it could not claim
        ordering = getattr(store, "claim_hooks", None)   # ordering, when on, registered with the source
        if ordering is not None:
            settler.paused = ordering.crowded    # enough files parked: claim no more for now

    def rescan(self) -> None:
        """List the source; every file seen is observed by the settler."""
        if not self.queue_fed:
            try:
                self.not_due = self.journal.not_due(self.wall())
            except StorageError as exc:
                log.error("cannot read the journal", extra={"error": str(exc)})
        present, oldest = set(), None
        try:
            for drop in self.store.scan():
                present.add(drop.name)
                oldest = drop.mtime if oldest is None else min(oldest, drop.mtime)
                if self.wanted(drop.name):
                    self.settler.observe(drop)
        except AuthError as exc:
            self.fatal = str(exc)
            return
        except StorageError as exc:   # permissions changed, S3 throttling: the next rescan tries again
            log.error("cannot scan the source; trying again", extra={"error": str(exc)})
            return
        self.settler.drop_missing(present)
        self.oldest_inbox = oldest

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

    def claim_next(self) -> Optional[Claim]:
        """Claim the oldest settled file still as it settled; None when there is none to take."""
        while not self.fatal:
            settled = self.settler.pop_settled()
            if settled is None:
                return None
            drop = self.stat(settled.name)
            if drop is None:
                continue
            if (drop.size, drop.mtime) != (settled.size, settled.mtime):
                self.settler.observe(drop)      # rewritten since it settled: settle again
                continue
            try:
                claim = self.store.claim(drop)
            except ClaimLost:
                continue
            except AuthError as exc:
                self.fatal = str(exc)
                return None
            except StorageError as exc:
                log.error("cannot claim", extra={"file": drop.name, "error": str(exc)})
                if self.once:
                    self.unfinished.add(drop.name)   # (by name: it never got a location)
                continue
            failpoints.reached("after_claim")
            log.debug("claimed", extra={"file": drop.name})
            return claim
        return None
