"""The local-folder source: inbox, processing, done and failed on one filesystem.

This is the storage seam for ``source.kind: local`` (S3 has its own store with the same
methods). Ownership of claimed files is by folder: each process claims into
``processing/<owner>/`` and holds an exclusive ``flock`` on ``processing/<owner>/.lock`` for
its lifetime, so anyone can tell a live owner from an abandoned claim (design.md: claim).
"""

from __future__ import annotations

import fcntl
import fnmatch
import functools
import json
import os
import re
import stat
import tempfile
import time
from typing import BinaryIO, Iterator

from pipeline import failpoints, fsops
from pipeline.errors import ClaimLost, StorageError
from pipeline.values import Claim, Drop

_NEVER_OURS = (".tmp", ".part")
SIDECAR_SUFFIX = ".redox.json"
SYNC_INTERVAL = 0.5   # seconds between directory fsyncs of one output folder


def is_candidate_name(name: str, pattern: str) -> bool:
    """Names that count: match ``pattern``, and are never hidden, temporary or a sidecar."""
    return (not name.startswith(".") and not name.endswith(_NEVER_OURS)
            and not name.endswith(SIDECAR_SUFFIX) and "\x00" not in name
            and _matcher(pattern)(name) is not None)


@functools.lru_cache(maxsize=32)
def _matcher(pattern: str):
    return re.compile(fnmatch.translate(pattern)).match


class LocalStore:
    """Inbox and output folders on the local filesystem.

    ``owner`` names this process's claim folder. ``prepare()`` must be called before claims.
    """

    kind = "local"

    def __init__(self, inbox: str, processing: str, done: str, failed: str, pattern: str, owner: str):
        self.inbox, self.processing, self.pattern, self.owner = inbox, processing, pattern, owner
        self.folders = {"done": done, "failed": failed}
        self.own_dir = os.path.join(processing, owner)
        self._lock_fd: int | None = None
        self._synced: dict[str, float] = {}
        self._dirty: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create missing folders and this process's claim folder, holding its lock."""
        for folder in (self.inbox, self.processing, *self.folders.values()):
            fsops.ensure_dir(folder)
        if self._lock_fd is not None:
            return
        # Built under a hidden name, locked, then renamed into place: nobody can mistake a
        # half-made claim folder for an abandoned one.
        tmp = tempfile.mkdtemp(prefix=".new-", dir=self.processing)
        fd = os.open(os.path.join(tmp, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                 "since": time.time()}).encode())
        os.rename(tmp, self.own_dir)
        self._lock_fd = fd

    def close(self) -> None:
        """Remove this process's claim folder if it is empty, and let go of its lock."""
        for folder in self._dirty:
            fsops.fsync_dir(folder)
        self._dirty.clear()
        if self._lock_fd is None:
            return
        leftovers = [n for n in _names(self.own_dir) if n != ".lock"]
        if not leftovers:
            fsops._unlink_quietly(os.path.join(self.own_dir, ".lock"))
            try:
                os.rmdir(self.own_dir)
            except OSError:
                pass
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- discover / claim ------------------------------------------------------------------
    def scan(self) -> Iterator[Drop]:
        """Regular files in the inbox whose names count (one directory listing, lstat only)."""
        try:
            entries = os.scandir(self.inbox)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                if not is_candidate_name(entry.name, self.pattern):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield Drop(entry.name, info.st_size, info.st_mtime)

    def stat(self, name: str) -> Drop | None:
        """The inbox file ``name`` as it is now, or None if it is gone or not a regular file."""
        try:
            info = os.lstat(os.path.join(self.inbox, name))
        except OSError:
            return None
        return Drop(name, info.st_size, info.st_mtime) if stat.S_ISREG(info.st_mode) else None

    def claim(self, drop: Drop) -> Claim:
        """Atomically move the inbox file into our claim folder. ClaimLost if someone was first."""
        src = os.path.join(self.inbox, drop.name)
        dst = self._free_slot(drop.name)
        try:
            os.rename(src, dst)   # atomic on one filesystem: whoever's rename succeeds owns it
        except FileNotFoundError:
            raise ClaimLost("the file vanished or another worker claimed it", src) from None
        except OSError as exc:
            raise StorageError(f"cannot claim ({exc.strerror})", src) from None
        return Claim(name=drop.name, location=dst, source=src, size=drop.size,
                     mtime=drop.mtime, claimed_at=time.time())

    def _free_slot(self, name: str) -> str:
        """Our claim folder is ours alone, so check-then-use is safe within this process."""
        dst = os.path.join(self.own_dir, name)
        n = 1
        while os.path.lexists(dst):
            dst = os.path.join(self.own_dir, f"{n}~{name}")
            n += 1
        return dst

    def open(self, claim: Claim) -> BinaryIO:
        """Open the claimed file for reading (regular files only; never through a symlink)."""
        return fsops.open_regular(claim.location)

    def release(self, claim: Claim) -> str:
        """Put a claimed file back in the inbox (under its own name if free). Returns the path."""
        for candidate in _candidates(claim.name):
            dst = os.path.join(self.inbox, candidate)
            try:
                fsops.move_noreplace(claim.location, dst)
                return dst
            except FileExistsError:
                continue
        raise StorageError("no free name to release to", claim.location)  # pragma: no cover

    # -- finish ----------------------------------------------------------------------------
    def finish(self, claim: Claim, status: str, sidecar: bytes, claim_id: str) -> str:
        """Write the sidecar, then move the file beside it: that move is the commit point.

        Never overwrites: a taken name gets a ``-N`` suffix. A sidecar left by our own earlier,
        interrupted finish (same ``claim_id``, no file beside it) is reused. Returns the path.
        """
        folder = self.folders[status]
        fsops.ensure_dir(folder)
        for candidate in _candidates(os.path.basename(claim.name)):
            dest = os.path.join(folder, candidate)
            if self._already_moved(dest, claim_id):
                fsops._unlink_quietly(claim.location)     # a crash between link and unlink
                return dest
            if not self._write_sidecar(dest, sidecar, claim_id):
                continue
            failpoints.reached("after_sidecar")
            try:
                fsops.move_noreplace(claim.location, dest)
            except FileExistsError:
                fsops._unlink_quietly(dest + SIDECAR_SUFFIX)
                continue
            self._sync_soon(folder)
            return dest
        raise StorageError("no free name to finish to", folder)  # pragma: no cover

    @staticmethod
    def _already_moved(dest: str, claim_id: str) -> bool:
        """Our sidecar is written before our move, so a file beside a sidecar that carries our
        claim_id is ours: an earlier finish got as far as the move and was interrupted."""
        return os.path.lexists(dest) and _sidecar_claim_id(dest + SIDECAR_SUFFIX) == claim_id

    def find_finished(self, name: str, status: str, claim_id: str) -> str | None:
        """Where an interrupted finish put the file ``name`` for ``claim_id``, if it got there."""
        for candidate in _candidates(os.path.basename(name)):
            dest = os.path.join(self.folders[status], candidate)
            if not os.path.lexists(dest + SIDECAR_SUFFIX):
                return None
            if self._already_moved(dest, claim_id):
                return dest
        return None  # pragma: no cover

    def _sync_soon(self, folder: str) -> None:
        """Make moves into ``folder`` durable, batched: at most one directory fsync per folder
        every SYNC_INTERVAL (and at close). A file's own bytes and its sidecar are fsynced
        before the move, so what a power cut can undo is only a recent move, which leaves the
        file in processing/ for recovery: nothing is lost."""
        now = time.monotonic()
        if now - self._synced.get(folder, 0.0) >= SYNC_INTERVAL:
            self._synced[folder] = now
            fsops.fsync_dir(folder)
        else:
            self._dirty.add(folder)

    def _write_sidecar(self, dest: str, sidecar: bytes, claim_id: str) -> bool:
        if os.path.lexists(dest):
            return False
        path = dest + SIDECAR_SUFFIX
        try:
            fsops.write_atomic(path, sidecar, replace=False)
            return True
        except FileExistsError:
            if _sidecar_claim_id(path) != claim_id:
                return False
        except OSError as exc:
            raise StorageError(f"cannot write sidecar ({exc.strerror})", path) from None
        fsops.write_atomic(path, sidecar, replace=True)   # ours, from an interrupted finish
        return True

    # -- recovery --------------------------------------------------------------------------
    def adopt_orphans(self) -> list[Claim]:
        """Move abandoned claims into our claim folder and return them.

        Abandoned: files directly in ``processing/`` (nobody's), and the contents of claim
        folders whose owner no longer holds its lock (the process died).
        """
        adopted: list[Claim] = []
        for name in _names(self.processing):
            path = os.path.join(self.processing, name)
            if name.startswith(".") or path == self.own_dir:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                adopted += self._adopt_folder(path)
            elif is_candidate_name(name, "*"):
                adopted += self._adopt_file(path, name)
        return adopted

    def own_claims(self) -> list[str]:
        """Paths of the files now in our claim folder."""
        return [os.path.join(self.own_dir, n) for n in _names(self.own_dir) if n != ".lock"]

    def has_claims(self) -> bool:
        """Is anything claimed in processing (ours, someone else's, or nobody's)?"""
        for name in _names(self.processing):
            path = os.path.join(self.processing, name)
            if name.startswith("."):
                continue
            if not os.path.isdir(path) or any(n != ".lock" for n in _names(path)):
                return True
        return False

    def _adopt_folder(self, folder: str) -> list[Claim]:
        lock = os.path.join(folder, ".lock")
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return []          # its owner is alive: leave its claims alone
        try:
            claims = []
            for name in _names(folder):
                if name != ".lock":
                    claims += self._adopt_file(os.path.join(folder, name), _original_name(name))
            fsops._unlink_quietly(lock)
            try:
                os.rmdir(folder)
            except OSError:
                pass
            return claims
        finally:
            if fd is not None:
                os.close(fd)

    def _adopt_file(self, path: str, name: str) -> list[Claim]:
        try:
            info = os.lstat(path)
            dst = self._free_slot(name)
            os.rename(path, dst)
        except FileNotFoundError:
            return []               # another recovering worker took it first
        return [Claim(name=name, location=dst, source=os.path.join(self.inbox, name),
                      size=info.st_size, mtime=info.st_mtime, claimed_at=time.time())]

    def source_uri(self, name: str) -> str:
        return os.path.join(self.inbox, name)


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _original_name(slot_name: str) -> str:
    head, sep, rest = slot_name.partition("~")
    return rest if sep and head.isdigit() and rest else slot_name


def _candidates(name: str) -> Iterator[str]:
    """``a.json``, then ``a-1.json``, ``a-2.json``, ... (the suffix keeps the extension)."""
    yield name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(1, 100000):
        yield f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"


def _sidecar_claim_id(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read(1 << 20)).get("claim_id")
    except (OSError, ValueError, AttributeError):
        return None
