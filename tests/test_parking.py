"""ParkingSchedule: files waiting for their turn in their key's sequence, with a fake clock.
Only the oldest parked file of a key asks again; a wake-up makes it ask at once; parked files
count for the runner like scheduled retries (shutdown takes them, --once waits for them)."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.flow.addressing import Routed
from pipeline.flow.parking import FOLLOW, ParkingSchedule
from pipeline.flow.routes import Choice
from pipeline.values import Claim


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def job(name: str, stamp: float, key: str, waiting_for: str = "key"):
    claim = Claim(name=name, location=name, source=name, size=1, mtime=stamp, claimed_at=0.0)
    return SimpleNamespace(claim=claim, route=Routed(Choice("default", ()), key=key, waiting_for=waiting_for))


def schedule(clock) -> ParkingSchedule:
    return ParkingSchedule(clock, once=False, once_wait=60, settle_seconds=0)


def test_only_the_oldest_of_a_key_asks_and_the_next_follows():
    clock = Clock()
    parked = schedule(clock)
    late, early, other = job("b", 2.0, "k"), job("a", 1.0, "k"), job("c", 3.0, "j")
    for j in (late, early, other):
        parked.park(j, 0.5)
    assert len(parked) == 3 and parked.waiting() == 3
    assert list(parked.due()) == []
    clock.now += 0.5
    assert list(parked.due()) == [early, other]           # one per key, the oldest
    assert 0 < parked.next_in() <= FOLLOW
    clock.now += FOLLOW
    assert list(parked.due()) == [late]
    assert len(parked) == 0 and parked.next_in() is None


def test_a_wake_up_makes_a_key_or_the_files_waiting_for_a_read_ask_at_once():
    clock = Clock()
    parked = schedule(clock)
    keyed, reading, held = job("a", 1.0, "k"), job("b", 1.0, "j", "mark"), job("c", 1.0, "h", "hold")
    for j in (keyed, reading, held):
        parked.park(j, 5.0)
    parked.wake("k")
    assert parked.next_in() == 0.0
    assert list(parked.due()) == [keyed]
    parked.wake(None)                                     # a file being read got its key
    assert list(parked.due()) == [reading]
    assert parked.waiting() == 0                          # a held key's files do not crowd


def test_parked_files_count_like_retries_for_shutdown_and_once():
    clock = Clock()
    parked = schedule(clock)
    parked.add(job("r", 1.0, "x"), 120.0)                 # an ordinary retry, not due soon
    parked.park(job("a", 1.0, "k"), 1e9)                  # --once gave up waiting
    assert not parked.any_due_within(60)
    parked.park(job("b", 2.0, "j"), 0.1)
    assert parked.any_due_within(60)
    assert {j.claim.name for j in parked.take_all()} == {"r", "a", "b"}
    assert len(parked) == 0
