"""The ordering protocol step by step, with real claim folders and the real board on disk: what
each process may send, and when, while files of one key are claimed by several processes.

The hard case: with `ordering.by: patient` a file's key is only known once it is read, so a
process that has read a later file must not send it while an earlier file is claimed elsewhere
and not read yet; a process that died holding such a file keeps the key back until its claim is
adopted and read."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from pipeline.flow.addressing import Routed
from pipeline.flow.board import Board
from pipeline.flow.ordering import Sequencer, Timing
from pipeline.flow.routes import Choice
from pipeline.sources.local.claims import ClaimFolders
from pipeline.sources.local.orderstore import LocalOrderStore
from pipeline.values import Claim, Outcome

TIMING = Timing(poll=0.1, hold_poll=5.0, cap=8)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def folders(tmp_path):
    for sub in ("inbox", "processing", "failed"):
        (tmp_path / sub).mkdir()
    return tmp_path


def process(folders, owner: str, clock, by="patient", on_failure="continue"):
    """One process: its claim folder (locked while it lives) and its Sequencer."""
    claims = ClaimFolders(str(folders / "processing"), owner, str(folders / "inbox"))
    claims.open()
    store = LocalOrderStore(str(folders / "inbox"), str(folders / "processing"), str(folders / "failed"), owner)
    seq = Sequencer(Board(store, owner, stale_after=2.0, clock=clock), by, on_failure, TIMING,
                    once=False, once_wait=60, clock=clock)
    return SimpleNamespace(claims=claims, seq=seq, owner=owner)


def claimed(proc, folders, name: str, stamp: float):
    """Announce, then claim (move the file into the process's claim folder)."""
    path = folders / "inbox" / name
    path.write_bytes(b"{}")
    os.utime(path, (stamp, stamp))
    proc.seq.intend(name, stamp)
    location = proc.claims.take(str(path), name)
    claim = Claim(name=name, location=location, source=str(path), size=2, mtime=stamp, claimed_at=time.time())
    return SimpleNamespace(claim=claim, route=None, record=None)


def read(proc, job, patient="p1"):
    """What the picker does once the file is read: its key, registered."""
    key = proc.seq.key_of({"Patient": {"Identifiers": [{"ID": patient, "IDType": "MR"}]}}, job.claim.name)
    job.route = Routed(Choice("default", ()), key=key)
    proc.seq.keyed(job.claim, key)
    return job


def finish(proc, job, status="done"):
    outcome = Outcome(status, reason_kind=None if status == "done" else "permanent")
    proc.seq.before_finish(job, outcome)
    dest = os.path.join(proc.claims.processing, "..", status, job.claim.name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.rename(job.claim.location, dest)
    proc.seq.after_finish(job, outcome, os.path.normpath(dest))


def test_a_later_file_waits_for_an_earlier_one_claimed_elsewhere_and_not_read_yet(folders):
    clock = Clock()
    one, two = process(folders, "one", clock), process(folders, "two", clock)
    early = claimed(one, folders, "a.json", 100.0)     # claimed by one, not read yet
    late = read(two, claimed(two, folders, "b.json", 200.0))
    wait = two.seq.gate(late)
    assert wait and "not read yet" in wait.reason        # its key could be anything
    read(one, early, patient="p2")                        # another patient after all
    assert two.seq.gate(late) is None                     # nothing earlier of its key: goes


def test_one_at_a_time_in_drop_order_across_two_processes(folders):
    clock = Clock()
    one, two = process(folders, "one", clock), process(folders, "two", clock)
    early = claimed(one, folders, "a.json", 100.0)
    late = read(two, claimed(two, folders, "b.json", 200.0))
    read(one, early)
    assert "goes first" in two.seq.gate(late).reason
    assert one.seq.gate(early) is None                    # the earliest goes...
    assert "being sent" in two.seq.gate(late).reason
    finish(one, early)                                    # ...and only when it is finished
    assert two.seq.gate(late) is None


def test_a_late_arrival_never_overtakes_a_file_being_sent(folders):
    clock = Clock()
    one, two = process(folders, "one", clock), process(folders, "two", clock)
    sending = read(one, claimed(one, folders, "b.json", 200.0))
    assert one.seq.gate(sending) is None
    older = read(two, claimed(two, folders, "a.json", 100.0))   # dropped earlier, seen later
    assert "being sent" in two.seq.gate(older).reason
    finish(one, sending)
    assert two.seq.gate(older) is None


def test_a_dead_process_keeps_the_key_until_its_claim_is_adopted_and_read(folders):
    clock = Clock()
    dead, live = process(folders, "dead", clock), process(folders, "live", clock)
    claimed(dead, folders, "a.json", 100.0)               # claimed, never read: then killed
    late = read(live, claimed(live, folders, "b.json", 200.0))
    os.close(dead.claims._lock_fd)                         # the kernel drops a dead process's lock
    clock.now += 10
    assert "not read yet" in live.seq.gate(late).reason   # its file is still in its claim folder
    heir = process(folders, "heir", clock)
    heir.claims.intend, heir.claims.abandon = heir.seq.intend, heir.seq.abandon
    [adopted] = heir.claims.adopt_orphans()
    assert "not read yet" in live.seq.gate(late).reason   # the heir's own mark now
    job = read(heir, SimpleNamespace(claim=adopted, route=None, record=None))
    assert "goes first" in live.seq.gate(late).reason
    assert heir.seq.gate(job) is None
    finish(heir, job)
    assert live.seq.gate(late) is None


def test_hold_keeps_the_key_until_the_failed_file_is_removed(folders):
    clock = Clock()
    one = process(folders, "one", clock, on_failure="hold")
    first = read(one, claimed(one, folders, "a.json", 100.0))
    second = read(one, claimed(one, folders, "b.json", 200.0))
    assert one.seq.gate(first) is None
    finish(one, first, "failed")
    wait = one.seq.gate(second)
    assert "held in failed/" in wait.reason and wait.delay == TIMING.hold_poll
    [(key, _, info)] = one.seq.board.held()
    assert info["failed"].endswith("failed/a.json") and info["reason"] == "permanent"
    os.unlink(folders / "failed" / "a.json")              # the operator removes it
    assert one.seq.gate(second) is None


def test_path_keys_are_known_before_the_claim(folders):
    clock = Clock()
    one, two = process(folders, "one", clock, by="path"), process(folders, "two", clock, by="path")
    (folders / "inbox" / "lab").mkdir()
    early = claimed(one, folders, "lab/a.json", 100.0)    # never read: its entry is there anyway
    late = read(two, claimed(two, folders, "lab/b.json", 200.0))
    other = read(two, claimed(two, folders, "x.json", 300.0))
    assert "goes first" in two.seq.gate(late).reason
    assert two.seq.gate(other) is None                    # another folder, another key
    read(one, early)
    assert one.seq.gate(early) is None


def test_an_entry_of_a_file_rewritten_under_the_same_name_goes_stale(folders):
    """A file claimed, then put back, then rewritten in the inbox (a new mtime) is another file:
    what the first version left must not hold the second back for ever."""
    clock = Clock()
    one = process(folders, "one", clock)
    first = read(one, claimed(one, folders, "a.json", 100.0))
    os.rename(first.claim.location, folders / "inbox" / "a.json")      # released at shutdown
    os.utime(folders / "inbox" / "a.json", (100.0, 100.0))
    two = process(folders, "two", clock)
    (folders / "inbox" / "a.json").unlink()
    second = read(two, claimed(two, folders, "a.json", 300.0))         # rewritten: a new drop
    assert "goes first" in two.seq.gate(second).reason                # not gone yet at one look
    clock.now += 3
    assert two.seq.gate(second) is None                               # gone at the second look
