"""Leases: which worker owns an S3 object while it is in flight.

S3 has no atomic rename, so ownership is a small JSON object per name,
``<folders.processing>/.leases/<name>``, created with ``If-None-Match: *``: S3 lets exactly
one concurrent create succeed (412 or 409 for the others), so whoever creates the lease owns
the name. The lease holds its owner and an expiry (``expires_at``, the writer's clock +
``lease_seconds``); the owner renews it while it works, each renewal a compare-and-swap
(``If-Match: <our ETag>``), so a worker whose lease was taken over finds out at its next write.
A lease that has expired belongs to a worker that died (or stalled longer than the lease): any
worker may take it over, again by compare-and-swap on the ETag it read, so only one succeeds.

The lease also carries the claim's SEND progress (``progress``): how many SEND attempts were
started and, once Redox accepted one, its Log IDs. A worker on another machine that takes over
an abandoned lease continues from there instead of sending blindly (see progress.py).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from pipeline.errors import ClaimLost, Conflict, StorageError
from pipeline.jsondoc import parse_object
from pipeline.sources.s3.api import Bucket

log = logging.getLogger("pipeline.s3")
LEASE_DIR = ".leases/"


@dataclass
class Lease:
    """A lease we hold: ``etag`` is the version we last wrote (the compare-and-swap token)."""
    name: str
    key: str
    etag: str
    body: dict
    lost: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Leases:
    """The leases below ``prefix`` in ``bucket``; ``owner`` is this process's identity."""

    def __init__(self, bucket: Bucket, prefix: str, owner: str, seconds: float,
                 clock: Callable[[], float] = time.time):
        self.bucket, self.prefix, self.owner, self.seconds, self.clock = \
            bucket, prefix, owner, seconds, clock
        self.held: dict[str, Lease] = {}
        self._guard = threading.Lock()

    def key(self, name: str) -> str:
        return self.prefix + name

    def _body(self, name: str, carried: Optional[dict] = None) -> dict:
        now = self.clock()
        body = {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                "name": name, "acquired_at": now, "renewed_at": now,
                "expires_at": now + self.seconds, "progress": {}}
        body.update(carried or {})
        return body

    # -- taking a lease ---------------------------------------------------------------------
    def acquire(self, name: str, **facts) -> Lease:
        """Create the lease for ``name`` (create-only). ClaimLost if someone else holds it.
        ``facts`` (source ETag, size, ...) are kept in it for whoever might recover the claim."""
        return self._write(name, self._body(name, facts), "another worker holds it",
                           if_none_match=True)

    def read(self, name: str) -> Optional[tuple[dict, str]]:
        """The lease's body and ETag as stored now, or None if there is none."""
        found = self.bucket.get_with_etag(self.key(name))
        if found is None:
            return None
        raw, etag = found
        # unreadable: an empty body, treated as expired, so it can be taken over
        return parse_object(raw) or {}, etag

    def expired(self, body: dict) -> bool:
        return float(body.get("expires_at") or 0) <= self.clock()

    def take_over(self, name: str, old: dict, etag: str) -> Lease:
        """Replace an expired lease we read (ETag ``etag``) with ours, keeping what it knew
        about the object and its progress. ClaimLost if it changed since we read it."""
        carried = {k: old[k] for k in ("source_etag", "source_mtime", "size", "progress") if k in old}
        carried["previous_owner"] = old.get("owner")
        return self._write(name, self._body(name, carried), "another worker took it over first",
                           if_match=etag)

    def _write(self, name: str, body: dict, lost: str, **condition) -> Lease:
        """Write a new lease under ``condition`` (create-only, or replacing the version we
        read) and hold it; ClaimLost ``lost`` when the condition fails."""
        key = self.key(name)
        try:
            etag = self.bucket.put(key, _encode(body), **condition)
        except Conflict:
            raise ClaimLost(lost, self.bucket.uri(key)) from None
        lease = Lease(name, key, etag, body)
        with self._guard:
            self.held[name] = lease
        return lease

    # -- while we hold it -------------------------------------------------------------------
    def get(self, name: str) -> Optional[Lease]:
        with self._guard:
            return self.held.get(name)

    def renew(self, lease: Lease, **updates) -> None:
        """Push the expiry out (and merge ``updates`` into the body), only if the lease is still
        the version we wrote. ClaimLost if it was taken over: we must not act on it any more."""
        with lease.lock:
            if lease.lost:
                raise ClaimLost("our lease was taken over", self.bucket.uri(lease.key))
            now = self.clock()
            body = dict(lease.body, **updates, renewed_at=now, expires_at=now + self.seconds)
            try:
                lease.etag = self.bucket.put(lease.key, _encode(body), if_match=lease.etag)
            except Conflict:
                lease.lost = True
                raise ClaimLost("our lease was taken over", self.bucket.uri(lease.key)) from None
            lease.body = body

    def renew_due(self) -> list[Lease]:
        """Renew every lease past a third of its life. Returns the ones found lost. A failed
        renewal (throttling, network) is logged and tried again at the next beat."""
        lost = []
        with self._guard:
            leases = list(self.held.values())
        for lease in leases:
            if lease.lost or self.clock() < float(lease.body["renewed_at"]) + self.seconds / 3:
                continue
            try:
                self.renew(lease)
            except ClaimLost:
                log.error("lost a lease while working on it (stalled longer than lease_seconds?)",
                          extra={"file": lease.name})
                lost.append(lease)
            except StorageError as exc:
                log.warning("could not renew a lease; trying again", extra={"file": lease.name,
                                                                            "error": str(exc)})
        return lost

    def release(self, lease: Lease) -> None:
        """Delete the lease (only the version we wrote: a conditional delete), and forget it."""
        with self._guard:
            self.held.pop(lease.name, None)
        if lease.lost:
            return
        try:
            self.bucket.delete(lease.key, if_match=lease.etag)
        except Conflict:
            pass           # taken over after all: it is someone else's now

    def forget(self, lease: Lease) -> None:
        with self._guard:
            self.held.pop(lease.name, None)

    # -- listing ----------------------------------------------------------------------------
    def names(self, page_size: int) -> Iterator[str]:
        """Names that have a lease, one listing page at a time."""
        for page in self.bucket.pages(self.prefix, page_size):
            for item in page:
                yield item["Key"][len(self.prefix):]


def _encode(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True).encode("utf-8")


class Heartbeat:
    """A daemon thread calling ``beat()`` every ``interval`` seconds until stopped; a failing
    beat is logged and the next one tried (renewals must outlive one bad request)."""

    def __init__(self, beat: Callable[[], None], interval: float):
        self.beat, self.interval = beat, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s3-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:      # credentials, network, a bug: keep beating
                log.error("lease heartbeat failed; trying again", extra={"error": str(exc)})
