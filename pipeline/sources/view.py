"""The operator's view of the four folders (FolderView), one implementation per backend
(local/view.py, s3/view.py): what ``status``, ``report``, ``retry-failed``, ``reconcile`` and
``prune`` list, read and write. It never claims anything; the run path uses the Source
(base.py) instead.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Optional

from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.orderstore import OrderStore

FOLDERS = ("inbox", "processing", "done", "failed")


@dataclass(frozen=True)
class Entry:
    """One file of a folder: ``path`` below the folder (``/`` separators), size, mtime (epoch
    seconds); ``regular`` is False for what is not a regular file (a symlink or FIFO rejected
    as not_a_file still lies in failed/)."""
    folder: str
    path: str
    size: int
    mtime: float
    regular: bool = True

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class FolderView(ABC):
    """The four folders of a config as the operator commands see them. Nothing is created; a
    missing folder is empty."""

    kind: str = ""

    @abstractmethod
    def where(self, folder: str, path: str = "") -> str:
        """A printable location of ``folder`` (one of FOLDERS) or a path in it."""

    @abstractmethod
    def inbox_entries(self) -> Iterator[Entry]:
        """The inbox files the pipeline would take (what ``run`` picks up)."""

    @abstractmethod
    def listing(self, folder: str) -> Iterator[Entry]:
        """Everything visible below ``folder`` (processing, done, failed): files and sidecars,
        recursively, nothing hidden (dotfiles, hidden folders such as claim locks)."""

    @abstractmethod
    def read_sidecar(self, folder: str, path: str) -> Optional[dict]:
        """The sidecar of the file at ``path`` (or the sidecar at ``path`` itself), or None
        when it is missing, unreadable, over the cap or not a JSON object."""

    def order_store(self) -> Optional[OrderStore]:
        """The ordering board's storage (status lists held keys, retry-failed releases them);
        None when ordering is off."""
        return None

    # -- the few writes the operator commands make -------------------------------------------
    @abstractmethod
    def sha256(self, entry: Entry) -> str:
        """The sha256 of a file's bytes, streamed."""

    @abstractmethod
    def inbox_name(self, entry: Entry) -> str:
        """The name a failed file goes back into the inbox under."""

    def claimed_name(self, entry: Entry) -> str:
        """The inbox name of a file listed in processing/ (a backend with claim folders strips
        them)."""
        return entry.path

    @abstractmethod
    def inbox_has(self, name: str) -> bool:
        """Is ``name`` taken in the inbox?"""

    @abstractmethod
    def move_to_inbox(self, entry: Entry, name: str, dropped_at: Optional[float] = None) -> str:
        """Move ``entry`` into the inbox as ``name`` as a fresh drop, never overwriting
        (FileExistsError); ClaimLost if it vanished. Where it went. With ordering on it keeps
        its drop time instead (``dropped_at``, from its sidecar, where the backend cannot keep
        it otherwise), so it keeps its place in its key's sequence."""

    @abstractmethod
    def write_sidecar(self, folder: str, path: str, data: bytes) -> bool:
        """Replace the sidecar of the file at ``path`` atomically; False (nothing written) when
        the file it describes is no longer there."""

    @abstractmethod
    def remove(self, folder: str, path: str) -> None:
        """Delete one file or sidecar (an absent one is not an error)."""

    # -- derived -------------------------------------------------------------------------------
    def entries(self, folder: str) -> Iterator[Entry]:
        """Every message file in ``folder`` (no sidecars)."""
        if folder == "inbox":
            yield from self.inbox_entries()
            return
        for entry in self.listing(folder):
            if not entry.path.endswith(SIDECAR_SUFFIX):
                yield entry

    def sidecars(self, folder: str) -> Iterator[Entry]:
        """Every sidecar in ``folder`` (``path`` is the sidecar's own path)."""
        for entry in self.listing(folder):
            if entry.path.endswith(SIDECAR_SUFFIX):
                yield entry

    def finished(self, folder: str = "done") -> list[str]:
        """Paths of the regular files in ``folder`` that have their sidecar beside them,
        sorted. A sidecar alone belongs to a finish still in progress (the sidecar is written
        first, the file moved second)."""
        files, cars = set(), set()
        for entry in self.listing(folder):
            if entry.path.endswith(SIDECAR_SUFFIX):
                cars.add(entry.path[:-len(SIDECAR_SUFFIX)])
            elif entry.regular:
                files.add(entry.path)
        return sorted(files & cars)

    def remove_sidecar(self, entry: Entry) -> None:
        """Delete the sidecar of a file that has been moved away."""
        self.remove(entry.folder, entry.path + SIDECAR_SUFFIX)


class DoneFolder:
    """``folders.done`` of a view, as delivery confirmation walks it: a file is a *ref*, its
    path below done/."""

    def __init__(self, view: FolderView):
        self.view = view

    def refs(self) -> Iterator[str]:
        yield from self.view.finished("done")

    def where(self, ref: str) -> str:
        return self.view.where("done", ref)

    def read_sidecar(self, ref: str) -> Optional[dict]:
        return self.view.read_sidecar("done", ref)

    def write_sidecar(self, ref: str, data: bytes) -> bool:
        return self.view.write_sidecar("done", ref, data)


def age(mtime: float, now: Optional[float] = None) -> float:
    """Seconds since ``mtime`` (never negative: a clock ahead of ours reads as 0)."""
    return max(0.0, (time.time() if now is None else now) - mtime)
