"""The ordering board of local folders: small files below ``processing/.order/``.

Shared through the filesystem by every process on the folders, on one machine or several
(a network filesystem with working ``flock``, which claim folders need anyway). An item is
written whole (a temp name, then a rename) or created exclusively (``O_EXCL``); nothing is
fsynced: a killed process loses nothing it wrote (the page cache outlives it), and a power cut
is not among what ordering promises to survive.

Liveness comes from the claim folders: an owner is alive while it holds the lock of its claim
folder (claims.py), so an item of a dead process still counts while its claim folder holds
the file (it is adopted, and read again, by the next process to look).
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Optional

from pipeline.errors import ClaimLost, NotRegular, StorageError
from pipeline.names import candidates
from pipeline.sources.local import fsops, paths
from pipeline.sources.local.claims import LOCK
from pipeline.sources.orderstore import OrderStore

BOARD = ".order"


class LocalOrderStore(OrderStore):
    """The board below ``processing``; ``owner`` is this process's claim folder name."""

    def __init__(self, inbox: str, processing: str, failed: str, owner: str):
        self.inbox, self.processing, self.failed, self.owner = inbox, processing, failed, owner
        self.root = os.path.join(processing, BOARD)

    def list(self, folder: str, deep: bool = False) -> list[tuple[str, float]]:
        found = []
        try:
            for rel, entry in paths.walk(paths.join(self.root, folder), recursive=deep):
                if entry.name.startswith(".tmp-"):
                    continue
                try:
                    found.append((rel, entry.stat(follow_symlinks=False).st_mtime))
                except FileNotFoundError:
                    continue            # removed between the listing and the look
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list the ordering board ({exc.strerror})", self.root) from None
        return found

    def read(self, path: str) -> Optional[bytes]:
        """An item's bytes; None when it is gone, or is not a regular file (never opened for
        reading: a FIFO would block)."""
        try:
            with fsops.open_regular(paths.join(self.root, path)) as handle:
                return handle.read(1 << 16)
        except (ClaimLost, NotRegular):
            return None
        except StorageError as exc:      # Unreadable and the like: the reason, then the path
            raise StorageError(f"cannot read the ordering board ({str(exc).split(':')[0]})",
                               self.root) from None
        except OSError as exc:
            raise StorageError(f"cannot read the ordering board ({exc.strerror})", self.root) from None

    def write(self, path: str, data: bytes, create_only: bool = False) -> bool:
        target = paths.join(self.root, path)
        for _ in range(5):          # a key's folder may be removed (emptied) by another process
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                return self._write(target, data, create_only)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot write the ordering board ({exc.strerror})", target) from None
        raise StorageError("cannot write the ordering board (its folder keeps vanishing)", target)

    @staticmethod
    def _write(target: str, data: bytes, create_only: bool) -> bool:
        """Written under a temp name first, so nobody ever reads an item half written; then
        renamed over the old one, or (create-only) linked, which fails when the name exists
        (False). Written without an fsync."""
        try:
            fsops.write_atomic(target, data, replace=not create_only, fsync=False)
        except FileExistsError:
            return False
        return True

    def delete(self, path: str) -> None:
        target = paths.join(self.root, path)
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot update the ordering board ({exc.strerror})", target) from None
        folder = paths.split(path)[0]
        if "/" in folder:                        # keys/<key>: gone with its last item
            try:
                os.rmdir(paths.join(self.root, folder))
            except OSError:
                pass

    def holds(self, owner: str, name: str, since: float) -> bool:
        if owner == self.owner:
            return True
        if _alive(os.path.join(self.processing, owner, LOCK)):
            return True
        return os.path.lexists(paths.join(os.path.join(self.processing, owner), name))

    def present(self, name: str, stamp: float) -> bool:
        try:
            owners = [e.name for e in os.scandir(self.processing) if not e.name.startswith(".")]
        except OSError:
            return True                  # cannot tell: never call a file gone on a guess
        places = [self.inbox, self.processing] + [os.path.join(self.processing, o) for o in owners]
        return any(_dropped_at(paths.join(root, name), stamp) for root in places)

    def exists(self, location: str) -> bool:
        return os.path.lexists(location)

    def in_failed(self, name: str) -> bool:
        folder, base = paths.split(name)
        # finishing takes the first free name, so a missing one ends the search
        return os.path.lexists(os.path.join(paths.join(self.failed, folder), next(candidates(base))))


def _dropped_at(path: str, stamp: float) -> bool:
    """Is there a file at ``path`` with mtime ``stamp`` (claims and releases keep the mtime)?"""
    try:
        return abs(os.lstat(path).st_mtime - stamp) < 1e-5
    except OSError:
        return False


def _alive(lock: str) -> bool:
    """Does a live process hold ``lock`` (its claim folder's lock)? A free lock, or none at
    all, means the folder's owner is gone. The lock is taken shared and at once let go, so a
    live owner is never disturbed."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
