"""The file the host's processes share their rate-limit budget through: its layout, and how it is
found, opened and cleaned up (sharedbucket.py makes the decisions in it).

Times in it are those of host_clock(): ``time.monotonic()`` where the kernel tells the boot id
(one clock for every process of a boot), named in the file's name so that a reboot starts a new
file; else the wall clock.
"""

from __future__ import annotations

import errno
import glob
import logging
import math
import os
import struct
import time
import zlib
from typing import Callable, NamedTuple, Optional

log = logging.getLogger("pipeline.redox.ratelimit")

# departures the shared file remembers: the window guard needs the one ``rate`` back, so a
# shared limit is at most RING requests per second (Redox's is 25)
RING = 1024
BOOT_ID = "/proc/sys/kernel/random/boot_id"
STALE_SECONDS = 86400.0        # another boot's file untouched this long is removed

# the file: header (magic, ring size, the oldest waiter's id, departures so far, next allowed
# time by the spacing, end of a 429's pause, the oldest waiter's first refusal and when it will
# ask again, CRC-32 of what precedes it), then RING little-endian doubles from SLOT0: departure
# n is slot n % RING
MAGIC = b"rdxrate3"
HEADER = struct.Struct("<8sIIqdddd")
CRC = struct.Struct("<I")
SLOT = struct.Struct("<d")
SLOT0 = 64
FILE_SIZE = SLOT0 + RING * SLOT.size
NOBODY = (0, math.inf, -math.inf)          # no waiter: (id, since, until)


class State(NamedTuple):
    """What the header holds (besides its magic, ring size and checksum)."""
    departures: int                           # departures so far
    next_at: float                            # the earliest the next may leave, by the spacing
    paused_until: float                       # the end of a 429's pause
    waiter: tuple[int, float, float]          # the oldest waiter: (id, since, until)


FRESH = State(0, -math.inf, -math.inf, NOBODY)


def slot_at(n: int) -> int:
    """Where departure ``n`` is kept in the file."""
    return SLOT0 + (n % RING) * SLOT.size


def store(fd: int, state: State) -> None:
    """Write the header (and its checksum) of ``state``."""
    waiter_id, since, until = state.waiter
    head = HEADER.pack(MAGIC, RING, waiter_id, state.departures, state.next_at, state.paused_until,
                        since, until)
    os.pwrite(fd, head + CRC.pack(zlib.crc32(head)), 0)


def header_problem(raw: bytes) -> Optional[str]:
    """What is wrong with the header ``raw`` (with its checksum), or None."""
    if len(raw) != HEADER.size + CRC.size:
        return "a short header"
    head, crc = raw[:HEADER.size], CRC.unpack_from(raw, HEADER.size)[0]
    magic, ring, _waiter, count, next_at, paused, since, until = HEADER.unpack(head)
    if magic != MAGIC or ring != RING:
        return "not a rate-limit file of this version"
    if zlib.crc32(head) != crc:
        return "a bad checksum"
    if count < 0 or any(math.isnan(t) for t in (next_at, paused, since, until)) \
            or math.inf in (next_at, paused):
        return "impossible values"
    return None


def process_id() -> int:
    """A process's name in the file: random, not the pid (containers reuse pids, pid 1
    above all), never 0 (nobody)."""
    return int.from_bytes(os.urandom(4), "little") or 1


def open_state(path: str) -> int:
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


def remove_stale_files(state_path: str, keep: str) -> None:
    """Files of earlier boots, untouched for a day, are removed (a live one is written to at
    every request)."""
    for name in glob.glob(glob.escape(state_path) + ".ratelimit-*"):
        try:
            if name != keep and time.time() - os.lstat(name).st_mtime > STALE_SECONDS:
                os.unlink(name)
        except OSError:
            pass


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
