"""The operator's view of the folders: counting, listing and reading sidecars (read side).

``status``, ``report`` and ``retry-failed`` see the inbox and the output folders only through
this seam, so an S3 variant (listing keys below the prefixes) can be added beside
:class:`LocalFolders` without touching them. The run path keeps using the store (localstore);
this view never claims anything.

A *file* here is a message file: not a sidecar, not a dotfile (nor inside a hidden folder, such
as a claim folder's ``.lock`` or a temp file), found recursively because done/ and failed/ may
hold date subfolders and processing/ holds one claim folder per process.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from typing import Iterator, Optional

from pipeline.errors import ClaimLost
from pipeline.jsondoc import parse_object
from pipeline.names import is_candidate_name
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.local import fsops

FOLDERS = ("inbox", "processing", "done", "failed")
SIDECAR_LIMIT = 4 << 20      # a sidecar is small; anything larger is not ours


@dataclass(frozen=True)
class Entry:
    """One message file: ``path`` below its folder (``/`` separators), size, mtime (epoch s)."""
    folder: str
    path: str
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class LocalFolders:
    """The four local folders of ``settings``. Nothing is created; a missing folder is empty."""

    kind = "local"

    def __init__(self, settings):
        self.pattern = settings.source.pattern
        self.roots = {"inbox": settings.source.inbox, "processing": settings.folders.processing,
                      "done": settings.folders.done, "failed": settings.folders.failed}

    def where(self, folder: str, path: str = "") -> str:
        """A printable location (an absolute path here; ``s3://...`` in an S3 variant)."""
        return os.path.join(self.roots[folder], path) if path else self.roots[folder]

    def entries(self, folder: str) -> Iterator[Entry]:
        """Every message file in ``folder``. The inbox lists only names the pipeline would take
        (its pattern, top level: what ``run`` picks up); the others list recursively."""
        root = self.roots[folder]
        if folder == "inbox":
            yield from self._inbox(root)
            return
        for rel, info in _walk(root):
            if not rel.endswith(SIDECAR_SUFFIX):
                yield Entry(folder, rel, info.st_size, info.st_mtime)

    def sidecars(self, folder: str) -> Iterator[Entry]:
        """Every sidecar in ``folder`` (``path`` is the sidecar's own path)."""
        for rel, info in _walk(self.roots[folder]):
            if rel.endswith(SIDECAR_SUFFIX):
                yield Entry(folder, rel, info.st_size, info.st_mtime)

    def read_sidecar(self, folder: str, path: str) -> Optional[dict]:
        """The sidecar of the file at ``path`` (or the sidecar at ``path`` itself), or None
        when it is missing, unreadable or not a JSON object."""
        if not path.endswith(SIDECAR_SUFFIX):
            path += SIDECAR_SUFFIX
        try:
            with fsops.open_regular(os.path.join(self.roots[folder], path)) as handle:
                raw = handle.read(SIDECAR_LIMIT)
        except OSError:
            return None
        return parse_object(raw)

    # -- the few writes retry-failed needs ------------------------------------------------
    def sha256(self, entry: Entry) -> str:
        """The sha256 of a file's bytes (regular files only: NotRegular otherwise)."""
        path = os.path.join(self.roots[entry.folder], entry.path)
        with fsops.open_regular(path) as handle:   # streamed, never whole in memory
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def inbox_name(self, entry: Entry) -> str:
        """The name a failed file goes back into the (flat) inbox under."""
        return entry.name

    def inbox_has(self, name: str) -> bool:
        return os.path.lexists(os.path.join(self.roots["inbox"], name))

    def move_to_inbox(self, entry: Entry, name: str) -> str:
        """Move ``entry`` into the inbox as ``name``, never overwriting (FileExistsError), with
        its mtime set to now: to the pipeline it is a fresh drop. ClaimLost if it vanished."""
        src = os.path.join(self.roots[entry.folder], entry.path)
        dst = os.path.join(self.roots["inbox"], name)
        fsops.ensure_dir(self.roots["inbox"])
        try:
            os.utime(src, follow_symlinks=False)
        except FileNotFoundError:
            raise ClaimLost("the file vanished", src) from None
        fsops.move_noreplace(src, dst)
        fsops.fsync_dir(self.roots["inbox"])
        return dst

    def remove_sidecar(self, entry: Entry) -> None:
        """Delete the sidecar of a file that has been moved away (its content is kept in the
        journal's replay history and, later, in the new sidecar)."""
        fsops._unlink_quietly(os.path.join(self.roots[entry.folder], entry.path) + SIDECAR_SUFFIX)

    def _inbox(self, root: str) -> Iterator[Entry]:
        try:
            listing = os.scandir(root)
        except (FileNotFoundError, NotADirectoryError):
            return
        with listing:
            for entry in listing:
                if not is_candidate_name(entry.name, self.pattern):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield Entry("inbox", entry.name, info.st_size, info.st_mtime)


def _walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything but folders below ``root`` (a symlink or FIFO
    rejected as not_a_file is still a failed file), skipping dotfiles and hidden folders;
    symlinks are never followed. Entries vanishing meanwhile are skipped."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            listing = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with listing:
            for entry in listing:
                if entry.name.startswith("."):
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(rel)
                else:
                    yield rel, info


def make_folders(settings, command: str):
    """The folder view for ``settings.source.kind``: local folders, or an S3 bucket's prefixes."""
    if settings.source.kind == "local":
        return LocalFolders(settings)
    from pipeline.sources.s3.view import S3Folders  # boto3 only when S3 is configured
    return S3Folders(settings)


def age(mtime: float, now: Optional[float] = None) -> float:
    """Seconds since ``mtime`` (never negative: a clock ahead of ours reads as 0)."""
    return max(0.0, (time.time() if now is None else now) - mtime)
