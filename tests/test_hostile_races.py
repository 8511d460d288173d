"""A file that disappears, is truncated, grows, or is replaced while it is being processed.

These moments cannot be timed from outside a running process, so the stages run in-process on
real files (a real LocalStore and Journal) with a fake Redox client; the file is changed at the
exact step in between. One end-to-end case (a new file under the same name while the first is in
flight) runs the real command.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections import deque

import pytest
from hostile import Rig
from pipeline_env import PipelineEnv, message

from pipeline.errors import ClaimLost


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def test_a_file_that_vanishes_before_its_claim_is_skipped(rig):
    rig.drop("a.json", message("a"))
    drop = rig.store.stat("a.json")
    os.unlink(rig.inbox / "a.json")
    with pytest.raises(ClaimLost):
        rig.store.claim(drop)
    assert rig.listing("done") == rig.listing("failed") == []


def test_a_file_that_vanishes_after_its_claim_is_lost_quietly_and_not_sent(rig):
    rig.drop("a.json", message("a"))
    claim = rig.claim("a.json")
    os.unlink(claim.location)
    _, step = rig.run(claim)
    assert step.kind == "lost"
    assert rig.client.bodies == [] and rig.listing("done") == rig.listing("failed") == []


def test_a_file_replaced_between_sighting_and_claim_is_put_back_to_settle_again(rig):
    rig.drop("a.json", message("old"))
    drop = rig.store.stat("a.json")
    rig.drop("a.json.new", message("a newer, longer version"))
    os.rename(rig.inbox / "a.json.new", rig.inbox / "a.json")     # the exporter's atomic replace
    with pytest.raises(ClaimLost, match="changed while it was being claimed"):
        rig.store.claim(drop)
    assert rig.listing("inbox") == ["a.json"]
    assert (rig.inbox / "a.json").read_bytes() == message("a newer, longer version")
    assert rig.store.own_claims() == []


def test_a_file_swapped_for_a_symlink_before_its_claim_is_put_back_untouched(rig, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_bytes(message("elsewhere"))
    rig.drop("a.json", message("a"))
    drop = rig.store.stat("a.json")
    os.unlink(rig.inbox / "a.json")
    os.symlink(target, rig.inbox / "a.json")
    with pytest.raises(ClaimLost):
        rig.store.claim(drop)
    assert os.readlink(rig.inbox / "a.json") == str(target)
    assert rig.store.stat("a.json") is None                 # and from now on it is left alone
    assert target.read_bytes() == message("elsewhere") and rig.client.bodies == []


def test_a_file_truncated_after_its_claim_is_read_again_and_judged_on_what_stays(rig):
    rig.drop("a.json", message("a", padding="x" * 1000))
    claim = rig.claim("a.json")
    with open(claim.location, "r+b") as handle:             # the writer still had it open
        handle.truncate(40)
    job, step = rig.run(claim)
    assert step.kind == "stuck" and "changed after it was claimed" in step.error
    assert not step.storage                                 # the writer's doing: /healthz stays ok
    assert rig.client.bodies == [] and job.record is None   # nothing recorded, nothing sent
    job, step = rig.run(job)                                # the runner's later try: now stable
    assert step.kind == "finished" and step.status == "failed"
    car = json.loads((rig.root / "failed" / "a.json.redox.json").read_bytes())
    assert car["size"] == 40 and "truncated JSON" in car["errors"][0]


def test_a_file_that_grows_after_its_claim_is_sent_whole(rig):
    full = message("grow", padding="y" * 2000)
    rig.drop("a.json", full[:500])
    claim = rig.claim("a.json")
    with open(claim.location, "ab") as handle:
        handle.write(full[500:])
    job, step = rig.run(claim)
    assert step.kind == "stuck"
    job, step = rig.run(job)
    assert step.kind == "finished" and step.status == "done"
    assert len(rig.client.bodies) == 1 and b"y" * 2000 in rig.client.bodies[0]
    assert json.loads((rig.root / "done" / "a.json.redox.json").read_bytes())["size"] == len(full)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_a_claimed_file_replaced_by_something_else_goes_back_without_blocking(rig, tmp_path, kind):
    target = tmp_path / "target.json"
    target.write_bytes(message("target"))
    rig.drop("a.json", message("a"))
    claim = rig.claim("a.json")
    os.unlink(claim.location)
    make, is_kind = {"fifo": (os.mkfifo, lambda p: stat.S_ISFIFO(os.lstat(p).st_mode)),
                     "symlink": (lambda p: os.symlink(target, p), os.path.islink),
                     "directory": (os.mkdir, os.path.isdir)}[kind]
    make(claim.location)
    result = {}
    worker = threading.Thread(target=lambda: result.update(step=rig.run(claim)[1]), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "reading the claimed file blocked"
    step = result["step"]
    assert step.kind == "released" and "not a regular file" in step.error
    assert rig.listing("inbox") == ["a.json"] and is_kind(rig.inbox / "a.json")
    assert rig.store.stat("a.json") is None                # left alone from now on
    assert rig.listing("done") == rig.listing("failed") == [] and rig.store.own_claims() == []
    assert rig.client.bodies == [] and target.read_bytes() == message("target")


def test_a_new_file_under_the_same_name_while_the_first_is_in_flight(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    sandbox.faults(latency_ms=1500)
    env.drop("a.json", message("first"))
    proc = env.start()
    try:
        env.wait_for(lambda: env.files("processing"))
        env.drop("a.json", message("second"))              # the exporter writes the name again
        env.wait_for(lambda: len(env.files("done")) == 2, timeout=60)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert env.files("done") == ["a-1.json", "a.json"]
    bodies = {env.sidecar("done", n)["sha256"] for n in ("a.json", "a-1.json")}
    assert len(bodies) == 2
    assert sorted(s["marker"] for s in sandbox.records()["sends"]) == ["first", "second"]


def test_a_name_that_looks_like_a_claim_slot_survives_recovery(tmp_path):
    """'2024~a.json' is a fine inbox name; a second 'a.json' claimed while the first is held
    waits in a hidden slot. After a crash, both come back under their own names."""
    rig = Rig(tmp_path)
    rig.drop("2024~a.json", message("tilde"))
    rig.claim("2024~a.json")
    rig.drop("a.json", message("one"))
    rig.claim("a.json")
    rig.drop("a.json", message("two"))
    rig.claim("a.json")
    os.close(rig.store.claims._lock_fd)            # the process dies holding its claims
    rig.store.claims._lock_fd = None
    heir = Rig(tmp_path / "heir")
    heir.store.claims.processing = rig.store.processing
    adopted = sorted(c.name for c in heir.store.adopt_orphans())
    assert adopted == ["2024~a.json", "a.json", "a.json"]
    rig.journal.close()
    heir.close()


def test_a_settled_file_rewritten_while_waiting_for_a_worker_settles_again(tmp_path):
    """A file can sit settled in the queue while every worker is busy; if it is rewritten
    meanwhile, it is not claimed until it has settled again."""
    from pipeline.flow.runner import Runner
    rig = Rig(tmp_path)
    path = rig.drop("a.json", message("a"))
    then = time.time() - 60
    os.utime(path, (then, then))
    runner = Runner(rig.store, rig.journal, rig.work, workers=1, settle_seconds=5,
                    rescan_seconds=5, once=False, once_wait=0, grace=1)
    runner.intake.rescan()
    assert runner.settler.has_ready()
    with open(path, "ab") as handle:                # the exporter writes it again
        handle.write(b" ")
    runner._claim_ready()
    assert runner.ready == deque() and rig.listing("inbox") == ["a.json"]
    assert runner.settler.pending_count() == 1 and runner.settler.known() == {"a.json"}
    runner.pool.shutdown()
    rig.close()
