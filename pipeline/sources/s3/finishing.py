"""Releasing and finishing a claimed S3 object, mixed into S3Store.

Finishing writes the sidecar create-only (which reserves the name in done/ or failed/), then
copies the object beside it and deletes it from processing/: a crash anywhere leaves a state the
next owner completes. Every step first makes sure the lease is still ours (``_guard``).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Callable, Optional

from pipeline import sidecar as sidecar_mod
from pipeline.errors import ClaimLost, Conflict, StorageError
from pipeline.names import candidates as _candidates
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.s3.api import Bucket
from pipeline.sources.s3.lease import Lease, Leases
from pipeline.sources.s3.progress import carry_progress
from pipeline.values import Claim

if TYPE_CHECKING:
    from pipeline.sources.s3.feed import Feed


class Finishing:
    """The release and finish half of S3Store (its bucket, leases, folders and feed)."""

    bucket: Bucket
    leases: Leases
    prefix: str
    inbox: str
    folders: dict[str, str]
    lease_seconds: float
    clock: Callable[[], float]
    feed: Optional[Feed]

    # -- release / finish ------------------------------------------------------------------
    def _guard(self, claim: Claim) -> Lease:
        """Our lease on the claim, with at least two thirds of its life left (renewed now
        unless it just was: nobody can take over a lease before it expires). ClaimLost (and
        our books cleaned) if it was lost."""
        lease = self.leases.get(claim.name)
        if lease is None:
            raise ClaimLost("we no longer hold its lease", self.bucket.uri(claim.location))
        if not lease.lost and self.clock() < float(lease.body["renewed_at"]) + self.lease_seconds / 3:
            return lease
        try:
            self.leases.renew(lease)
        except ClaimLost:
            self._abandon(claim.name)
            raise
        return lease

    def _abandon(self, name: str) -> None:
        lease = self.leases.get(name)
        if lease is not None:
            self.leases.forget(lease)
        if self.feed:
            self.feed.defer(name, self.lease_seconds / 2)

    def release(self, claim: Claim) -> str:
        """Put a claimed object back in the inbox (under its own name if free), carrying its
        SEND progress in its metadata for whichever worker claims it next."""
        lease = self._guard(claim)
        folder, base = posixpath.split(claim.name)
        for candidate in _candidates(base):
            dst = self.prefix + posixpath.join(folder, candidate)
            if self.bucket.head(dst) is None:
                break
        else:  # pragma: no cover - 100,000 objects under one name
            raise StorageError("no free name to release to", self.inbox)
        self.bucket.copy(claim.location, dst, claim.size,
                         metadata=carry_progress(lease.body.get("progress"), claim.mtime))
        self.bucket.delete(claim.location)
        self.leases.release(lease)
        if self.feed:
            self.feed.release(claim.name)
        return self.bucket.uri(dst)

    def finish(self, claim: Claim, status: str, sidecar: bytes, claim_id: str) -> str:
        """Sidecar first (create-only: it reserves the name), then the object beside it, then
        out of processing/. Never overwrites: a taken name gets a ``-N`` suffix. Returns
        ``s3://bucket/key`` of the finished object."""
        lease = self._guard(claim)
        folder, base = posixpath.split(claim.name)
        for candidate in _candidates(base):
            dest = self.folders[status] + posixpath.join(folder, candidate)
            if self._finish_into(claim, dest, sidecar, claim_id):
                break
        else:  # pragma: no cover - 100,000 objects under one name
            raise StorageError("no free name to finish to", self.bucket.uri(self.folders[status]))
        self.bucket.delete(claim.location)
        self.leases.release(lease)
        if self.feed:
            self.feed.finished(claim.name, lease.body.get("source_etag"))
        return self.bucket.uri(dest)

    def _finish_into(self, claim: Claim, dest: str, sidecar: bytes, claim_id: str) -> bool:
        car = dest + SIDECAR_SUFFIX
        if self.bucket.head(dest) is not None:
            # taken, unless it is ours from an interrupted finish (sidecar says so)
            return self._sidecar_is_ours(car, claim, sidecar, claim_id)
        try:
            self.bucket.put(car, sidecar, if_none_match=True)
        except Conflict:
            if not self._sidecar_is_ours(car, claim, sidecar, claim_id):
                return False
            self.bucket.put(car, sidecar)          # ours: refresh it
        self.bucket.copy(claim.location, dest, claim.size)
        return True

    def _sidecar_is_ours(self, car: str, claim: Claim, sidecar: bytes, claim_id: str) -> bool:
        """A sidecar written by our own claim, or by a dead worker's interrupted finish of the
        very same object (same source key and bytes)."""
        found = self.bucket.get_with_etag(car, sidecar_mod.MAX_BYTES + 1)
        if found is None:
            return False
        theirs, mine = sidecar_mod.parse(found[0]) or {}, sidecar_mod.parse(sidecar) or {}
        if theirs.get("claim_id") == claim_id:
            return True
        return (theirs.get("source") == claim.source and theirs.get("sha256") == mine.get("sha256")
                and bool(mine.get("sha256")))
