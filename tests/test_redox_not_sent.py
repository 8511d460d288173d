"""Requests that never left: reported as not seen, so a retry of them is never flagged.

A 429's Retry-After pauses everyone, but never by holding workers asleep for minutes: a pause
up to PAUSE_PATIENCE is sat out in the worker (the usual short 429); a longer one sends
nothing and raises TransientDelivery (status 429, not seen, ``retry_after`` the pause left), so
the file is scheduled for when the pause ends: a service stopping meanwhile has nothing in
flight, and a ``--once`` run gives the file back instead of sleeping through the pause.

A token request that fails on the way to a request (a renewal that times out or is cut) is the
token request's failure: the request itself was never written.
"""

from __future__ import annotations

import json

import pytest
from fakes import FakeTokens
from raw_http import RawServer, answer

from pipeline.errors import TransientDelivery
from pipeline.redox.client import PAUSE_PATIENCE, RedoxClient, Transport
from pipeline.redox.ratebucket import Paused
from pipeline.redox.ratelimit import RateLimiter

DEST = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "EMR"}
BODY = json.dumps({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient",
                            "Destinations": [DEST]}}).encode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds



@pytest.fixture
def server():
    srv = RawServer()
    yield srv
    srv.close()


def test_a_pause_longer_than_the_patience_raises_at_once_and_a_shorter_one_is_slept():
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep, max_pause=300)
    limiter.pause_for(120)
    with pytest.raises(Paused) as caught:
        limiter.acquire(patience=5)
    assert caught.value.seconds == 120 and clock.slept == 0
    clock.now += 117
    assert limiter.acquire(patience=5) == 3          # within patience: waited for
    assert limiter.acquire(patience=5) == 0          # the pause is over


def test_the_rate_limits_spacing_is_always_waited_for_whatever_the_patience():
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(patience=0) == 0
    assert limiter.acquire(patience=0) == pytest.approx(0.5)


def test_a_request_meeting_a_long_pause_is_not_sent_and_comes_back_as_a_retry(server):
    server.default = answer(429, b"", [("Retry-After", "3600")])
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep, max_pause=300)
    client = RedoxClient(server.url, server.url + "/upload", Transport(2, 2), FakeTokens(),
                         limiter, retry_cap=300)
    with pytest.raises(TransientDelivery) as first:
        client.send(BODY)
    assert first.value.status == 429 and first.value.retry_after == 300
    with pytest.raises(TransientDelivery) as second:
        client.send(BODY)
    exc = second.value
    assert exc.status == 429 and exc.maybe_seen is False and exc.retry_after == 300
    assert "not sent" in str(exc)
    assert len(server.requests) == 1 and clock.slept == 0      # nothing sent, nobody asleep
    assert PAUSE_PATIENCE < 300


class FailingTokens:
    """A token source whose (renewal) request timed out after it was written."""

    def token(self) -> str:
        raise TransientDelivery("Redox did not answer in time", maybe_seen=True, status=None)

    def invalidate(self, token: str) -> None:
        pass


def test_a_token_request_failing_on_the_way_makes_the_request_not_seen(server):
    client = RedoxClient(server.url, server.url + "/upload", Transport(2, 2), FailingTokens(),
                         RateLimiter(0))
    with pytest.raises(TransientDelivery) as caught:
        client.send(BODY)
    exc = caught.value
    assert exc.maybe_seen is False and exc.status is None
    assert exc.errors == ["not sent: the token request failed (Redox did not answer in time)"]
    assert server.requests == []
