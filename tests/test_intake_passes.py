"""Listing in passes beside the loop: claims start from what a listing has found so far, memory
stays with the settler (one small entry per file), and a pass forgets what it did not see.

The store here lists from a script: it hands out a first part of the inbox, then waits until
the test lets it go on, so the test can look at the runner in the middle of a listing.
"""

from __future__ import annotations

import threading
import time

from fakes import Clock

from pipeline.flow import claims
from pipeline.flow.concurrency import Concurrency
from pipeline.flow.intake import Intake
from pipeline.flow.runner import Runner
from pipeline.flow.settle import Settler
from pipeline.values import Drop

NOW = 1_700_000_000.0


class SlowListing:
    """A source whose scan lists ``first`` names, waits for ``go``, then lists ``rest``."""

    queue_fed = False
    claim_hooks = None

    def __init__(self, first: list[str], rest: list[str]):
        self.first, self.rest = first, rest
        self.go = threading.Event()

    def scan(self):
        for name in self.first:
            yield Drop(name, 10, NOW - 60)
        self.go.wait(10)
        for name in self.rest:
            yield Drop(name, 10, NOW - 60)


class NoJournal:
    def not_due(self, now):
        return {}


def advance_until(intake: Intake, condition) -> None:
    """Let the listing's thread hand over what it has (it runs beside the test)."""
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        intake.advance()
        time.sleep(0.001)


def intake_for(store, once: bool = False) -> Intake:
    settler = Settler(5.0, wall=Clock(NOW), mono=Clock(100.0))
    return Intake(store, NoJournal(), settler, once=once, queue_fed=False, wall=Clock(NOW))


def test_files_found_so_far_are_ready_before_the_listing_ends():
    store = SlowListing([f"a{i:04}.json" for i in range(1000)], ["b.json"])
    intake = intake_for(store)
    intake.start_pass()
    advance_until(intake, lambda: intake.settler.ready_count() >= 500)
    assert intake.scanning and intake.passes == 0          # still listing
    assert intake.next_settled() == Drop("a0000.json", 10, NOW - 60)
    store.go.set()
    claimed: set[str] = set()

    def claim_all_listed() -> bool:           # claims make room for the rest of the listing
        while (drop := intake.next_settled()) is not None:
            claimed.add(drop.name)
        return not intake.scanning

    advance_until(intake, claim_all_listed)
    assert intake.passes == 1 and "b.json" in claimed | intake.settler.known()


def test_the_listing_is_taken_in_as_claims_need_it():
    store = SlowListing([f"a{i:04}.json" for i in range(3000)], [])
    store.go.set()
    intake = intake_for(store)
    intake.start_pass()
    advance_until(intake, lambda: intake.settler.ready_count() >= 500)
    for _ in range(50):
        intake.advance()
    assert intake.settler.ready_count() == 500 and intake.scanning   # one chunk, not the listing
    for _ in range(251):                                   # claims take it below LOW_WATER
        assert intake.next_settled() is not None
    advance_until(intake, lambda: intake.settler.ready_count() > 249)
    assert intake.settler.ready_count() == 749             # the next chunk, and only it


def test_with_ordering_the_whole_listing_is_taken_in_at_once():
    store = SlowListing([f"a{i:04}.json" for i in range(3000)], [])
    store.claim_hooks = type("Board", (), {"crowded": staticmethod(lambda: False)})()
    store.go.set()
    intake = intake_for(store)
    intake.start_pass()
    advance_until(intake, lambda: not intake.scanning)
    assert intake.settler.ready_count() == 3000 and intake.passes == 1


def test_a_pass_forgets_what_it_did_not_list_and_keeps_what_it_did():
    intake = intake_for(SlowListing(["a.json", "b.json"], []))
    intake.store.go.set()
    intake.rescan()
    assert intake.settler.known() == {"a.json", "b.json"}
    intake.store.first = ["b.json"]                      # a.json was taken by someone else
    intake.rescan()
    assert intake.settler.known() == {"b.json"}
    assert intake.next_settled() == Drop("b.json", 10, NOW - 60)
    assert intake.next_settled() is None                 # a's stale entry is never handed out


def test_once_counts_only_what_the_first_pass_listed():
    store = SlowListing(["a.json"], [])
    store.go.set()
    intake = intake_for(store, once=True)
    intake.also_initial(["adopted.json"])
    intake.rescan()
    assert intake.initial == {"a.json", "adopted.json"}
    assert intake.wanted("adopted.json") and not intake.wanted("late.json")


def test_the_runner_claims_up_to_the_target_and_more_once_redox_is_slower(tmp_path):
    from hostile import Rig
    from pipeline_env import message
    rig = Rig(tmp_path)
    for i in range(40):
        path = rig.drop(f"f{i:02}.json", message(f"f{i:02}"))
        then = time.time() - 60
        import os
        os.utime(path, (then, then))
    control = Concurrency(20)                              # 250 ms assumed: 8 in flight
    runner = Runner(rig.store, rig.journal, rig.work, workers=control, settle_seconds=0,
                    rescan_seconds=60, once=False, once_wait=0, grace=1)
    runner.intake.rescan()
    claims.claim_ready(runner)
    assert len(runner.ready) == control.target() == 8
    control.observe_reply(200, 1.0)                        # Redox takes a second: 26
    claims.claim_ready(runner)
    assert len(runner.ready) == control.target() == 26
    runner.pool.shutdown()
    rig.close()


def test_the_oldest_waiting_file_is_known_while_a_paced_pass_goes_on():
    store = SlowListing([f"a{i:04}.json" for i in range(1000)], [])
    intake = intake_for(store)
    intake.start_pass()
    advance_until(intake, lambda: intake.settler.ready_count() >= 500)
    assert intake.scanning and intake.oldest_inbox is None     # no pass has ended yet
    assert intake.oldest_waiting == NOW - 60                   # the oldest listed so far
