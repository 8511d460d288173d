"""The limiter that keeps Redox requests under ``redox.max_requests_per_second``, per host.

Redox allows 7,500 requests per 5-minute window per IP (about 25/s) and counts every request:
SENDs, uploads, token requests and Platform API look-ups. Requests are spaced at 1/rate and,
as a second guard, never more than ``rate`` depart in any one-second window, so the busiest
second never exceeds the limit. A 429's Retry-After pauses everyone, for at most ``max_pause``
seconds: whatever a reply says, it cannot stop the pipeline for longer than the retry policy's
own longest wait; a caller with less ``patience`` is told so at once (:class:`Paused`) instead
of sleeping through it.

*Everyone* is every process of the host. The record of recent departures (the next time a
request may leave, and the last departures in a ring) lives in a small file beside the journal,
read and written under an exclusive ``flock`` for the few microseconds one decision takes, so
any number of services sharing a state folder draw from one budget, first come, first served
(threads in the order they asked; between processes the oldest waiter, which the file names,
goes first). Times in that file are ``time.monotonic()`` values: on Linux that is
CLOCK_MONOTONIC, one clock for every process of a boot (containers included, unless they run
in a time namespace of their own), which a change of the wall clock does not move. The file's
name carries the kernel's boot id, so a reboot starts a new file instead of reading times of
a clock that has restarted; where there is no boot id the file holds wall-clock times and a
time found in the future is taken for a clock step.

The file can always be recovered: a process killed while holding the lock loses it with the
process (the kernel drops a dead process's flock), and a file that cannot be read or makes no
sense (wrong size, bad checksum, a departure in the future) is reset, holding everyone back for
one second so that no second can hold both the forgotten departures and new ones. When the
file cannot be used at all, the process falls back to limiting itself alone, says so, and tries
the file again a little later. With no limit (0) nothing is shared: a 429's pause then holds
back this process only.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import glob
import logging
import math
import os
import struct
import threading
import time
import weakref
import zlib
from typing import Any, Callable, NamedTuple, Optional, Protocol

from pipeline.errors import TransientDelivery
from pipeline.redox.replies import retry_after

log = logging.getLogger(__name__)

MARGIN = 0.03   # seconds: departure-to-arrival jitter on a loaded machine
# departures the shared file remembers: the window guard needs the one ``rate`` back, so a
# shared limit is at most RING requests per second (Redox's is 25)
RING = 1024
REOPEN_CHECK_SECONDS = 1.0     # how often a process checks that the file is still the path's
RETRY_FILE_SECONDS = 10.0      # after the file failed, how long this process limits itself alone
BOOT_ID = "/proc/sys/kernel/random/boot_id"
STALE_SECONDS = 86400.0        # another boot's file untouched this long is removed

# Between processes, the oldest waiter goes first: a process that may go but sees an older
# waiter (one that said when it would ask again, and is not past that by more than
# WAITER_SLACK) lets it have the slot, asking again after DEFER, for at most MAX_DEFER.
DEFER = 0.002
MAX_DEFER = 0.05
WAITER_SLACK = 0.1

# the file: header (magic, ring size, the oldest waiter's id, departures so far, next allowed
# time by the spacing, end of a 429's pause, the oldest waiter's first refusal and when it will
# ask again, CRC-32 of what precedes it), then RING little-endian doubles from SLOT0: departure
# n is slot n % RING
_MAGIC = b"rdxrate3"
_HEADER = struct.Struct("<8sIIqdddd")
_CRC = struct.Struct("<I")
_SLOT = struct.Struct("<d")
_SLOT0 = 64
FILE_SIZE = _SLOT0 + RING * _SLOT.size
_NOBODY = (0, math.inf, -math.inf)          # no waiter: (id, since, until)


class _State(NamedTuple):
    """What the header holds (besides its magic, ring size and checksum)."""
    departures: int                           # departures so far
    next_at: float                            # the earliest the next may leave, by the spacing
    paused_until: float                       # the end of a 429's pause
    waiter: tuple[int, float, float]          # the oldest waiter: (id, since, until)


_FRESH = _State(0, -math.inf, -math.inf, _NOBODY)


class Paused(Exception):
    """Everyone is held back (a 429's Retry-After) for ``seconds`` more, longer than the caller
    was willing to wait. Nothing was sent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"paused for {seconds:.3f} s more")


class _Bucket(Protocol):
    def take(self, patience: float = math.inf) -> float: ...
    def hold_until(self, seconds: float) -> None: ...


class LocalBucket:
    """One process's own record of its departures, in memory."""

    def __init__(self, per_second: float, clock: Callable[[], float], max_pause: float):
        self.per_second, self.clock, self.max_pause = per_second, clock, max_pause
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._window: collections.deque[float] = collections.deque(
            maxlen=window_size(per_second) if per_second > 0 else 1)
        self._next = -math.inf
        self._paused_until = -math.inf
        self._lock = threading.Lock()

    def take(self, patience: float = math.inf) -> float:
        """0 when a request may leave now (and it is counted as leaving now), else how long to
        wait before asking again; Paused when a pause has longer than ``patience`` to go."""
        with self._lock:
            now = self.clock()
            paused = self._paused_until - now
            if paused > patience:
                raise Paused(paused)
            earliest = max(self._next, self._paused_until)
            if self.per_second > 0 and len(self._window) == self._window.maxlen:
                earliest = max(earliest, self._window[0] + 1.0 + MARGIN)
            if now >= earliest:
                if self.per_second > 0:
                    self._window.append(now)
                    self._next = now + self._interval
                return 0.0
            return earliest - now

    def hold_until(self, seconds: float) -> None:
        """Nobody leaves for ``seconds`` from now (already clamped by the caller)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)


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
        self._id = _process_id()
        self._since: Optional[float] = None      # when this process's current request was refused
        self._deferring: Optional[float] = None  # when it first let an older waiter go first
        self.resets = 0                 # how often a corrupt or implausible file was reset
        _LIVE.add(self)

    # -- the two operations ----------------------------------------------------------------------
    def take(self, patience: float = math.inf) -> float:
        with self._io:
            fd = self._usable()
            if fd is None:
                return self._fallback.take(patience)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    return self._take_locked(fd, patience)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                self._give_up_file(exc)
                return self._fallback.take(patience)

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
                        self._store(fd, state._replace(paused_until=now + seconds))
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
            raw = os.pread(fd, _SLOT.size, _SLOT0 + ((count - self._k) % RING) * _SLOT.size)
            oldest = _SLOT.unpack(raw)[0] if len(raw) == _SLOT.size else math.nan
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
                self._store(fd, _State(count, state.next_at, state.paused_until,
                                       (self._id, since, now + wait)))
            return wait
        if older_waiting:
            if self._deferring is None:
                self._deferring = now
            if now - self._deferring < MAX_DEFER:
                self._since = since
                return DEFER
        os.pwrite(fd, _SLOT.pack(now), _SLOT0 + (count % RING) * _SLOT.size)
        self._store(fd, _State(count + 1, now + self._interval, state.paused_until,
                               _NOBODY if waiter_id == self._id else waiter))
        self._since = self._deferring = None
        return 0.0

    # -- the file ---------------------------------------------------------------------------------
    def _load(self, fd: int, now: float) -> "_State":
        """The header; a missing header is a new file, a header that makes no sense is reset
        (and holds everyone back a second)."""
        raw = os.pread(fd, _HEADER.size + _CRC.size, 0)
        if not raw:
            os.ftruncate(fd, FILE_SIZE)
            self._store(fd, _FRESH)
            return _FRESH
        problem = _header_problem(raw)
        if problem is None and os.fstat(fd).st_size != FILE_SIZE:
            problem = "the wrong size"
        if problem is None:
            _magic, _ring, waiter_id, count, next_at, paused, since, until = _HEADER.unpack_from(raw)
            if max(next_at - self._interval, paused) > now + self.max_pause + 2.0:
                problem = "a wait longer than any this process would set (a clock step?)"
            else:
                return _State(count, next_at, paused, (waiter_id, since, until))
        return _FRESH._replace(next_at=now + self._reset(fd, now, problem))

    def _reset(self, fd: int, now: float, problem: str) -> float:
        """Forget the departures, and let nobody leave for a second (plus the margin): a second
        then holds either forgotten departures or new ones, never both. Returns that wait."""
        self.resets += 1
        log.warning("the shared rate-limit file made no sense; reset it",
                    extra={"path": self.path, "error": problem})
        os.ftruncate(fd, FILE_SIZE)
        wait = 1.0 + MARGIN
        self._store(fd, _FRESH._replace(next_at=now + wait))
        return wait

    def _store(self, fd: int, state: "_State") -> None:
        waiter_id, since, until = state.waiter
        head = _HEADER.pack(_MAGIC, RING, waiter_id, state.departures, state.next_at, state.paused_until,
                            since, until)
        os.pwrite(fd, head + _CRC.pack(zlib.crc32(head)), 0)

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
                self._fd = _open_state(self.path)
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
        self._id = _process_id()
        self._since = self._deferring = None
        if self._pid:
            self._close()          # our copy only: the parent's lock is the parent's
        self._pid = os.getpid()


_LIVE: "weakref.WeakSet[SharedBucket]" = weakref.WeakSet()


def _forget_parent_files() -> None:
    for bucket in list(_LIVE):
        bucket._after_fork()


os.register_at_fork(after_in_child=_forget_parent_files)


def _header_problem(raw: bytes) -> Optional[str]:
    if len(raw) != _HEADER.size + _CRC.size:
        return "a short header"
    head, crc = raw[:_HEADER.size], _CRC.unpack_from(raw, _HEADER.size)[0]
    magic, ring, _waiter, count, next_at, paused, since, until = _HEADER.unpack(head)
    if magic != _MAGIC or ring != RING:
        return "not a rate-limit file of this version"
    if zlib.crc32(head) != crc:
        return "a bad checksum"
    if count < 0 or any(math.isnan(t) for t in (next_at, paused, since, until)) \
            or math.inf in (next_at, paused):
        return "impossible values"
    return None


def _process_id() -> int:
    """A process's name in the file: random, not the pid (containers reuse pids, pid 1
    above all), never 0 (nobody)."""
    return int.from_bytes(os.urandom(4), "little") or 1


def _open_state(path: str) -> int:
    """Open (creating) the shared file, owner-only. A folder that is missing is made; a path
    this process may not open (another user's file, a symlink) is removed and made again."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.ELOOP):
            raise
        log.warning("the shared rate-limit file cannot be opened; making it again",
                    extra={"path": path, "error": exc.strerror})
        os.unlink(path)
    return os.open(path, flags, 0o600)


def _remove_stale_files(state_path: str, keep: str) -> None:
    """Files of earlier boots, untouched for a day, are removed (a live one is written to at
    every request)."""
    for name in glob.glob(glob.escape(state_path) + ".ratelimit-*"):
        try:
            if name != keep and time.time() - os.lstat(name).st_mtime > STALE_SECONDS:
                os.unlink(name)
        except OSError:
            pass


def window_size(per_second: float) -> int:
    """How many departures one second may hold: the limit, rounded down, at least one."""
    return max(1, math.floor(per_second))


def host_clock() -> tuple[Callable[[], float], str]:
    """The clock every process of this host agrees on, and the tag that names the file it is
    valid for: (time.monotonic, the boot id) where the kernel tells the boot id, else
    (time.time, "wall")."""
    try:
        with open(BOOT_ID, encoding="ascii") as handle:
            boot = "".join(c for c in handle.read() if c.isalnum())[:32]
    except OSError:
        boot = ""
    return (time.monotonic, "boot-" + boot) if boot else (time.time, "wall")


class _Turns:
    """A first-come, first-served lock: the threads of one process take their turns in order
    (threading.Lock promises no order). The holder hands the turn straight to the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> None:
        with self._lock:
            if not self._busy:
                self._busy = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiting.append(gate)
        try:
            gate.acquire()                  # released when the turn is handed to us
        except BaseException:
            with self._lock:
                if gate in self._waiting:   # never got it: just leave the queue
                    self._waiting.remove(gate)
                    raise
            self.__exit__()                 # got it as we were interrupted: pass it on
            raise

    def __exit__(self, *_exc: Any) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._busy = False


class RateLimiter:
    """``acquire()`` blocks the calling thread until it may send. ``per_second`` 0 = no limit;
    ``max_pause``: the longest :meth:`pause_for` holds everyone back (seconds); ``shared_path``:
    the file the host's processes share the budget through (None: this process alone).
    Threads are served in the order they asked."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_pause: float = 300.0,
                 shared_path: Optional[str] = None):
        self.per_second = per_second
        self.max_pause = max(0.0, max_pause)
        self.clock, self.sleep = clock, sleep
        self.shared_path = shared_path if per_second > 0 else None
        self._bucket: _Bucket = LocalBucket(per_second, clock, self.max_pause)
        if self.shared_path:
            self._bucket = SharedBucket(self.shared_path, per_second, clock, self.max_pause)
        self._turns = _Turns()
        _LIMITERS.add(self)

    @classmethod
    def for_host(cls, per_second: float, state_path: str, max_pause: float = 300.0) -> "RateLimiter":
        """The limiter every process of this host using the journal at ``state_path`` shares:
        its file sits beside the journal and is named for the boot whose clock it holds."""
        clock, tag = host_clock()
        path = f"{state_path}.ratelimit-{tag}"
        if per_second > 0:
            _remove_stale_files(state_path, keep=path)
        return cls(per_second, clock=clock, max_pause=max_pause, shared_path=path)

    def acquire(self, patience: float = math.inf) -> float:
        """Wait until a request may leave now, and count it as leaving now. Returns the time
        this thread slept for the limit.

        ``patience``: the longest pause (:meth:`pause_for`) the caller will sit out; a longer
        one raises :class:`Paused` at once (the spacing of the rate limit is always waited for).

        What is counted are actual departures, not planned ones: a thread that wakes late
        must not let the next one leave early. MARGIN absorbs the few milliseconds between
        leaving here and arriving at Redox.
        """
        waited = 0.0
        with self._turns:
            while True:
                wait = self._bucket.take(patience)
                if wait <= 0:
                    return waited
                self.sleep(wait)
                waited += wait

    def pause_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a 429 with Retry-After), clamped to
        [0, max_pause]; NaN pauses nobody. Shared: every process of the host waits."""
        if math.isnan(seconds):
            return
        self._bucket.hold_until(min(self.max_pause, max(0.0, seconds)))

    def _after_fork(self) -> None:
        self._turns = _Turns()


_LIMITERS: "weakref.WeakSet[RateLimiter]" = weakref.WeakSet()


def _new_turns_after_fork() -> None:
    for limiter in list(_LIMITERS):
        limiter._after_fork()


os.register_at_fork(after_in_child=_new_turns_after_fork)


class LimitedTransport:
    """A transport whose every request first waits for ``limiter``, and whose 429 pauses
    everyone: for the requests that do not go through a BearerClient (token requests), which
    count against Redox's per-IP budget like any other. A pause longer than ``patience`` is not
    sat out: the request is not sent (TransientDelivery, status 429, not seen)."""

    def __init__(self, transport: Any, limiter: RateLimiter, patience: float = math.inf):
        self.transport, self.limiter, self.patience = transport, limiter, patience

    def request(self, method: str, url: str, **kw: Any) -> Any:
        try:
            self.limiter.acquire(patience=self.patience)
        except Paused as paused:
            raise TransientDelivery(
                "not sent: Redox answered HTTP 429 and asked every request to wait "
                f"(Retry-After), {paused.seconds:.0f} s more", status=429,
                retry_after=paused.seconds) from None
        reply = self.transport.request(method, url, **kw)
        if reply.status == 429:
            wait = retry_after(reply.headers, self.limiter.max_pause)
            self.limiter.pause_for(wait if wait is not None else 1.0)
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
