"""The host's rate-limit budget: every process of the host draws from one record of recent
departures (the next time a request may leave, and the last departures in a ring), kept in a
small file beside the journal (ratefile.py).

The file is read and written under an exclusive ``flock`` for the few microseconds one decision
takes, so any number of services sharing a state folder draw from one budget, first come, first
served (threads in the order they asked; between processes the oldest waiter, which the file
names, goes first). Times in that file are ``time.monotonic()`` values: on Linux that is
CLOCK_MONOTONIC, one clock for every process of a boot (containers included, unless they run
in a time namespace of their own), which a change of the wall clock does not move. The file's
name carries the kernel's boot id, so a reboot starts a new file instead of reading times of
a clock that has restarted; where there is no boot id the file holds wall-clock times and a
time found in the future is taken for a clock step.

The file can always be recovered: a process killed while holding the lock loses it with the
process (the kernel drops a dead process's flock), and a file that cannot be read or makes no
sense (wrong size, bad checksum, a departure in the future) is reset, holding everyone back for
one second so that no second can hold both the forgotten departures and new ones. When the
file cannot be used at all, the process falls back to limiting itself alone (LocalBucket), says
so, and tries the file again a little later.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import threading
import weakref
from typing import Callable, Optional

from pipeline.redox.ratebucket import MARGIN, LocalBucket, Paused, window_size
from pipeline.redox.ratefile import (
    CRC,
    FILE_SIZE,
    FRESH,
    HEADER,
    NOBODY,
    RING,
    SLOT,
    State,
    header_problem,
    open_state,
    process_id,
    slot_at,
    store,
)

log = logging.getLogger("pipeline.redox.ratelimit")

REOPEN_CHECK_SECONDS = 1.0     # how often a process checks that the file is still the path's
RETRY_FILE_SECONDS = 10.0      # after the file failed, how long this process limits itself alone

# Between processes, the oldest waiter goes first: a process that may go but sees an older
# waiter (one that said when it would ask again, and is not past that by more than
# WAITER_SLACK) lets it have the slot, asking again after DEFER, for at most MAX_DEFER.
DEFER = 0.002
MAX_DEFER = 0.05
WAITER_SLACK = 0.1


class SharedBucket:
    """The host's record of its departures, in the file at ``path`` (created when missing).

    Every decision is made under an exclusive flock, with the clock read once the lock is held,
    so departures are recorded in the order they were allowed. flock does not exclude threads
    that share one open file, hence ``_io`` as well; a forked child opens the file afresh.
    """

    def __init__(self, path: str, per_second: float, clock: Callable[[], float], max_pause: float):
        self.path, self.per_second, self.clock, self.max_pause = path, per_second, clock, max_pause
        self._interval = 1.0 / per_second
        self._k = min(window_size(per_second), RING)
        self._fallback = LocalBucket(per_second, clock, max_pause)
        self._io = threading.Lock()
        self._fd: Optional[int] = None
        self._pid = 0
        self._check_at = -math.inf
        self._file_again_at = -math.inf
        self._complained = False
        self._id = process_id()
        self._since: Optional[float] = None      # when this process's current request was refused
        self._deferring: Optional[float] = None  # when it first let an older waiter go first
        self.resets = 0                 # how often a corrupt or implausible file was reset
        self._mine = threading.local()  # this thread's last departure: (in the file?, number)
        _LIVE.add(self)

    # -- the two operations ----------------------------------------------------------------------
    def take(self, patience: float = math.inf) -> float:
        with self._io:
            fd = self._usable()
            if fd is None:
                self._mine.last = (False, None)
                return self._fallback.take(patience)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    return self._take_locked(fd, patience)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                self._give_up_file(exc)
                self._mine.last = (False, None)
                return self._fallback.take(patience)

    def restamp(self, late_by: float) -> None:
        """As LocalBucket.restamp, in the file: the slot of this thread's last departure
        (while the ring still holds it) is moved ``late_by`` later."""
        in_file, n = getattr(self._mine, "last", (False, None))
        if not in_file:
            self._fallback.restamp(late_by)
            return
        if late_by <= 0:
            return
        with self._io:
            fd = self._usable()
            if fd is None:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    now = self.clock()
                    count = self._load(fd, now).departures
                    if n is not None and 0 <= count - 1 - n < self._k:
                        where = slot_at(n)
                        raw = os.pread(fd, SLOT.size, where)
                        if len(raw) == SLOT.size:
                            left = min(SLOT.unpack(raw)[0] + late_by, now)
                            os.pwrite(fd, SLOT.pack(left), where)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                self._give_up_file(exc)

    def hold_until(self, seconds: float) -> None:
        with self._io:
            fd = self._usable()
            if fd is None:
                self._fallback.hold_until(seconds)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    now = self.clock()
                    state = self._load(fd, now)
                    if now + seconds > state.paused_until:
                        store(fd, state._replace(paused_until=now + seconds))
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                self._give_up_file(exc)
                self._fallback.hold_until(seconds)

    def _take_locked(self, fd: int, patience: float) -> float:
        now = self.clock()
        state = self._load(fd, now)
        count, waiter = state.departures, state.waiter
        paused = state.paused_until - now
        if paused > patience:
            raise Paused(paused)
        earliest = max(state.next_at, state.paused_until)
        if count >= self._k:
            raw = os.pread(fd, SLOT.size, slot_at(count - self._k))
            oldest = SLOT.unpack(raw)[0] if len(raw) == SLOT.size else math.nan
            if not (math.isfinite(oldest) and oldest <= now + 1.0):
                return self._reset(fd, now, "a departure in the future or unreadable")
            earliest = max(earliest, oldest + 1.0 + MARGIN)
        since = now if self._since is None else self._since
        waiter_id, waiter_since, waiter_until = waiter
        older_waiting = (waiter_id not in (0, self._id) and waiter_since < since
                         and now <= waiter_until + WAITER_SLACK)
        if now < earliest:
            wait = earliest - now
            self._since = since
            if not older_waiting:            # this process is now the oldest waiter
                store(fd, State(count, state.next_at, state.paused_until,
                                (self._id, since, now + wait)))
            return wait
        if older_waiting:
            if self._deferring is None:
                self._deferring = now
            if now - self._deferring < MAX_DEFER:
                self._since = since
                return DEFER
        os.pwrite(fd, SLOT.pack(now), slot_at(count))
        self._mine.last = (True, count)
        store(fd, State(count + 1, now + self._interval, state.paused_until,
                        NOBODY if waiter_id == self._id else waiter))
        self._since = self._deferring = None
        return 0.0

    # -- the file ---------------------------------------------------------------------------------
    def _load(self, fd: int, now: float) -> State:
        """The header; a missing header is a new file, a header that makes no sense is reset
        (and holds everyone back a second)."""
        raw = os.pread(fd, HEADER.size + CRC.size, 0)
        if not raw:
            os.ftruncate(fd, FILE_SIZE)
            store(fd, FRESH)
            return FRESH
        problem = header_problem(raw)
        if problem is None and os.fstat(fd).st_size != FILE_SIZE:
            problem = "the wrong size"
        if problem is None:
            _magic, _ring, waiter_id, count, next_at, paused, since, until = HEADER.unpack_from(raw)
            if max(next_at - self._interval, paused) > now + self.max_pause + 2.0:
                problem = "a wait longer than any this process would set (a clock step?)"
            else:
                return State(count, next_at, paused, (waiter_id, since, until))
        return FRESH._replace(next_at=now + self._reset(fd, now, problem))

    def _reset(self, fd: int, now: float, problem: str) -> float:
        """Forget the departures, and let nobody leave for a second (plus the margin): a second
        then holds either forgotten departures or new ones, never both. Returns that wait."""
        self.resets += 1
        log.warning("the shared rate-limit file made no sense; reset it",
                    extra={"path": self.path, "error": problem})
        os.ftruncate(fd, FILE_SIZE)
        wait = 1.0 + MARGIN
        store(fd, FRESH._replace(next_at=now + wait))
        return wait

    def _usable(self) -> Optional[int]:
        """The open file, opened (again) when needed: first use, after a fork, when the path
        now names another file (removed or replaced), and a while after the file failed."""
        now = self.clock()
        if self._pid != os.getpid():
            self._after_fork()
        if self._fd is None and now < self._file_again_at:
            return None
        if self._fd is not None and now >= self._check_at:
            self._check_at = now + REOPEN_CHECK_SECONDS
            try:
                same = os.path.samestat(os.fstat(self._fd), os.stat(self.path))
            except OSError:
                same = False
            if not same:
                self._close()
        if self._fd is None:
            try:
                self._fd = open_state(self.path)
            except OSError as exc:
                self._give_up_file(exc)
                return None
            self._check_at = now + REOPEN_CHECK_SECONDS
            if self._complained:
                log.warning("the shared rate-limit file works again", extra={"path": self.path})
                self._complained = False
        return self._fd

    def _give_up_file(self, exc: OSError) -> None:
        self._close()
        self._file_again_at = self.clock() + RETRY_FILE_SECONDS
        if not self._complained:
            self._complained = True
            log.warning("cannot use the shared rate-limit file: this process limits itself "
                        "alone for now (other processes on this host are not counted)",
                        extra={"path": self.path, "error": exc.strerror or str(exc)})

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _after_fork(self) -> None:
        """A forked child shares its parent's open file (and so its flock): open its own."""
        self._io = threading.Lock()
        self._fallback._lock = threading.Lock()
        self._id = process_id()
        self._since = self._deferring = None
        if self._pid:
            self._close()          # our copy only: the parent's lock is the parent's
        self._pid = os.getpid()


_LIVE: "weakref.WeakSet[SharedBucket]" = weakref.WeakSet()


def _forget_parent_files() -> None:
    for bucket in list(_LIVE):
        bucket._after_fork()


os.register_at_fork(after_in_child=_forget_parent_files)
