"""The SQS feed keeps every message it holds hidden for as long as the process lives, and no longer.

Each receive asks for ``source.queue_visibility_seconds``; the feed's own keeper thread extends
every message it holds, claimed or not yet, from the moment it was received (before any runner
or lease heartbeat exists). Stopping the poller keeps extending the messages of claims still in
flight; closing the feed stops that and hands back what was never claimed. A fake queue records
the calls; the conditions are polled, no clock is patched.
"""

from __future__ import annotations

import json
import threading
import time

from pipeline.config.models import SourceSettings
from pipeline.sources.s3.feed import Feed


def notification(key: str) -> str:
    return json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2024-01-01T00:00:00Z",
                                    "s3": {"bucket": {"name": "b"},
                                           "object": {"key": key, "eTag": "e", "size": 2}}}]})


class FakeQueue:
    def __init__(self, keys: list[str]) -> None:
        self.waiting = [{"MessageId": f"id-{k}", "ReceiptHandle": f"h-{k}", "Body": notification(k)}
                        for k in keys]
        self.received_with: list[int] = []
        self.changes: list[tuple[tuple[str, ...], int]] = []
        self.lock = threading.Lock()

    def receive(self, count: int, wait: float, visibility: int) -> list[dict]:
        self.received_with.append(visibility)
        got, self.waiting = self.waiting[:count], self.waiting[count:]
        return got

    def delete(self, handles: list[str]) -> None:
        pass

    def change_visibility(self, handles: list[str], seconds: int) -> None:
        with self.lock:
            self.changes.append((tuple(sorted(handles)), seconds))

    def extended(self, handle: str, seconds: int) -> int:
        with self.lock:
            return sum(1 for handles, s in self.changes if handle in handles and s == seconds)


def feed_for(queue: FakeQueue, visibility: int = 1) -> Feed:
    return Feed(queue, bucket="b", name_of=lambda key: key[len("in/"):], visibility=visibility,
                wait=1, prefetch=10)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def test_the_default_visibility_is_short():
    assert SourceSettings().queue_visibility_seconds == 30


def test_received_messages_are_extended_from_their_receipt_claimed_or_not():
    queue = FakeQueue(["in/a.json", "in/b.json"])
    feed = feed_for(queue)
    try:
        assert feed.receive(10, 0) == 2           # no poller, no runner, no lease heartbeat
        assert queue.received_with == [1]         # the receive asks for the configured visibility
        feed.attach("a.json")                     # one claimed, one not yet
        wait_for(lambda: queue.extended("h-in/a.json", 1) >= 2 and queue.extended("h-in/b.json", 1) >= 2)
    finally:
        feed.close()


def test_stopping_the_poller_keeps_claims_in_flight_hidden_and_closing_lets_go():
    queue = FakeQueue(["in/a.json", "in/b.json"])
    feed = feed_for(queue)
    feed.receive(10, 0)
    feed.attach("a.json")
    feed.stop()                                   # shutdown: no more polling
    assert queue.extended("h-in/b.json", 0) == 1  # the unclaimed one is handed back at once
    before = queue.extended("h-in/a.json", 1)
    wait_for(lambda: queue.extended("h-in/a.json", 1) > before)   # in flight: still extended
    feed.close()
    after = queue.extended("h-in/a.json", 1)
    time.sleep(3 * feed.beat_seconds)             # a few keeper periods: nothing more happens
    assert queue.extended("h-in/a.json", 1) == after
