"""The ordering board of an S3 source: small objects below ``<processing>/.order/``.

Shared through the bucket by every worker on every machine (S3's listings and reads are
strongly consistent). Liveness comes from the claims' leases (lease.py): an unread mark stands
while its writer holds the lease of its file, or for a lease's time after it was written (the
writer may not have taken the lease yet: marks are written first). A file counts as present
while a lease for it (with its drop time) exists, or while it lies in the inbox.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from pipeline.errors import Conflict
from pipeline.names import candidates
from pipeline.sources.orderstore import OrderStore
from pipeline.sources.s3.api import Bucket, epoch
from pipeline.sources.s3.lease import Leases
from pipeline.sources.s3.progress import dropped_at

BOARD = ".order/"


class S3OrderStore(OrderStore):
    """The board below ``processing`` in ``bucket``; ``leases`` tell who holds what."""

    def __init__(self, bucket: Bucket, *, prefix: str, processing: str, failed: str, leases: Leases,
                 lease_seconds: float, page_size: int = 1000, clock: Callable[[], float] = time.time):
        self.bucket, self.prefix, self.processing, self.failed = bucket, prefix, processing, failed
        self.leases, self.lease_seconds, self.page_size, self.clock = leases, lease_seconds, page_size, clock
        self.root = processing + BOARD

    def list(self, folder: str, deep: bool = False) -> list[tuple[str, float]]:
        base = f"{self.root}{folder}/"
        found = []
        for page in self.bucket.pages(base, self.page_size):
            for item in page:
                rel = item["Key"][len(base):]
                if rel and (deep or "/" not in rel):
                    found.append((rel, epoch(item["LastModified"])))
        return found

    def read(self, path: str) -> Optional[bytes]:
        found = self.bucket.get_with_etag(self.root + path, 1 << 16)
        return found[0] if found else None

    def write(self, path: str, data: bytes, create_only: bool = False) -> bool:
        try:
            self.bucket.put(self.root + path, data, if_none_match=create_only)
        except Conflict:
            return False
        return True

    def delete(self, path: str) -> None:
        self.bucket.delete(self.root + path)

    def holds(self, owner: str, name: str, since: float) -> bool:
        if self.clock() - since < self.lease_seconds:
            return True
        found = self.leases.read(name)
        return found is not None and found[0].get("owner") == owner

    def present(self, name: str, stamp: float) -> bool:
        found = self.leases.read(name)               # claimed (or being claimed): its drop time
        if found is not None and abs(float(found[0].get("source_mtime") or 0) - stamp) < 1e-3:
            return True
        head = self.bucket.head(self.prefix + name)
        return head is not None and abs((dropped_at(head) or epoch(head["LastModified"])) - stamp) < 1e-3

    def exists(self, location: str) -> bool:
        head = f"s3://{self.bucket.name}/"
        return location.startswith(head) and self.bucket.head(location[len(head):]) is not None

    def in_failed(self, name: str) -> bool:
        folder, _, base = name.rpartition("/")
        where = self.failed + (folder + "/" if folder else "")
        # finishing takes the first free name, so a missing one ends the search
        return self.bucket.head(where + next(candidates(base))) is not None
