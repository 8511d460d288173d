"""ordering: files with the same key are sent one at a time, in drop order (``ordering.by``).

The key is the folder below the inbox or prefix (``path``) or the message's first
``Patient.Identifiers`` entry, ID and IDType (``patient``); a file without one is not ordered.
Drop order is (mtime, name) locally and (LastModified, key) on S3. Every process sharing the
folders or the bucket keeps the same board (board.py) in the backend's storage, so the rule
holds across workers, restarts, kills and machines; no process coordinates the others.

The protocol, per file:

1. *Before* the claim (``intend``, called by the backend also before adopting a dead owner's
   claim): ``path`` enters the file under its key; ``patient``, whose key needs the file read,
   writes an *unread* mark instead. Whoever loses the race to claim the file withdraws its mark
   (``abandon``). So once a file is claimed, every other process can see it.
2. When it is read (``keyed``): the entry is created, then the mark removed (never a moment
   when the file is on neither).
3. Before each attempt (``gate``): the file may go when no unread mark is older than it (its
   key could be any), no other entry of its key is sending or held, and no older one is
   pending. It then marks its entry *sending* and looks once more: if another file of its key
   did the same meanwhile (only a file arriving late, with an older drop time, can), the one
   that looked second backs off, so two of a key are never sent at once. Sending is sticky: it
   holds the key through retries, restarts and kills until the file is finished.
4. Finishing (``before_finish`` / ``after_finish``): done, or failed with ``continue``, ends
   the entry after the move; failed with ``hold`` turns it *held* before the move and records
   where the file lies in failed/ after it: the key's later files wait until retry-failed puts
   it back (pending again, with its drop time) or the operator removes it.

A file that may not go yet is *parked* (parking.py): it keeps its claim and holds no worker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional

from pipeline.errors import StorageError
from pipeline.flow.addressing import Wait
from pipeline.flow.board import HELD, PENDING, SENDING, Board, Item, place_of

log = logging.getLogger("pipeline.ordering")
FOREVER = 1e9           # a --once run gives up waiting: released to the inbox at its end


@dataclass(frozen=True)
class Timing:
    """How often a parked file asks again: ``poll`` while it waits for a file being read or
    sent, ``hold_poll`` while its key is held; ``cap``: parked files a process may keep before
    it stops claiming more (held keys' files not counted)."""
    poll: float
    hold_poll: float
    cap: int


def make_sequencer(settings, store, *, once: bool) -> Optional["Sequencer"]:
    """The Sequencer for ``settings`` on ``store`` (None when ordering is off), registered
    with the store so that every claim and adoption is announced first."""
    if settings.ordering.by == "none":
        return None
    space = store.order_store()
    if space is None:
        from pipeline.errors import ConfigError
        raise ConfigError(f"ordering.by: not available with source.kind {settings.source.kind}")
    s3 = settings.source.kind == "s3"
    # S3: every look is a request; an item written by a worker that has not taken its lease
    # yet is given a lease's time (docs/routing.md)
    timing = Timing(poll=0.5 if s3 else 0.1, hold_poll=10.0 if s3 else 5.0, cap=settings.fixed_workers)
    stale_after = settings.source.lease_seconds / 2 if s3 else 2.0
    board = Board(space, store.owner, stale_after)
    board.key("", "")                # the salt, read (or made) now: keys need no I/O later
    sequencer = Sequencer(board, settings.ordering.by, settings.ordering.on_failure, timing,
                          once=once, once_wait=settings.retry.once_wait_seconds)
    store.claim_hooks = sequencer
    return sequencer


class Sequencer:
    """Ordering for one process; the backends' ClaimHooks (intend/abandon) and FileWork's gate."""

    def __init__(self, board: Board, by: str, on_failure: str, timing: Timing, *, once: bool,
                 once_wait: float, clock: Callable[[], float] = time.time):
        self.board, self.by, self.hold = board, by, on_failure == "hold"
        self.timing, self.once, self.once_wait, self.clock = timing, once, once_wait, clock
        self.parking = None          # the runner's ParkingSchedule attaches itself (wake-ups)
        self._ours: set[str] = set()  # keys a file of this process is sending: we hear when it ends

    # -- the backends' hooks ---------------------------------------------------------------
    def intend(self, name: str, stamp: float) -> None:
        place = place_of(name, stamp)
        if self.by == "path":
            self.board.enter(self.path_key(name), place, name)
        else:
            self.board.mark(place, name)

    def abandon(self, name: str, stamp: float) -> None:
        if self.by == "patient":     # path: the winner wrote the very same entry
            self.board.unmark(place_of(name, stamp))

    # -- keys ------------------------------------------------------------------------------
    def path_key(self, name: str) -> str:
        return self.board.key("path", name.rpartition("/")[0])

    def key_of(self, doc: dict, name: str) -> Optional[str]:
        """The file's key (a keyed hash), or None when it has none (not ordered)."""
        if self.by == "path":
            return self.path_key(name)
        patient = doc.get("Patient")
        ids = patient.get("Identifiers") if isinstance(patient, dict) else None
        first = ids[0] if isinstance(ids, list) and ids else None
        if not isinstance(first, dict):
            return None
        ident, kind = first.get("ID"), first.get("IDType")
        if not isinstance(ident, str) or not ident or not isinstance(kind, (str, type(None))):
            return None
        return self.board.key("patient", f"{kind or ''}\0{ident}")

    def keyed(self, claim, key: Optional[str]) -> bool:
        """The file was read: ``key`` (None: not ordered) replaces its unread mark. False when
        the board could not be written now (the gate does it again before any SEND)."""
        place = place_of(claim.name, claim.mtime)
        try:
            if key is not None and self.by == "patient":    # path: entered when announced
                self.board.enter(key, place, claim.name)
            if self.by == "patient":
                self.board.unmark(place)
        except StorageError as exc:
            log.error("cannot update the ordering board; trying again before sending",
                      extra={"file": claim.name, "error": str(exc)})
            return False
        if self.by == "patient":
            self._wake(None)
        return True

    def _key(self, job) -> Optional[str]:
        if job.route is not None:
            return job.route.key
        return self.path_key(job.claim.name) if self.by == "path" else None

    # -- the gate --------------------------------------------------------------------------
    def gate(self, job) -> Optional[Wait]:
        """None: ``job`` may be sent now (its key is then its own until it finishes)."""
        route, key = job.route, self._key(job)
        if route is None or key is None:
            return None
        place = place_of(job.claim.name, job.claim.mtime)
        if not route.registered and not self.keyed(job.claim, key):
            raise StorageError("cannot update the ordering board", job.claim.name)
        route.registered = True
        if route.sending:
            self._keep_sending(key, place, job)
            return None
        blocker, seen = self._blocker(key, place, job)
        if blocker is None:
            self.board.set_state(key, place, SENDING, was=seen, name=job.claim.name)
            rival = self._rival(key, place)          # someone else marked at the same moment?
            if rival is None:
                route.sending, route.blocked_since = True, None
                self._ours.add(key)
                return None
            self.board.set_state(key, place, PENDING, was=SENDING, name=job.claim.name)
            blocker = rival
        return self._wait(job, key, *blocker)

    def _blocker(self, key: str, place: str, job) -> tuple[Optional[tuple[str, str]], Optional[str]]:
        """(kind, why) of what keeps the file at ``place`` back (None: nothing), and the state
        its own entry was seen in when that was all there was of it. Unread marks are listed
        before entries: a file moves from the first to the second, never back."""
        if self.by == "patient":
            for mark in sorted(self.board.marks(), key=lambda m: m.place):
                if mark.place >= place:
                    break
                if self.board.live_mark(mark):
                    return ("mark", "an earlier file is claimed and not read yet"), None
        entries = self.board.entries(key)
        own = entries.get(place)
        if own is None:                             # removed as stale on a wrong guess: again
            self.board.enter(key, place, job.claim.name)
        elif own.tail == SENDING:
            return None, None                       # ours from before a restart: still ours
        for other in sorted(entries.values(), key=lambda e: e.place):
            if other.place == place:
                continue
            why = self._blocks(other, place)
            if why and self.board.live_entry(other):
                return why, None
        return None, (own.tail if own is not None and own.tail == PENDING else None)

    @staticmethod
    def _blocks(other: Item, place: str) -> Optional[tuple[str, str]]:
        if other.tail == HELD:
            return "hold", "an earlier file of its key is held in failed/ (ordering.on_failure: hold)"
        if other.tail == SENDING:
            return "key", "another file of its key is being sent"
        if other.place < place:
            return "key", "an earlier file of its key goes first"
        return None

    def _rival(self, key: str, place: str) -> Optional[tuple[str, str]]:
        for other in self.board.entries(key).values():
            if other.place != place and other.tail in (SENDING, HELD):
                return self._blocks(other, place)
        return None

    def _keep_sending(self, key: str, place: str, job) -> None:
        entry = self.board.entries(key).get(place)
        if entry is None or entry.tail != SENDING:
            self.board.set_state(key, place, SENDING, name=job.claim.name)

    def _wait(self, job, key: str, kind: str, why: str) -> Wait:
        route, now = job.route, self.clock()
        if route.blocked_since is None:
            route.blocked_since = now
        if kind == "hold":
            delay = FOREVER if self.once else self.timing.hold_poll
            if route.waiting_for != "hold":       # once per file and hold
                log.info("waiting: an earlier file of its key is held in failed/",
                         extra={"file": job.claim.name, "key": key[:12]})
        elif self.once and now - route.blocked_since > self.once_wait:
            delay = FOREVER
        elif kind == "key" and key in self._ours:
            delay = self.timing.hold_poll       # ours is being sent (or retried): woken when it ends
        else:
            delay = self.timing.poll
        route.waiting_for = "hold" if delay >= FOREVER else kind
        return Wait(delay, why)

    # -- the end of a file's place ---------------------------------------------------------
    def before_finish(self, job, outcome) -> None:
        key = self._key(job)
        if key is not None and outcome.status == "failed" and self.hold:
            self.board.set_state(key, place_of(job.claim.name, job.claim.mtime), HELD,
                                 name=job.claim.name, reason=outcome.reason_kind, failed=None)

    def after_finish(self, job, outcome, dest: str) -> None:
        key, place = self._key(job), place_of(job.claim.name, job.claim.mtime)
        held = outcome.status == "failed" and self.hold
        if key is None and job.route is None and self.by == "patient" and not held:
            self._forget(place)                   # finished after a restart without being read
        if key is not None:
            if held:
                self.board.set_state(key, place, HELD, name=job.claim.name,
                                     reason=outcome.reason_kind, failed=dest)
            else:
                self.board.leave(key, place, was=SENDING if job.route is not None and job.route.sending else None)
            self._ours.discard(key)
            self._wake(key)
        if self.by == "patient":
            self.board.unmark(place)              # never read (a recovered outcome): still marked

    def lost(self, job) -> None:
        """The claimed file vanished (or was handed back as not a regular file)."""
        key, place = self._key(job), place_of(job.claim.name, job.claim.mtime)
        if key is None and job.route is None and self.by == "patient":
            self._forget(place)
        if key is not None:
            self.board.leave(key, place)
            self._ours.discard(key)
            self._wake(key)
        if self.by == "patient":
            self.board.unmark(place)
            self._wake(None)

    def _forget(self, place: str) -> None:
        """The entry of a file whose key this process never learnt (Redox accepted it before a
        restart, so it is finished without being read): found by its place, under any key."""
        for key in self.board.forget(place):
            self._wake(key)

    # -- the runner's side -----------------------------------------------------------------
    def _wake(self, key: Optional[str]) -> None:
        """A file of ``key`` moved on (None: an unread mark went): parked files ask now."""
        if self.parking is not None:
            self.parking.wake(key)

    def crowded(self) -> bool:
        """Enough files parked (waiting for their turn, not for a hold): claim no more now."""
        return self.parking is not None and self.parking.waiting() >= self.timing.cap
