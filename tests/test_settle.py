"""Settler: which inbox files have stopped changing and may be claimed, oldest first.

A file is ready once its size and mtime have not changed for ``settle_seconds``: by its mtime
(the wall clock) or by how long we have seen it unchanged (our monotonic clock). Both clocks are
fakes that move only when told, and they are deliberately far apart.
"""

from __future__ import annotations

import pytest
from fakes import Clock

from pipeline.flow.settle import Settler
from pipeline.values import Drop

SETTLE = 5.0
NOW = 1_700_000_000.0          # the wall clock at the start of each test


@pytest.fixture
def wall():
    return Clock(NOW)


@pytest.fixture
def mono():
    return Clock(500.0)


@pytest.fixture
def tick(wall, mono):
    """tick(s): both clocks move on by ``s`` seconds."""
    def advance(seconds: float) -> None:
        wall.advance(seconds)
        mono.advance(seconds)
    return advance


@pytest.fixture
def settler(wall, mono):
    return Settler(SETTLE, wall=wall, mono=mono)


def drop(name: str, age: float, size: int = 10) -> Drop:
    """A sighting of ``name`` whose mtime is ``age`` seconds before the start of the test."""
    return Drop(name, size, NOW - age)


def pop_all(settler: Settler) -> list[Drop]:
    out = []
    while (settled := settler.pop_settled()) is not None:
        out.append(settled)
    return out


# -- ready at once, or once unchanged for settle_seconds ----------------------------------------------

def test_a_file_older_than_settle_seconds_is_ready_at_once(settler):
    settler.observe(drop("a.json", age=60, size=7))
    assert settler.has_ready() is True
    assert settler.pending_count() == 0 and settler.known() == {"a.json"}
    assert settler.next_check() is None
    assert settler.pop_settled() == Drop("a.json", 7, NOW - 60)
    assert settler.pop_settled() is None
    assert settler.has_ready() is False and settler.known() == set()


def test_a_fresh_file_waits_settle_seconds_then_is_ready(settler, tick):
    settler.observe(drop("a.json", age=0))
    assert settler.has_ready() is False
    assert settler.pending_count() == 1 and settler.known() == {"a.json"}
    assert settler.next_check() == 5.0
    tick(4.5)
    assert settler.due() == [] and settler.next_check() == 0.5
    settler.observe(drop("a.json", age=0))            # unchanged, but not for long enough yet
    assert settler.has_ready() is False
    tick(0.5)
    assert settler.due() == ["a.json"]
    settler.observe(drop("a.json", age=0))
    assert settler.pending_count() == 0
    assert settler.pop_ready() == "a.json"


def test_a_file_partly_aged_waits_only_for_the_rest_by_its_mtime(settler, tick):
    settler.observe(drop("a.json", age=3))
    assert settler.next_check() == 2.0
    tick(2.0)
    assert settler.due() == ["a.json"]
    settler.observe(drop("a.json", age=3))
    assert settler.pop_settled() == Drop("a.json", 10, NOW - 3)


def test_our_own_clock_settles_a_file_whose_mtime_is_in_the_future(settler, wall, mono):
    future = Drop("a.json", 10, NOW + 3600)           # the file server's clock is an hour ahead
    settler.observe(future)
    assert settler.next_check() == 5.0
    mono.advance(4.9)                                 # the wall clock stands still
    settler.observe(future)
    assert settler.has_ready() is False
    mono.advance(0.1)
    assert settler.due() == ["a.json"]
    settler.observe(future)
    assert settler.pop_settled() == future
    assert wall() == NOW


def test_the_mtime_settles_a_file_even_when_our_clock_has_not_moved(settler, wall):
    settler.observe(drop("a.json", age=0))
    wall.advance(5.0)                                 # the monotonic clock stands still
    settler.observe(drop("a.json", age=0))
    assert settler.pop_ready() == "a.json"


# -- a change restarts settling -----------------------------------------------------------------------

def test_a_changed_size_restarts_settling(settler, tick):
    settler.observe(Drop("a.json", 10, NOW + 100))    # mtime ahead: only our clock can settle it
    tick(4.0)
    settler.observe(Drop("a.json", 20, NOW + 100))    # still being written
    assert settler.has_ready() is False
    tick(1.0)                                         # the first sighting's timer: only a look
    assert settler.due() == ["a.json"]
    settler.observe(Drop("a.json", 20, NOW + 100))
    assert settler.has_ready() is False and settler.next_check() == 4.0
    tick(3.5)
    settler.observe(Drop("a.json", 20, NOW + 100))
    assert settler.has_ready() is False
    tick(0.5)                                         # 5 s since the size last changed
    assert settler.due() == ["a.json"]
    settler.observe(Drop("a.json", 20, NOW + 100))
    assert pop_all(settler) == [Drop("a.json", 20, NOW + 100)]


def test_a_changed_mtime_restarts_settling(settler, tick):
    settler.observe(drop("a.json", age=0))
    tick(4.0)
    settler.observe(Drop("a.json", 10, NOW + 4.0))    # touched, same size
    assert settler.has_ready() is False
    tick(1.0)
    assert settler.due() == ["a.json"]
    settler.observe(Drop("a.json", 10, NOW + 4.0))
    assert settler.has_ready() is False and settler.next_check() == 4.0
    tick(3.5)
    settler.observe(Drop("a.json", 10, NOW + 4.0))
    assert settler.has_ready() is False
    tick(0.5)
    settler.observe(Drop("a.json", 10, NOW + 4.0))
    assert settler.pop_settled() == Drop("a.json", 10, NOW + 4.0)


# -- handing out ------------------------------------------------------------------------------------

def test_settled_files_are_handed_out_oldest_mtime_first(settler):
    for name, age in (("a.json", 10), ("b.json", 30), ("c.json", 60), ("d.json", 20)):
        settler.observe(drop(name, age))
    assert [d.name for d in pop_all(settler)] == ["c.json", "b.json", "d.json", "a.json"]


def test_a_file_queued_as_ready_is_not_added_again_by_another_sighting(settler):
    settler.observe(drop("a.json", age=60, size=1))
    settler.observe(drop("a.json", age=60, size=1))
    settler.observe(drop("a.json", age=0, size=2))    # even changed: the claimer compares
    assert settler.pending_count() == 0 and settler.next_check() is None
    assert settler.known() == {"a.json"}
    assert pop_all(settler) == [Drop("a.json", 1, NOW - 60)]


def test_a_handed_out_name_can_settle_again(settler):
    settler.observe(drop("a.json", age=60, size=1))
    assert settler.pop_ready() == "a.json"
    settler.observe(drop("a.json", age=30, size=2))   # rewritten before it could be claimed
    assert pop_all(settler) == [Drop("a.json", 2, NOW - 30)]


def test_a_name_forgotten_and_settled_again_is_handed_out_as_it_settled_last(settler):
    settler.observe(drop("a.json", age=60, size=1))
    settler.forget("a.json")                          # gone from a rescan's listing
    settler.observe(drop("a.json", age=30, size=2))   # back, with other contents
    assert pop_all(settler) == [Drop("a.json", 2, NOW - 30)]


# -- forgetting ---------------------------------------------------------------------------------------

def test_forget_drops_a_pending_name_and_its_timer(settler, tick):
    settler.observe(drop("a.json", age=0))            # due 5 s from the start
    tick(2.0)
    settler.observe(drop("b.json", age=-2.0))         # new: due 7 s from the start
    settler.forget("a.json")
    assert settler.pending_count() == 1 and settler.known() == {"b.json"}
    assert settler.next_check() == 5.0                # b's timer; a's earlier one no longer counts
    tick(3.0)
    assert settler.due() == []                        # a's time came and went unlisted
    tick(2.0)
    assert settler.due() == ["b.json"]
    settler.forget("b.json")
    assert settler.next_check() is None and settler.known() == set()
    tick(10.0)
    assert settler.due() == []


def test_forget_drops_a_ready_name(settler):
    settler.observe(drop("a.json", age=60))
    settler.observe(drop("b.json", age=50))
    settler.forget("a.json")
    settler.forget("never-seen.json")                 # harmless
    assert settler.known() == {"b.json"}
    assert [d.name for d in pop_all(settler)] == ["b.json"]


def test_a_full_pass_forgets_what_it_no_longer_lists(settler):
    settler.observe(drop("ready-gone.json", age=60))
    settler.observe(drop("ready-kept.json", age=50))
    settler.observe(drop("pending-gone.json", age=0))
    settler.observe(drop("pending-kept.json", age=0))
    settler.begin_pass()
    settler.observe(drop("ready-kept.json", age=50))
    settler.observe(drop("pending-kept.json", age=0))
    settler.end_pass()
    assert settler.known() == {"ready-kept.json", "pending-kept.json"}
    assert settler.pending_count() == 1
    assert [d.name for d in pop_all(settler)] == ["ready-kept.json"]


# -- timers: due() and next_check() --------------------------------------------------------------------

def test_due_lists_each_name_once_when_its_time_has_come(settler, tick):
    settler.observe(drop("a.json", age=0))
    tick(2.0)
    settler.observe(drop("a.json", age=0))            # a second timer for a, due at the same time
    settler.observe(drop("b.json", age=-2.0))         # new: due 5 s from now
    assert settler.next_check() == 3.0
    tick(3.0)
    assert settler.due() == ["a.json"]
    assert settler.due() == []                        # handed out once, not again
    assert settler.next_check() == 2.0
    tick(2.0)
    assert settler.due() == ["b.json"]
    assert settler.pending_count() == 2               # due() only asks for a look; it settles nothing
    assert settler.has_ready() is False


def test_due_leaves_out_names_that_settled_meanwhile(settler, tick):
    settler.observe(drop("a.json", age=0))
    tick(5.0)
    settler.observe(drop("a.json", age=0))            # an event settled it before its timer ran
    assert settler.due() == []
    assert settler.pop_ready() == "a.json"


def test_next_check_is_none_with_no_candidates_and_never_negative(settler, tick):
    assert settler.next_check() is None
    assert settler.due() == []
    settler.observe(drop("a.json", age=1.0))
    assert settler.next_check() == 4.0
    tick(60.0)                                        # nobody looked in time
    assert settler.next_check() == 0.0
    assert settler.due() == ["a.json"]


def test_pending_count_and_known_follow_each_candidate(settler, tick):
    assert (settler.pending_count(), settler.known(), settler.has_ready()) == (0, set(), False)
    settler.observe(drop("old.json", age=60))
    settler.observe(drop("new1.json", age=0))
    settler.observe(drop("new2.json", age=0))
    assert settler.pending_count() == 2
    assert settler.known() == {"old.json", "new1.json", "new2.json"}
    tick(5.0)
    for name in settler.due():
        settler.observe(drop(name, age=0))
    assert settler.pending_count() == 0 and settler.known() == {"old.json", "new1.json", "new2.json"}
    assert [d.name for d in pop_all(settler)] == ["old.json", "new1.json", "new2.json"]
    assert settler.known() == set()
