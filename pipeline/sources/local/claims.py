"""Claim folders: who owns each claimed local file, and taking over those of dead processes.

Each process claims into ``processing/<owner>/`` and holds an exclusive ``flock`` on
``processing/<owner>/.lock`` for its lifetime, so anyone can tell a live owner from an
abandoned claim: the kernel drops the lock when the process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from typing import Optional

from pipeline.errors import StorageError
from pipeline.names import fit, is_candidate_name, name_problem, original_name, printable
from pipeline.sources.local import fsops
from pipeline.values import Claim

log = logging.getLogger("pipeline.store")
LOCK = ".lock"


class ClaimFolders:
    """``processing`` and this process's claim folder in it (``owner``). Files that cannot be
    claimed (names an older version took) go back to ``inbox``."""

    def __init__(self, processing: str, owner: str, inbox: str):
        self.processing, self.owner, self.inbox = processing, owner, inbox
        self.own_dir = os.path.join(processing, owner)
        self._lock_fd: Optional[int] = None

    def open(self) -> None:
        """Make our claim folder and take its lock (idempotent).

        Built under a hidden name, locked, then renamed into place: nobody can mistake a
        half-made claim folder for an abandoned one.
        """
        if self._lock_fd is not None:
            return
        tmp = tempfile.mkdtemp(prefix=".new-", dir=self.processing)
        fd = os.open(os.path.join(tmp, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                 "since": time.time()}).encode())
        os.rename(tmp, self.own_dir)
        self._lock_fd = fd

    def close(self) -> None:
        """Remove our claim folder if it is empty, and let go of its lock."""
        if self._lock_fd is None:
            return
        if not self.own_claims():
            fsops.unlink_quietly(os.path.join(self.own_dir, LOCK))
            try:
                os.rmdir(self.own_dir)
            except OSError:
                pass
        os.close(self._lock_fd)
        self._lock_fd = None

    def slot(self, name: str) -> str:
        """A free path in our claim folder for ``name`` (the folder is ours alone, so
        check-then-use is safe within this process). A taken name gets a hidden ``.N~`` slot,
        which can never be mistaken for an inbox name like ``2024~a.json``."""
        dst = os.path.join(self.own_dir, name)
        n = 1
        while os.path.lexists(dst):
            dst = os.path.join(self.own_dir, fit(f".{n}~", name, ""))
            n += 1
        return dst

    def own_claims(self) -> list[str]:
        """Paths of the files now in our claim folder."""
        return [os.path.join(self.own_dir, n) for n in _names(self.own_dir) if n != LOCK]

    def has_claims(self) -> bool:
        """Is anything claimed in processing (ours, someone else's, or nobody's)?"""
        for name in _names(self.processing):
            path = os.path.join(self.processing, name)
            if name.startswith("."):
                continue
            if not os.path.isdir(path) or any(n != LOCK for n in _names(path)):
                return True
        return False

    # -- recovery ------------------------------------------------------------------------------
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

    def _adopt_folder(self, folder: str) -> list[Claim]:
        lock = os.path.join(folder, LOCK)
        try:
            fd: Optional[int] = os.open(lock, os.O_RDWR)
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
                if name != LOCK:
                    claims += self._adopt_file(os.path.join(folder, name), original_name(name))
            fsops.unlink_quietly(lock)
            try:
                os.rmdir(folder)
            except OSError:
                pass
            return claims
        finally:
            if fd is not None:
                os.close(fd)

    def _adopt_file(self, path: str, name: str) -> list[Claim]:
        if name_problem(name):
            # claimed by an older version that took such names: back to the inbox, left alone
            self._return_unclaimable(path, name)
            return []
        try:
            info = os.lstat(path)
            dst = self.slot(name)
            os.rename(path, dst)
        except FileNotFoundError:
            return []               # another recovering worker took it first
        except OSError as exc:
            log.error("cannot adopt an abandoned claim", extra={"file": name, "error": exc.strerror})
            return []
        return [Claim(name=name, location=dst, source=os.path.join(self.inbox, name),
                      size=info.st_size, mtime=info.st_mtime, claimed_at=time.time())]

    def _return_unclaimable(self, path: str, name: str) -> None:
        try:
            fsops.move_noreplace(path, os.path.join(self.inbox, name))
        except (OSError, StorageError) as exc:
            log.error("cannot return an unclaimable file to the inbox",
                      extra={"file": printable(name), "error": str(exc)})


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
