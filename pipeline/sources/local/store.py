"""The local-folder source: inbox, processing, done and failed on one filesystem.

The :class:`~pipeline.sources.base.Source` for ``source.kind: local``. A claim is an atomic
rename into this process's claim folder (claims.py: who owns what, and adopting the claims of
dead processes); finishing (finishing.py) writes the sidecar, then moves the file beside it. With
``recursive`` a file's name is its path below the inbox (paths.py), kept under processing/,
done/ and failed/.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
import time
from typing import BinaryIO, Iterator, Optional

from pipeline.errors import ClaimLost, ConfigError, StorageError
from pipeline.names import candidates as _candidates
from pipeline.names import printable as _printable
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.base import Source, Watch
from pipeline.sources.local import fsops, paths
from pipeline.sources.local.claims import ClaimFolders
from pipeline.sources.local.finishing import Finishing
from pipeline.sources.local.orderstore import LocalOrderStore
from pipeline.sources.local.watch import Watcher
from pipeline.values import Claim, Drop

ADOPT_INTERVAL = 10.0  # with ordering on: seconds between looks for a dead process's claims
log = logging.getLogger("pipeline.store")


class LocalStore(Finishing, Source):
    """Inbox and output folders on the local filesystem.

    ``owner`` names this process's claim folder. ``prepare()`` must be called before claims.
    """

    kind = "local"

    def __init__(self, inbox: str, processing: str, done: str, failed: str, pattern: str, owner: str,
                 recursive: bool = False):
        self.inbox, self.processing, self.pattern, self.owner = inbox, processing, pattern, owner
        self.recursive = recursive
        self.folders = {"done": done, "failed": failed}
        self.claims = ClaimFolders(processing, owner, inbox, self._announce, self._withdraw)
        self._synced: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._noted: set[str] = set()      # names already warned about (left alone)
        self._prepared = False

    # -- lifecycle -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the inbox, create missing output folders and this process's claim folder,
        holding its lock (idempotent).

        The inbox is never created: a missing or unreadable one is almost always a typo in
        ``source.inbox`` or a mount that is not there, and looks exactly like an empty inbox
        for ever. ConfigError (exit 2) naming it, before anything is touched. processing/,
        done/ and failed/ are created with the process umask (config ``umask``); an existing
        folder that anybody may enter or list gets a warning, since the files in it hold
        patient data.
        """
        if self._prepared:
            return
        _check_inbox(self.inbox)
        for folder in (self.inbox, self.processing, *self.folders.values()):
            if folder != self.inbox:
                fsops.ensure_dir(folder)
            if os.stat(folder).st_mode & stat.S_IRWXO:
                log.warning("folder is open to all users; chmod o-rwx it (it holds patient data)",
                            extra={"path": folder})
        self.claims.open()
        self._prepared = True

    def close(self) -> None:
        """Remove this process's claim folder if it is empty, and let go of its lock."""
        for folder in self._dirty:
            fsops.fsync_dir(folder)
        self._dirty.clear()
        self.claims.close()
        self._prepared = False

    # -- discover / claim ------------------------------------------------------------------
    def scan(self) -> Iterator[Drop]:
        """Regular files in the inbox whose names count (lstat only; with ``recursive`` the
        subfolders too, one at a time, never the whole tree in memory).

        Anything else whose name matches (a symlink, directory, FIFO, a name that is not UTF-8
        or too long) is left alone, with one warning per name while it stays there. An inbox
        that exists but cannot be listed raises StorageError.
        """
        noted: set[str] = set()
        try:
            for name, entry in paths.walk(self.inbox, self.recursive):
                drop = self._drop(name, entry.stat, noted)
                if drop is not None:
                    yield drop
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot list the inbox ({exc.strerror})", self.inbox) from None
        self._noted &= noted        # forget names that are gone, so a new one is noted again

    def stat(self, name: str) -> Drop | None:
        """The inbox file ``name`` as it is now, or None if it is gone or not one to take."""
        return self._drop(name, lambda follow_symlinks: os.lstat(paths.join(self.inbox, name)))

    def _drop(self, name: str, lstat, noted: Optional[set] = None) -> Drop | None:
        if not paths.is_candidate(name, self.pattern, self.recursive):
            if self._looks_like_a_sidecar(name):
                self._note(name, "names ending in .redox.json are sidecars, never taken from the "
                                 "inbox", noted)
            return None
        try:
            info = lstat(follow_symlinks=False)
        except OSError:
            return None
        why = paths.name_problem(name)
        if why is None and not stat.S_ISREG(info.st_mode):
            why = f"it is {fsops.describe_mode(info.st_mode)}, not a regular file"
        if why is None:
            return Drop(name, info.st_size, info.st_mtime)
        self._note(name, why, noted)
        return None

    def _looks_like_a_sidecar(self, name: str) -> bool:
        """A name the pattern would take but for its sidecar suffix (``a.redox.json``
        dropped into the inbox): left alone, which deserves a word."""
        if not name.endswith(SIDECAR_SUFFIX) or paths.shape_problem(name, self.recursive):
            return False
        base = paths.split(name)[1]
        return not base.startswith(".") and fnmatch.fnmatchcase(base, self.pattern)

    def _note(self, name: str, why: str, noted: Optional[set]) -> None:
        """One warning per name left alone while it stays there (``noted``: the names seen by
        this scan, so a name that went away is warned about again when it comes back)."""
        if noted is not None:
            noted.add(name)
        if name not in self._noted:
            self._noted.add(name)
            log.warning(f"left alone in the inbox: {why}", extra={"file": _printable(name)})

    def claim(self, drop: Drop) -> Claim:
        """Atomically move the inbox file into our claim folder. ClaimLost if someone was first.

        What the rename moved is checked against ``drop``: a file replaced or rewritten since
        it was seen settled (or swapped for a symlink) is put back to settle again, ClaimLost.
        """
        src = paths.join(self.inbox, drop.name)
        self._announce(drop.name, drop.mtime)
        try:
            dst = self.claims.take(src, drop.name)
        except BaseException:
            self._withdraw(drop.name, drop.mtime)
            raise
        claim = Claim(name=drop.name, location=dst, source=src, size=drop.size,
                      mtime=drop.mtime, claimed_at=time.time())
        try:
            info = os.lstat(dst)
        except FileNotFoundError:
            raise ClaimLost("the file vanished right after it was claimed", src) from None
        if not stat.S_ISREG(info.st_mode) or (info.st_size, info.st_mtime) != (drop.size, drop.mtime):
            self.release(claim)
            self._withdraw(drop.name, drop.mtime)
            raise ClaimLost("the file changed while it was being claimed; it settles again", src)
        return claim

    def open(self, claim: Claim) -> BinaryIO:
        """Open the claimed file for reading (regular files only; never through a symlink)."""
        return fsops.open_regular(claim.location)

    def release(self, claim: Claim) -> str:
        """Put a claimed file back in the inbox (under its own name if free, in its own folder,
        made again if upstream removed it meanwhile). Returns the path."""
        folder, base = paths.split(claim.name)
        for candidate in _candidates(base):
            try:
                dst = paths.ensure_parent(self.inbox, f"{folder}/{candidate}" if folder else candidate)
                fsops.move_noreplace(claim.location, dst)
                self.claims.tidy(claim.location)
                return dst
            except FileExistsError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot release ({exc.strerror})", claim.location) from None
        raise StorageError("no free name to release to", claim.location)  # pragma: no cover

    # -- recovery --------------------------------------------------------------------------
    def adopt_orphans(self) -> list[Claim]:
        return self.claims.adopt_orphans()

    def has_claims(self) -> bool:
        return self.claims.has_claims()

    def order_store(self) -> LocalOrderStore:
        return LocalOrderStore(self.inbox, self.processing, self.folders["failed"], self.owner)

    @property
    def recover_interval(self) -> Optional[float]:
        """With ordering on, the claims of a process that died hold back the later files of
        their keys: look for them every ADOPT_INTERVAL seconds, not only at start."""
        return ADOPT_INTERVAL if self.claim_hooks is not None else None

    def own_claims(self) -> list[str]:
        """Paths of the files now in our claim folder."""
        return self.claims.own_claims()

    def watch(self, events, once: bool) -> Optional[Watch]:
        """File events on the inbox (watchdog) for a service; a cron run only lists."""
        if once:
            return None
        return Watcher(self.inbox, events, self.recursive).start()


def _check_inbox(path: str) -> None:
    """ConfigError unless ``path`` is a folder this process may list and take files from."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"source.inbox: {path} does not exist (a typo, or a mount that is "
                          "missing?); it is not created, and nothing was touched") from None
    except OSError as exc:
        raise ConfigError(f"source.inbox: cannot look at {path} ({exc.strerror}); "
                          "nothing was touched") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"source.inbox: {path} is not a folder; nothing was touched")
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        raise ConfigError(f"source.inbox: cannot list the inbox ({exc.strerror}): {path}; "
                          "nothing was touched") from None
    if not os.access(path, os.W_OK | os.X_OK):     # a claim renames the file out of it
        raise ConfigError(f"source.inbox: cannot take files out of the inbox (no write permission): "
                          f"{path}; nothing was touched")
