"""The Source interface: where files come from and where they go, one implementation per backend.

Two seams, each an abstract class that the local folders and the S3 bucket implement:

- :class:`Source`, the run path: discover (``scan``, ``stat``, ``watch``), claim, read, release
  and finish one file, and recover what a dead process left behind. The runner, intake, work
  and recovery talk to nothing else. Optional capabilities are default methods here (a
  backend that has nothing to add inherits them), never attributes probed at run time.
- :class:`FolderView`, the operator's view: listing and reading the four folders for
  ``status``, ``report``, ``retry-failed``, ``reconcile`` and ``prune``, plus the few writes
  those commands make (moving a failed file back, rewriting a sidecar, removing old files).
  It never claims anything.

A file is named by its *path below the inbox* (or the S3 prefix), with ``/`` separators; that
name is kept all the way to done/ or failed/.
"""

from __future__ import annotations

import queue
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Protocol

from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.orderstore import ClaimHooks, OrderStore
from pipeline.values import Claim, Drop

FOLDERS = ("inbox", "processing", "done", "failed")


class Watch(Protocol):
    """A running source of ("hint", name) events (file events, queue notifications)."""

    def stop(self) -> None: ...


class Source(ABC):
    """One backend's inbox and output folders, as the run path uses them.

    ``owner`` names this process in claims (host, pid, random tag); ``inbox`` is a printable
    location for logs. ``prepare()`` must be called before claims, ``close()`` at the end.
    Every method raises :class:`~pipeline.errors.StorageError` (with the path or key) when the
    storage fails, :class:`~pipeline.errors.ClaimLost` when a claimed file was lost to
    someone else, and :class:`~pipeline.errors.AuthError` when the storage refuses our
    credentials.
    """

    kind: str = ""
    owner: str = ""
    inbox: str = ""
    # Ordering (flow/ordering.py) registers a file before anyone can own it: set by the wiring,
    # called through _announce/_withdraw at every point where a backend takes a file (a claim, an
    # adoption of a dead owner's claim), so no claim is ever unknown to the other processes.
    claim_hooks: Optional[ClaimHooks] = None

    def _announce(self, name: str, stamp: float) -> None:
        """Before taking ``name`` (dropped at ``stamp``): register it with ordering."""
        if self.claim_hooks is not None:
            self.claim_hooks.intend(name, stamp)

    def _withdraw(self, name: str, stamp: float) -> None:
        """Taking ``name`` failed after ``_announce``: withdraw what only we registered."""
        if self.claim_hooks is not None:
            self.claim_hooks.abandon(name, stamp)

    # -- lifecycle -----------------------------------------------------------------------------
    @abstractmethod
    def prepare(self) -> None:
        """Make ready to claim (folders, this process's claim folder or heartbeat)."""

    @abstractmethod
    def close(self) -> None:
        """Let go of what ``prepare`` took; claims still held stay for recovery."""

    # -- discover ------------------------------------------------------------------------------
    @abstractmethod
    def scan(self) -> Iterator[Drop]:
        """The candidate files now in the inbox, lazily (never the whole listing in memory)."""

    @abstractmethod
    def stat(self, name: str) -> Optional[Drop]:
        """The inbox file ``name`` as it is now, or None when it is gone or not one to take."""

    def stat_to_claim(self, settled: Drop) -> Optional[Drop]:
        """The file ``settled`` (as a listing or ``stat`` saw it when it settled) as it is now,
        just before a claim; a backend whose claim itself checks the file against what was
        seen may answer from ``settled`` without asking the storage again."""
        return self.stat(settled.name)

    def follow(self, target: Callable[[], int]) -> None:
        """The runner's files in flight now (its concurrency target), for a backend that
        fetches work ahead (an SQS feed); ignored by default."""
        return None

    @property
    def parallel_claims(self) -> bool:
        """True when claims may run on worker threads, several at once (each costs round
        trips); the runner otherwise claims on its loop."""
        return False

    def watch(self, events: queue.Queue, once: bool) -> Optional[Watch]:
        """Start putting ("hint", name) events on ``events`` (the fast path between scans), or
        return None when this source has no events to offer (``once``: a cron run that only
        takes what a listing shows)."""
        return None

    @property
    def queue_fed(self) -> bool:
        """True when names arrive only as events (an SQS queue), never from listings."""
        return False

    def drained(self) -> bool:
        """Queue-fed ``--once``: has the queue been emptied and every message settled?"""
        return True

    # -- claim, read, finish -------------------------------------------------------------------
    @abstractmethod
    def claim(self, drop: Drop) -> Claim:
        """Take ``drop`` out of the inbox so no one else sends it. ClaimLost if someone was
        first or it changed since it was seen (it then settles again)."""

    @abstractmethod
    def open(self, claim: Claim) -> BinaryIO:
        """The claimed file's bytes, streamed (regular files only: NotRegular otherwise)."""

    @abstractmethod
    def release(self, claim: Claim) -> str:
        """Put a claimed file back in the inbox (under its own name if free); where it went."""

    @abstractmethod
    def finish(self, claim: Claim, status: str, sidecar: bytes, claim_id: str) -> str:
        """Write the sidecar, then move the file beside it into done/ or failed/ (``status``):
        that move is the commit point. Never overwrites (a taken name gets ``-N``). Where it
        went."""

    # -- recovery ------------------------------------------------------------------------------
    @abstractmethod
    def adopt_orphans(self) -> list[Claim]:
        """Take over the claims of processes that are gone; they are ours now."""

    @abstractmethod
    def has_claims(self) -> bool:
        """Is anything claimed (by anyone) right now?"""

    def find_finished(self, name: str, status: str, claim_id: str,
                      location: Optional[str]) -> Optional[str]:
        """Where an interrupted finish of ``claim_id`` put the file, when the crash came after
        the move but before the journal heard of it; None when it did not get that far (or
        the backend records that elsewhere)."""
        return None

    @property
    def recover_interval(self) -> Optional[float]:
        """Seconds between looks for abandoned claims while running (None: at start only)."""
        return None

    def order_store(self) -> Optional[OrderStore]:
        """Where ordering keeps its board for these folders (None: this backend has none)."""
        return None

    def wrap_journal(self, journal):
        """The journal the run path should use with this source (a backend may mirror SEND
        progress into its claims, so a worker on another machine can continue)."""
        return journal


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
