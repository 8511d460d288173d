"""Claim folders: who owns each claimed local file, and taking over those of dead processes.

Each process claims into ``processing/<owner>/`` and holds an exclusive ``flock`` on
``processing/<owner>/.lock`` for its lifetime, so anyone can tell a live owner from an
abandoned claim: the kernel drops the lock when the process dies, however it dies. A file from
an inbox subfolder keeps its path in the claim folder (``processing/<owner>/lab/a.json``);
subfolders left empty are removed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from typing import Callable, Optional

from pipeline.errors import ClaimLost, StorageError
from pipeline.names import fit, is_candidate_name, original_name, printable
from pipeline.sources.local import fsops, paths
from pipeline.values import Claim

log = logging.getLogger("pipeline.store")
LOCK = ".lock"


class ClaimFolders:
    """``processing`` and this process's claim folder in it (``owner``). Files that cannot be
    claimed (names an older version took) go back to ``inbox``."""

    def __init__(self, processing: str, owner: str, inbox: str,
                 intend: Callable[[str, float], None] = lambda name, stamp: None,
                 abandon: Callable[[str, float], None] = lambda name, stamp: None):
        """``intend(name, stamp)`` is called before an abandoned file is taken over (and
        ``abandon`` when that failed): ordering registers it first (Source._announce)."""
        self.processing, self.owner, self.inbox = processing, owner, inbox
        self.intend, self.abandon = intend, abandon
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
            _remove_empty_folders(self.own_dir)
            fsops.unlink_quietly(os.path.join(self.own_dir, LOCK))
            try:
                os.rmdir(self.own_dir)
            except OSError:
                pass
        os.close(self._lock_fd)
        self._lock_fd = None

    def slot(self, name: str) -> str:
        """A free path in our claim folder for ``name`` (its folder made if missing; the claim
        folder is ours alone, so check-then-use is safe within this process). A taken name gets
        a hidden ``.N~`` slot beside it, which can never be mistaken for an inbox name like
        ``2024~a.json``."""
        dst = paths.ensure_parent(self.own_dir, name)
        folder, base = os.path.split(dst)
        n = 1
        while os.path.lexists(dst):
            dst = os.path.join(folder, fit(f".{n}~", base, ""))
            n += 1
        return dst

    def take(self, src: str, name: str) -> str:
        """Rename ``src`` into a slot for ``name``: whoever's rename succeeds owns the file.
        ClaimLost if it vanished (or someone else was first). A slot folder removed meanwhile
        by our own tidying (a file beside it just finished) is made again."""
        for _ in range(5):
            dst = self.slot(name)
            try:
                os.rename(src, dst)   # atomic on one filesystem
                return dst
            except FileNotFoundError:
                if not os.path.lexists(src):
                    raise ClaimLost("the file vanished or another worker claimed it", src) from None
            except OSError as exc:
                raise StorageError(f"cannot claim ({exc.strerror})", src) from None
        raise StorageError("cannot claim (its folder in processing keeps vanishing)", src)

    def tidy(self, location: str) -> None:
        """After a file left ``location`` (in our claim folder): remove its folders while empty."""
        rel = os.path.relpath(os.path.dirname(location), self.own_dir)
        if rel != "." and not rel.startswith(".."):
            paths.tidy(self.own_dir, rel.replace(os.sep, "/"))

    def own_claims(self) -> list[str]:
        """Paths of the files now in our claim folder (subfolders included)."""
        return [path for path, _ in _files(self.own_dir)]

    def has_claims(self) -> bool:
        """Is anything claimed in processing (ours, someone else's, or nobody's)?"""
        for name in _names(self.processing):
            path = os.path.join(self.processing, name)
            if name.startswith("."):
                continue
            if not os.path.isdir(path) or any(True for _ in _files(path)):
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
            for path, name in _files(folder):
                claims += self._adopt_file(path, name)
            _remove_empty_folders(folder)
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
        if paths.name_problem(name):
            # claimed by an older version that took such names: back to the inbox, left alone
            self._return_unclaimable(path, name)
            return []
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return []               # another recovering worker took it first
        self.intend(name, info.st_mtime)
        try:
            dst = self.slot(name)
            os.rename(path, dst)
        except OSError as exc:
            self.abandon(name, info.st_mtime)
            if not isinstance(exc, FileNotFoundError):   # else: another recovering worker was first
                log.error("cannot adopt an abandoned claim", extra={"file": name, "error": exc.strerror})
            return []
        return [Claim(name=name, location=dst, source=paths.join(self.inbox, name),
                      size=info.st_size, mtime=info.st_mtime, claimed_at=time.time())]

    def _return_unclaimable(self, path: str, name: str) -> None:
        try:
            fsops.move_noreplace(path, paths.ensure_parent(self.inbox, name))
        except (OSError, StorageError) as exc:
            log.error("cannot return an unclaimable file to the inbox",
                      extra={"file": printable(name), "error": str(exc)})


def _files(folder: str):
    """(path, name) of each claimed file in a claim folder, subfolders included: ``name`` is
    its path below the folder with a ``.N~`` slot prefix undone (never the lock)."""
    try:
        for rel, entry in paths.walk(folder, recursive=True):
            if rel == LOCK:
                continue
            sub, base = paths.split(rel)
            original = original_name(base)
            yield entry.path, f"{sub}/{original}" if sub else original
    except OSError:
        return


def _remove_empty_folders(folder: str) -> None:
    """Remove the empty subfolders below ``folder`` (deepest first), never ``folder`` itself."""
    for root, dirs, _ in os.walk(folder, topdown=False):
        for name in dirs:
            try:
                os.rmdir(os.path.join(root, name))
            except OSError:
                pass


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
