"""The seam between ordering (flow/ordering.py) and a backend: where its board is stored, and
the hooks a backend calls around every take-over of a file.

Each backend implements :class:`OrderStore` over its own storage (files below
``processing/.order/`` on the filesystem, objects below that prefix in the bucket), so every
process sharing the folders or the bucket, on one machine or several, sees the same board.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Protocol


class OrderStore(ABC):
    """The small namespace beside the claims where ordering keeps its board
    (``processing/.order/``: hidden, so no listing, adoption or status ever counts it), shared
    by every process on the folders or the bucket. ``path``s are ``/``-separated below it.
    Every method raises StorageError when the storage fails."""

    @abstractmethod
    def list(self, folder: str, deep: bool = False) -> list[tuple[str, float]]:
        """(path below ``folder``, mtime) of each item in it (with ``deep``, in its subfolders
        too); [] when there is no such folder."""

    @abstractmethod
    def read(self, path: str) -> Optional[bytes]:
        """An item's bytes, or None when it does not exist."""

    @abstractmethod
    def write(self, path: str, data: bytes, create_only: bool = False) -> bool:
        """Write an item whole (readers see the old or the new bytes); with ``create_only``
        return False, writing nothing, when it exists."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove an item (an absent one is not an error)."""

    @abstractmethod
    def holds(self, owner: str, name: str, since: float) -> bool:
        """Might ``owner`` still be taking or holding the claim of ``name``, on an item it
        wrote at ``since``? (local: it is alive, or its dead claim folder still has the file;
        S3: it holds the lease, or wrote the item too recently to have taken it yet)."""

    @abstractmethod
    def present(self, name: str, stamp: float) -> bool:
        """Is the file ``name`` dropped at ``stamp`` in the inbox or claimed by anyone (alive or
        dead)? Another file under the same name (rewritten, dropped again) is not it."""

    @abstractmethod
    def exists(self, location: str) -> bool:
        """Is a finished file still at ``location`` (a path or s3:// URI)?"""

    @abstractmethod
    def in_failed(self, name: str) -> bool:
        """Might ``name`` lie in failed/ (under its own name or a ``-N`` one)? For a held
        entry whose exact location was not recorded yet (a kill right after the move)."""


class ClaimHooks(Protocol):
    """What ordering needs to hear from a backend around each take-over of a file."""

    def intend(self, name: str, stamp: float) -> None: ...

    def abandon(self, name: str, stamp: float) -> None: ...
