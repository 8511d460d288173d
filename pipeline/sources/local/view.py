"""The operator's view of the local folders (the FolderView seam): listing, reading sidecars,
and the few writes the operator commands make. The run path uses the store; this view never
claims anything.

Below processing/, done/ and failed/ everything is listed recursively (date subfolders, one
claim folder per process), skipping dotfiles and hidden folders; symlinks are never followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Iterator, Optional

from pipeline import sidecar
from pipeline.errors import ClaimLost, StorageError
from pipeline.names import original_name
from pipeline.sources.local import fsops, paths
from pipeline.sources.local.orderstore import LocalOrderStore
from pipeline.sources.view import Entry, FolderView


class LocalView(FolderView):
    """The local folders named in ``roots`` (inbox, processing, done, failed → a path); inbox
    names count when they match ``pattern`` (with ``recursive``, in subfolders too). Nothing is
    created; a missing folder is empty. ``keep_drop_time`` (ordering on): a file put back into
    the inbox keeps its mtime, so it keeps its place in its key's drop order."""

    kind = "local"

    def __init__(self, roots: dict[str, str], pattern: str = "*.json", recursive: bool = False,
                 keep_drop_time: bool = False):
        self.roots, self.pattern = dict(roots), pattern
        self.recursive, self.keep_drop_time = recursive, keep_drop_time

    def where(self, folder: str, path: str = "") -> str:
        return os.path.join(self.roots[folder], *path.split("/")) if path else self.roots[folder]

    def inbox_entries(self) -> Iterator[Entry]:
        """Regular files in the inbox whose names the pipeline takes (``path``: below it)."""
        try:
            for name, info in paths.regular_candidates(self.roots["inbox"], self.pattern, self.recursive):
                yield Entry("inbox", name, info.st_size, info.st_mtime)
        except OSError:            # no inbox (yet): nothing waits
            return

    def listing(self, folder: str) -> Iterator[Entry]:
        for rel, info in _walk(self.roots[folder]):
            yield Entry(folder, rel, info.st_size, info.st_mtime, stat.S_ISREG(info.st_mode))

    def read_sidecar(self, folder: str, path: str) -> Optional[dict]:
        if not path.endswith(sidecar.SUFFIX):
            path += sidecar.SUFFIX
        try:
            with fsops.open_regular(self.where(folder, path)) as handle:
                return sidecar.read(handle)
        except (OSError, StorageError):
            return None

    # -- the few writes the operator commands make -------------------------------------------
    def sha256(self, entry: Entry) -> str:
        with fsops.open_regular(self.where(entry.folder, entry.path)) as handle:   # streamed
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def inbox_name(self, entry: Entry) -> str:
        """A failed file goes back under its path below failed/ when the inbox is read
        recursively (the path it came from), else under its own name into the flat inbox."""
        return entry.path if self.recursive else entry.name

    def claimed_name(self, entry: Entry) -> str:
        """``<owner>/lab/.1~a.json`` in processing/ was ``lab/a.json`` in the inbox."""
        parts = entry.path.split("/")
        folder, base = paths.split("/".join(parts[1:] if len(parts) > 1 else parts))
        base = original_name(base)
        return f"{folder}/{base}" if folder else base

    def order_store(self) -> Optional[LocalOrderStore]:
        if not self.keep_drop_time:
            return None
        return LocalOrderStore(self.roots["inbox"], self.roots["processing"], self.roots["failed"], owner="")

    def inbox_has(self, name: str) -> bool:
        return os.path.lexists(self.where("inbox", name))

    def move_to_inbox(self, entry: Entry, name: str, dropped_at: Optional[float] = None) -> str:
        """Move ``entry`` into the inbox as ``name``, never overwriting (FileExistsError), with
        its mtime set to now (to the pipeline it is a fresh drop), or with ``keep_drop_time``
        left as it was (its mtime is still its drop time: renames keep it). ClaimLost if it
        vanished."""
        src, dst = self.where(entry.folder, entry.path), self.where("inbox", name)
        fsops.ensure_dir(os.path.dirname(dst))
        if not self.keep_drop_time:
            try:
                os.utime(src, follow_symlinks=False)
            except FileNotFoundError:
                raise ClaimLost("the file vanished", src) from None
        fsops.move_noreplace(src, dst)           # ClaimLost too if it vanished
        fsops.fsync_dir(os.path.dirname(dst))
        return dst

    def write_sidecar(self, folder: str, path: str, data: bytes) -> bool:
        """Replace the sidecar atomically (temp name, fsync, rename). Raises StorageError when
        the write fails."""
        target = self.where(folder, path)
        if not _is_regular(target):
            return False
        try:
            fsops.write_atomic(target + sidecar.SUFFIX, data, replace=True)
        except OSError as exc:
            raise StorageError(f"cannot rewrite sidecar ({exc.strerror})", target + sidecar.SUFFIX) from None
        return True

    def remove(self, folder: str, path: str) -> None:
        fsops.unlink_quietly(self.where(folder, path))


def _walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything but folders below ``root``, skipping dotfiles and
    hidden folders; symlinks are never followed. Entries vanishing meanwhile are skipped."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            listing = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with listing:
            for item in listing:
                if item.name.startswith("."):
                    continue
                rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(rel)
                else:
                    yield rel, info


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
