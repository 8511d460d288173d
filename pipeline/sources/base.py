"""The Source interface: where files come from and where they go, one implementation per backend.

Two seams, each an abstract class that the local folders and the S3 bucket implement:

- :class:`Source` (here), the run path: discover (``scan``, ``stat``, ``watch``), claim, read,
  release and finish one file, and recover what a dead process left behind. The runner, intake,
  work and recovery talk to nothing else. Optional capabilities are default methods here (a
  backend that has nothing to add inherits them), never attributes probed at run time.
- :class:`~pipeline.sources.view.FolderView` (view.py), the operator's view: listing and
  reading the four folders for ``status``, ``report``, ``retry-failed``, ``reconcile`` and
  ``prune``, plus the few writes those commands make (moving a failed file back, rewriting a
  sidecar, removing old files). It never claims anything.

A file is named by its *path below the inbox* (or the S3 prefix), with ``/`` separators; that
name is kept all the way to done/ or failed/.
"""

from __future__ import annotations

import queue
from abc import ABC, abstractmethod
from typing import BinaryIO, Callable, Iterator, Optional, Protocol

from pipeline.sources.orderstore import ClaimHooks, OrderStore
from pipeline.values import Claim, Drop


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
