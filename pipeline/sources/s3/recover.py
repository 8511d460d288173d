"""Recovery for the S3 store: claims whose worker died, wherever it died.

A worker may die at any step; its lease then expires (nobody renews it) and any worker may take
it over (lease.py). What the dead owner was doing is read from where the object is:

- in processing/ → it was claimed: the claim is ours now (its SEND progress comes along);
- still in the inbox with the lease's source ETag → the move was interrupted: finish it;
- also in the inbox after the copy → the copy in processing/ is the claim, the inbox copy
  (same ETag) is deleted;
- nowhere → it was finished (the lease's own deletion was what failed): drop the lease.

An object in processing/ with no lease at all (an operator's doing) is leased and claimed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Optional

from pipeline.errors import ClaimLost
from pipeline.sources.s3.api import epoch
from pipeline.sources.s3.keys import is_ours
from pipeline.sources.s3.lease import LEASE_DIR, Lease
from pipeline.values import Claim

if TYPE_CHECKING:
    from pipeline.sources.s3.api import Bucket
    from pipeline.sources.s3.feed import Feed
    from pipeline.sources.s3.lease import Leases

log = logging.getLogger("pipeline.s3")


class Recovery:
    """Mixed into S3Store (uses its bucket, leases, prefixes and ``_move_in``)."""

    bucket: Bucket
    leases: Leases
    owner: str
    processing: str
    page_size: int
    feed: Optional[Feed]
    _inherited: dict[str, dict]
    _move_in: Callable[..., Optional[Claim]]      # S3Store's
    _announce: Callable[[str, float], None]       # Source's: ordering hears of a take-over first
    _withdraw: Callable[[str, float], None]

    def adopt_orphans(self) -> list[Claim]:
        """Take over claims whose lease expired (their worker died or stalled), and objects
        left in processing/ without any lease. Returns them as our claims."""
        adopted: list[Claim] = []
        leased: set[str] = set()
        for name in self.leases.names(self.page_size):
            leased.add(name)
            if self.leases.get(name) is None and not name.startswith("."):
                adopted += self._adopt_leased(name)
        lease_dir = self.processing + LEASE_DIR
        for page in self.bucket.pages(self.processing, self.page_size):
            for item in page:
                key = item["Key"]
                name = key[len(self.processing):]
                if key.startswith(lease_dir) or name in leased or not is_ours(name, "*"):
                    continue
                stamp = epoch(item["LastModified"])
                self._announce(name, stamp)
                try:
                    lease = self.leases.acquire(name, source_mtime=stamp)
                except ClaimLost:
                    self._withdraw(name, stamp)
                    continue
                adopted += self._settle_adopted(lease)
        return adopted

    def _adopt_leased(self, name: str) -> list[Claim]:
        found = self.leases.read(name)
        if found is None:
            return []
        body, etag = found
        if body.get("owner") == self.owner or not self.leases.expired(body):
            return []
        stamp = float(body.get("source_mtime") or 0)
        self._announce(name, stamp)         # ordering: known to be ours before it is
        try:
            lease = self.leases.take_over(name, body, etag)
        except ClaimLost:
            self._withdraw(name, stamp)
            return []
        log.warning("took over an expired lease", extra={"file": name, "holder": body.get("owner")})
        return self._settle_adopted(lease)

    def _settle_adopted(self, lease: Lease) -> list[Claim]:
        try:
            claim = self._move_in(lease, int(lease.body.get("size") or 0),
                                  float(lease.body.get("source_mtime") or 0), adopting=True)
        except ClaimLost:
            claim = None
        if claim is None:
            self.leases.release(lease)
            self._withdraw(lease.name, float(lease.body.get("source_mtime") or 0))
            return []
        if lease.body.get("progress"):
            self._inherited[claim.name] = dict(lease.body["progress"])
        if self.feed:
            self.feed.attach(claim.name)
        return [claim]

    def has_claims(self) -> bool:
        """Is anything in processing/ (ours, someone else's, or nobody's)? Leases and the
        ordering board (hidden folders) are not claims."""
        for page in self.bucket.pages(self.processing, self.page_size):
            if any(is_ours(item["Key"][len(self.processing):], "*") for item in page):
                return True
        return False
