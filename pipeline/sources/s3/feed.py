"""SQS mode: S3 ObjectCreated notifications instead of listings (scale-out across machines).

Several workers on several machines share one queue. A background thread long-polls it and
turns each notification into a ("hint", name) event for the runner, the same fast path the
local Watcher uses; the runner then stats and claims as usual (the S3 lease decides who gets
the object). The messages themselves stay ours until the object is settled:

- received, claimed or not yet → kept invisible while this process lives: each receive asks for
  ``visibility`` seconds (``source.queue_visibility_seconds``, short: 30 s by default), and the
  feed's own keeper thread extends every message it holds once a third of that has passed.
  A worker killed with -9 therefore holds its messages for at most ``visibility`` seconds
  before another worker receives them;
- claimed by us → deleted only after the object reached done/ or failed/ (``finished``);
- not in the inbox and nowhere else → already finished, or never ours: deleted (``gone``);
- held by another worker or orphaned → made visible again once its lease may be free (``defer``)
  so it is asked about again; recovery of abandoned leases does not depend on it;
- released at shutdown, or not yet looked at when we stop → visible again at once;
- a body we cannot read as an S3 notification (poison) → left alone: never deleted, never
  extended, so SQS redelivers it until the queue's redrive policy (maxReceiveCount) moves it
  to the dead-letter queue.

Notifications for other buckets, keys outside the prefix or under the folders, names that do not
count, ``s3:TestEvent`` and non-ObjectCreated events are deleted at once: nothing to do.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional

from pipeline.errors import AuthError, PipelineError, StorageError
from pipeline.sources.s3.messages import Msg, parse
from pipeline.values import Drop

log = logging.getLogger("pipeline.sqs")


class Feed:
    """The queue's messages as names to work on. Thread-safe: the poller, the runner loop,
    workers (finish) and the heartbeat all call in."""

    def __init__(self, queue, *, bucket: str, name_of: Callable[[str], Optional[str]],
                 visibility: int, wait: int, prefetch: int, clock=time.monotonic):
        self.queue, self.bucket, self.name_of = queue, bucket, name_of
        self.visibility, self.wait, self.prefetch, self.clock = visibility, wait, prefetch, clock
        self.target: Optional[Callable[[], int]] = None     # the runner's files in flight
        self._lock = threading.Condition()
        self._pending: dict[str, list[Msg]] = {}     # name → messages not yet claimed
        self._held: dict[str, list[Msg]] = {}        # name → messages of our claim
        self._stopping = threading.Event()
        self._closing = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._keeper: Optional[threading.Thread] = None
        # how often the keeper looks for messages due an extension: each is extended between a
        # third and half of the visibility after the last, well before it runs out
        self.beat_seconds = max(0.2, visibility / 6)
        self._events: Optional[queue.Queue] = None
        self._once = False
        self._exhausted = False

    # -- the poller --------------------------------------------------------------------------
    def start(self, events, once: bool) -> "Feed":
        """Start polling; names go to ``events`` as ("hint", name). With ``once`` polling ends
        at the first empty answer (the queue is drained)."""
        self._events, self._once = events, once
        self._thread = threading.Thread(target=self._poll, args=(events,), name="sqs-feed",
                                        daemon=True)
        self._thread.start()
        return self

    def _poll(self, events: queue.Queue) -> None:
        while not self._stopping.is_set():
            with self._lock:
                room = self.holding() - self._count()
                if room <= 0:
                    self._lock.wait(1.0)
                    continue
            try:
                got = self.receive(min(10, room), 1 if self._once else self.wait)
            except AuthError as exc:
                events.put(("fatal", str(exc)))
                return
            except StorageError as exc:
                log.warning("cannot receive from the queue; trying again", extra={"error": str(exc)})
                self._stopping.wait(min(30.0, max(1.0, self.wait)))
                continue
            except Exception:       # a bug must not silently stop the feed: log, go on
                log.exception("unexpected error while receiving; trying again")
                self._stopping.wait(1.0)
                continue
            if not got and self._once:
                self._exhausted = True
                events.put(("wake",))                 # the runner may be done now
                return

    def receive(self, count: int, wait: float) -> int:
        """One receive call; relevant names are kept and hinted. Returns how many messages."""
        messages = self.queue.receive(count, wait, self.visibility)
        for raw in messages:
            self._take(raw)
        if self._stopping.is_set():
            self._hand_back_pending()
        return len(messages)

    def _take(self, raw: dict) -> None:
        notes = parse(raw.get("Body", ""), self.bucket)
        msg_id = raw.get("MessageId", "")
        if notes is None:
            log.warning("not an S3 notification; left for the dead-letter queue",
                        extra={"message_id": msg_id, "receive_count":
                               raw.get("Attributes", {}).get("ApproximateReceiveCount")})
            return
        mine = {}
        for note in notes:
            name = self.name_of(note.key)
            if name is not None:
                mine[name] = note
        if not mine:
            self._delete([raw["ReceiptHandle"]], "nothing for us (outside the prefix, a test event)")
            return
        msg = Msg(msg_id, raw["ReceiptHandle"], {n: note.etag for n, note in mine.items()},
                  dict(mine), self.clock())
        with self._lock:
            for name in mine:
                self._pending.setdefault(name, []).append(msg)
            self._keep_alive()
        if self._events is not None:
            for name in mine:
                self._events.put(("hint", name))

    def stop(self) -> None:
        """Stop polling; messages not yet claimed become visible to other workers at once.
        Messages of claims still in flight stay hidden until :meth:`close`."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.wait + 20)
        self._hand_back_pending()

    def _hand_back_pending(self) -> None:
        with self._lock:
            msgs = self._unique(self._pending)
            self._forget(msgs)
        self._visible(msgs, 0)

    def close(self) -> None:
        """Stop polling and stop extending: nothing we hold is in flight any more."""
        self.stop()
        self._closing.set()
        if self._keeper is not None:
            self._keeper.join(timeout=10)

    def holding(self) -> int:
        """The most messages to hold unclaimed: twice the runner's files in flight (its
        concurrency target, once it follows one), at least 10, at most ``prefetch``."""
        if self.target is None:
            return self.prefetch
        return max(10, min(self.prefetch, 2 * self.target()))

    def drained(self) -> bool:
        with self._lock:
            return self._exhausted and not self._pending

    # -- what the store asks -----------------------------------------------------------------
    def drops(self) -> list[Drop]:
        """The names waiting to be claimed, with size and event time from the notification
        (a scan in SQS mode lists nothing). Without a poller (``run --once`` asking whether
        there is anything to do) one short receive comes first."""
        while self._thread is None and not self._pending and not self._exhausted:
            if not self.receive(min(10, self.holding()), 1):
                break           # nothing (more) there right now
        with self._lock:
            drops = {}
            for name, msgs in self._pending.items():
                note = msgs[-1].notes.get(name)
                drops[name] = Drop(name, note.size if note else 0, note.when if note else 0.0)
        return list(drops.values())

    def has(self, name: str) -> bool:
        with self._lock:
            return name in self._pending

    def attach(self, name: str) -> None:
        """We claimed ``name``: its messages are ours until it is finished."""
        with self._lock:
            msgs = self._pending.pop(name, [])
            self._held.setdefault(name, []).extend(msgs)
            self._lock.notify_all()

    def finished(self, name: str, etag: Optional[str]) -> None:
        """``name`` reached done/ or failed/: delete the messages about that object. Messages
        about another version (a newer upload under the same name) go back to pending."""
        etag = etag.strip('"') if etag else None
        with self._lock:
            msgs = self._held.pop(name, [])
            done = [m for m in msgs if etag is not None and m.names.get(name) in (etag, None)]
            for m in msgs:
                if m not in done:
                    self._pending.setdefault(name, []).append(m)
        self._settle(name, done, "finished")

    def gone(self, name: str) -> None:
        """``name`` is in neither the inbox nor processing/: finished (or never there)."""
        with self._lock:
            msgs = self._pending.pop(name, []) + self._held.pop(name, [])
            self._lock.notify_all()
        self._settle(name, msgs, "already finished")

    def defer(self, name: str, seconds: float) -> None:
        """Someone else has ``name`` (or it is an orphan): its messages come back later."""
        with self._lock:
            msgs = self._pending.pop(name, []) + self._held.pop(name, [])
            self._forget(msgs)
        self._visible(msgs, seconds)

    def release(self, name: str) -> None:
        """Our claim went back to the inbox: its messages become visible again now."""
        self.defer(name, 0)

    # -- the keeper ------------------------------------------------------------------------
    def _keep_alive(self) -> None:
        """Start the keeper with the first message kept (caller holds the lock): messages are
        extended from their receipt on, whether or not the runner has started yet."""
        if self._keeper is None and not self._closing.is_set():
            self._keeper = threading.Thread(target=self._keep, name="sqs-keeper", daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        while not self._closing.wait(self.beat_seconds):
            try:
                self.extend_due()
            except Exception:       # a bug must not silently let every message come back
                log.exception("unexpected error while extending message visibility")

    def extend_due(self) -> None:
        """Keep our messages hidden while we hold them (every third of the visibility)."""
        now = self.clock()
        with self._lock:
            due = [m for m in self._unique(self._pending) + self._unique(self._held)
                   if now >= m.extended_at + self.visibility / 3]
            for m in due:
                m.extended_at = now
        if due:
            try:
                self.queue.change_visibility(list({m.handle for m in due}), self.visibility)
            except PipelineError as exc:
                log.warning("could not extend message visibility", extra={"error": str(exc)})

    # -- helpers ---------------------------------------------------------------------------
    def _settle(self, name: str, msgs: list[Msg], why: str) -> None:
        """Drop ``name`` from these messages; delete each message nothing else waits for."""
        finished = []
        with self._lock:
            for m in msgs:
                m.names.pop(name, None)
                if not m.names and m not in finished:
                    finished.append(m)
            self._forget(finished)
            self._lock.notify_all()
        if finished:
            self._delete([m.handle for m in finished], why)

    def _forget(self, msgs: list[Msg]) -> None:
        """Remove these messages from every name (caller holds the lock)."""
        for book in (self._pending, self._held):
            for name in list(book):
                book[name] = [m for m in book[name] if m not in msgs]
                if not book[name]:
                    del book[name]
        self._lock.notify_all()

    def _delete(self, handles: list[str], why: str) -> None:
        try:
            self.queue.delete(handles)
            log.debug("deleted notifications", extra={"count": len(handles), "reason": why})
        except PipelineError as exc:   # it comes back and is settled again: nothing is lost
            log.warning("could not delete notifications", extra={"error": str(exc)})

    def _visible(self, msgs: list[Msg], seconds: float) -> None:
        if not msgs:
            return
        try:
            self.queue.change_visibility(list({m.handle for m in msgs}), int(min(43200, max(0, seconds))))
        except PipelineError as exc:
            log.warning("could not hand notifications back", extra={"error": str(exc)})

    def _count(self) -> int:
        return len(self._unique(self._pending))

    @staticmethod
    def _unique(book: dict) -> list[Msg]:
        seen, out = set(), []
        for msgs in book.values():
            for m in msgs:
                if id(m) not in seen:
                    seen.add(id(m))
                    out.append(m)
        return out
