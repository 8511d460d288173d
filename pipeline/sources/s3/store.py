"""The S3 source: inbox, processing, done and failed as key prefixes in one bucket.

The :class:`~pipeline.sources.base.Source` for ``source.kind: s3``. A name is the key below
``source.prefix`` and keeps its path: ``incoming/a/b.json`` → ``processing/a/b.json`` →
``done/a/b.json`` with its sidecar ``done/a/b.json.redox.json`` beside it.

S3 has no atomic rename, so a claim is a create-only lease (lease.py)
followed by an idempotent copy + delete into processing/. Every later step first checks the
lease is still ours. Finishing writes the sidecar create-only (which reserves the name in
done/ or failed/), then copies the object beside it and deletes it from processing/: a crash
anywhere leaves a state the next owner completes. With ``source.queue_url`` the names come from
S3 event notifications on SQS (feed.py) instead of listings.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, BinaryIO, Iterator, Optional

from pipeline.errors import ClaimLost, Conflict, PipelineError, StorageError
from pipeline.sources.base import Source
from pipeline.sources.s3.api import Bucket, epoch
from pipeline.sources.s3.finishing import Finishing
from pipeline.sources.s3.keys import is_ours
from pipeline.sources.s3.lease import LEASE_DIR, Heartbeat, Lease, Leases
from pipeline.sources.s3.orderstore import S3OrderStore
from pipeline.sources.s3.progress import Progress, carried_progress, dropped_at
from pipeline.sources.s3.recover import Recovery
from pipeline.values import Claim, Drop

if TYPE_CHECKING:
    from pipeline.sources.s3.feed import Feed


LISTED_MAX = 200_000      # listed ETags kept for claims (about 15 MB); past that, HEADs


class S3Store(Finishing, Recovery, Progress, Source):
    """One bucket's prefixes. ``owner`` identifies this process in leases; ``feed`` (an
    feed.Feed) switches discovery from listing to SQS notifications."""

    kind = "s3"

    def __init__(self, bucket: Bucket, *, prefix: str, processing: str, done: str, failed: str,
                 pattern: str, owner: str, lease_seconds: float, page_size: int = 1000,
                 clock=time.time):
        self.bucket, self.pattern, self.owner, self.clock = bucket, pattern, owner, clock
        self.prefix, self.processing = prefix, processing
        self.folders = {"done": done, "failed": failed}
        self.page_size, self.lease_seconds = page_size, lease_seconds
        self.leases = Leases(bucket, processing + LEASE_DIR, owner, lease_seconds, clock)
        self.inbox = bucket.uri(prefix)
        self.feed: Optional[Feed] = None
        self._skip = tuple(p for p in (processing, done, failed) if p)
        self._seen: dict[str, tuple] = {}         # name → (ETag, carried progress) from stat()
        self._listed: dict[str, str] = {}         # name → ETag, from the listing, until claimed
        self._inherited: dict[str, dict] = {}     # name → SEND progress of a dead owner
        self._beat: Optional[Heartbeat] = None

    # -- lifecycle -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Start renewing our leases (SQS messages are kept hidden by the feed's own keeper, so
        a slow lease renewal never delays them)."""
        if self._beat is None:
            self._beat = Heartbeat(self.beat, max(0.2, self.lease_seconds / 6)).start()

    def close(self) -> None:
        """Stop the heartbeat; hand messages we did not get to back to the queue and stop
        extending the others."""
        if self.feed:
            self.feed.close()
        if self._beat:
            self._beat.stop()
            self._beat = None

    def beat(self) -> None:
        """One heartbeat: renew leases past a third of their life."""
        for lease in self.leases.renew_due():
            self._abandon(lease.name)

    def watch(self, events, once: bool = False):
        """SQS mode: start turning notifications into ("hint", name) events (the runner's
        fast path, like the local Watcher). Returns something with ``stop()``."""
        return self.feed.start(events, once) if self.feed else None

    def follow(self, target) -> None:
        """SQS mode: hold about twice the runner's files in flight in unclaimed messages."""
        if self.feed is not None:
            self.feed.target = target

    @property
    def parallel_claims(self) -> bool:
        return True           # a claim is several round trips: the runner makes them on workers

    def use_feed(self, feed) -> None:
        """Take names from SQS notifications (feed.Feed) instead of listings."""
        self.feed = feed

    @property
    def queue_fed(self) -> bool:
        return self.feed is not None

    @property
    def recover_interval(self) -> Optional[float]:
        """Look for expired leases (a worker on some machine died) every half lease, not
        only at start."""
        return self.lease_seconds / 2

    def order_store(self) -> S3OrderStore:
        return S3OrderStore(self.bucket, prefix=self.prefix, processing=self.processing,
                            failed=self.folders["failed"], leases=self.leases,
                            lease_seconds=self.lease_seconds, page_size=self.page_size, clock=self.clock)

    def drained(self) -> bool:
        """SQS ``--once``: the queue had nothing more and every message we took is resolved."""
        return self.feed is None or self.feed.drained()

    # -- discover --------------------------------------------------------------------------
    def name_of(self, key: str) -> Optional[str]:
        """The name for ``key``, or None when the key is not ours (outside the prefix, under
        one of the folders, or a name that does not count)."""
        if not key.startswith(self.prefix) or key.startswith(self._skip):
            return None
        name = key[len(self.prefix):]
        return name if is_ours(name, self.pattern) else None

    def scan(self) -> Iterator[Drop]:
        """The candidates: one listing page at a time (never the whole listing in memory),
        or in SQS mode the names notifications brought in. ``mtime`` is LastModified, so the
        runner's Settler holds back objects younger than ``settle_seconds``."""
        if self.feed:
            yield from self.feed.drops()
            return
        for page in self.bucket.pages(self.prefix, self.page_size):
            if len(self._listed) > LISTED_MAX:
                self._listed.clear()              # a claim then asks with a HEAD, as before
            for item in page:
                name = self.name_of(item["Key"])
                if name is not None:
                    if item.get("ETag") and self.claim_hooks is None:   # ordering: a HEAD anyway
                        self._listed[name] = item["ETag"]
                    yield Drop(name, int(item["Size"]), epoch(item["LastModified"]))

    def stat_to_claim(self, settled: Drop) -> Optional[Drop]:
        """The object as the listing saw it, without a HEAD: the claim's copy is conditional on
        the listed ETag (a replaced object is not taken: it settles again), and what a released
        object carries in its metadata (its SEND progress) comes with the GET that reads it.
        With ordering on (the drop time a released object carries decides its place) and in
        SQS mode (names without a listing) it asks with a HEAD, as ``stat`` does."""
        etag = self._listed.pop(settled.name, None)
        if etag is None or self.feed is not None or self.claim_hooks is not None:
            return self.stat(settled.name)
        self._seen[settled.name] = (etag, None)
        return settled

    def stat(self, name: str) -> Optional[Drop]:
        """The object ``name`` in the inbox as it is now, or None. In SQS mode a name that is
        not in the inbox settles its messages (feed.Feed: gone, elsewhere or ours)."""
        head = self.bucket.head(self.prefix + name)
        if head is not None:
            if len(self._seen) > 10000:
                self._seen.clear()
            self._seen[name] = (head["ETag"], carried_progress(head))
            # an object put back (released, retry-failed) keeps its drop time in its metadata
            return Drop(name, int(head["ContentLength"]), dropped_at(head) or epoch(head["LastModified"]))
        if self.feed:
            self._settle_messages(name)
        return None

    def _settle_messages(self, name: str) -> None:
        feed = self.feed
        if feed is None or not feed.has(name):
            return
        if self.leases.get(name) is not None:
            feed.attach(name)                      # we are working on it: ack when it finishes
            return
        found = self.leases.read(name)
        if found is not None:
            body, _ = found
            wait = float(body.get("expires_at") or 0) - self.clock()
            # someone holds it (or held it and died): ask again once the lease may be free
            feed.defer(name, max(wait, 0) + self.lease_seconds / 2)
        elif self.bucket.head(self.processing + name) is not None:
            feed.defer(name, self.lease_seconds / 2)           # an orphan: recovery takes it
        else:
            feed.gone(name)                        # finished (or never there): nothing to do

    # -- claim -----------------------------------------------------------------------------
    def claim(self, drop: Drop) -> Claim:
        """Take the lease on ``drop.name``, then move the object into processing/.
        ClaimLost if another worker holds the name or the object vanished."""
        etag, carried = self._seen.pop(drop.name, (None, None))
        self._announce(drop.name, drop.mtime)
        try:
            lease = self.leases.acquire(drop.name, source_etag=etag, source_mtime=drop.mtime,
                                        size=drop.size, progress=carried or {})
        except BaseException:
            self._withdraw(drop.name, drop.mtime)
            raise
        try:
            claim = self._move_in(lease, drop.size, drop.mtime)
            if claim is None:
                raise ClaimLost("the object vanished", self.bucket.uri(self.prefix + drop.name))
        except ClaimLost:
            self.leases.release(lease)
            self._withdraw(drop.name, drop.mtime)
            raise
        if carried and lease.body.get("source_etag"):
            self._inherited[drop.name] = carried       # released by a worker elsewhere
        if self.feed:
            self.feed.attach(drop.name)
        return claim

    def _move_in(self, lease: Lease, size: int, mtime: float, adopting: bool = False) -> Optional[Claim]:
        """Copy inbox → processing, then delete from the inbox (only the version we copied:
        the lease's ``source_etag``). Returns None if the object is nowhere.

        Idempotent: when adopting a dead owner's lease, an object already in processing/ is
        the one it claimed, and an inbox object with the lease's source ETag is the one it
        copied there (its move was interrupted), so that inbox copy is deleted. On a fresh
        lease, an object already in processing/ is an unleased leftover: it is what we claim
        (the inbox object waits for a later claim)."""
        name, etag = lease.name, lease.body.get("source_etag")
        src, dst = self.prefix + name, self.processing + name
        head = self.bucket.head(dst)
        if head is not None:
            if adopting and etag:
                self._delete_version(src, etag)
            elif not adopting:
                self.leases.renew(lease, source_etag=None, source_mtime=epoch(head["LastModified"]),
                                  progress={})
            return self._claim_of(lease, dst, int(head["ContentLength"]), epoch(head["LastModified"]))
        if etag is None:
            source = self.bucket.head(src)
            if source is None:
                return None
            etag, size, mtime = source["ETag"], int(source["ContentLength"]), epoch(source["LastModified"])
            self.leases.renew(lease, source_etag=etag, source_mtime=mtime, size=size)
        copied = self.bucket.copy(src, dst, size, src_etag=etag)
        if copied and "-" not in etag and copied != etag:
            # a store that ignores CopySourceIfMatch copied a newer object: not the one we
            # leased, which is gone (the newer one waits in the inbox for a later claim)
            self._undo_move(lease, dst)
            raise ClaimLost("the object was replaced since it was seen", self.bucket.uri(src))
        try:
            self._delete_version(src, etag)
        except StorageError:
            self._undo_move(lease, dst)
            raise
        return self._claim_of(lease, dst, size, mtime)

    def _delete_version(self, key: str, etag: str) -> None:
        try:
            self.bucket.delete(key, if_match=etag)
        except Conflict:
            pass        # a newer object under the same name: it stays for a later claim

    def _claim_of(self, lease: Lease, location: str, size: int, mtime: float) -> Claim:
        return Claim(name=lease.name, location=location, source=self.bucket.uri(self.prefix + lease.name),
                     size=size, mtime=float(lease.body.get("source_mtime") or mtime),
                     claimed_at=self.clock())

    def _undo_move(self, lease: Lease, dst: str) -> None:
        """The object is in both places and the inbox copy would not go: take ours back out
        so it is not sent twice. If even that fails, the lease is left to expire and
        recovery finishes the move (it knows the source ETag)."""
        try:
            self.bucket.delete(dst)
        except PipelineError:
            self.leases.forget(lease)
            return
        self.leases.release(lease)

    def open(self, claim: Claim) -> BinaryIO:
        """A streaming, read-only file object over the claimed object. The SEND progress a
        released object carries in its metadata (not read at its claim when that came from a
        listing) is taken from this GET before the journal hears of the claim."""
        metadata: dict = {}
        reader = self.bucket.open(claim.location, metadata=metadata)
        self._carry_in(claim.name, metadata)
        return reader

    def _carry_in(self, name: str, metadata: dict) -> None:
        carried = carried_progress({"Metadata": metadata})
        lease = self.leases.get(name)
        if not carried or lease is None or name in self._inherited:
            return
        with lease.lock:
            if lease.body.get("progress") or not lease.body.get("source_etag"):
                return              # adopted (its lease's progress counts) or known at the claim
            lease.body = dict(lease.body, progress=carried)    # written with the next renewal
        self._inherited[name] = carried
