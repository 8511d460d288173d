"""Never sent twice unflagged: the SEND path when the journal cannot record Redox's answer,
and when Redox asks one file to wait.

- An answer the journal could not record (disk full, database locked: StorageError) stays on
  the Job; the next step records it and never sends again (a real journal whose writes fail at
  the right moment; and the real command with its state folder on a full tmpfs).
- Whatever lost the answer, a new SEND never starts while an earlier one is open without the
  file becoming a possible duplicate (the journal closes it in the same commit).
- A Retry-After delays only the file it was given for.
"""

from __future__ import annotations

import os

import pytest
from hostile import FakeClient, Lines, fill, small_filesystem
from journal_faults import FailingJournal, ScriptedClient, rig_with, sidecar
from pipeline_env import DESTINATION, PipelineEnv, message

from pipeline.config import Destination
from pipeline.errors import PermanentDelivery, StorageError, TransientDelivery
from pipeline.flow.retry import CircuitBreaker, RetryPolicy
from pipeline.flow.runner import Runner
from pipeline.flow.work import FileWork, Job
from pipeline.journal import Journal

# -- 1. an answer the journal could not record ----------------------------------------------------

@pytest.mark.parametrize("failures", [1, 3])
def test_an_acceptance_the_journal_could_not_record_is_finished_without_sending_again(tmp_path, failures):
    rig = rig_with(tmp_path)
    rig.journal.failures["attempt_ended"] = failures
    rig.drop("a.json", message("a"))
    job, step = rig.run(rig.claim("a.json"))
    for _ in range(failures):
        assert step.kind == "stuck" and "disk is full" in step.error
        assert len(rig.client.bodies) == 1 and rig.listing("done") == []
        job, step = rig.run(job)
    assert step.kind == "finished" and step.status == "done"
    assert len(rig.client.bodies) == 1                       # accepted once, sent once
    car = sidecar(tmp_path, "done")
    assert car["logs"][0]["ID"] == "log-1" and car["attempts"] == 1
    assert car["possible_duplicate"] is False
    assert [a["result"] for a in car["attempt_history"]] == ["accepted"]
    rig.close()


def test_a_maybe_seen_failure_the_journal_could_not_record_still_flags_the_next_send(tmp_path):
    rig = rig_with(tmp_path, ScriptedClient(TransientDelivery("timed out", maybe_seen=True)))
    rig.journal.failures["attempt_ended"] = 1
    rig.drop("a.json", message("a"))
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "stuck"
    job, step = rig.run(job)                                 # records the timeout; no SEND
    assert step.kind == "retry" and len(rig.client.bodies) == 1
    job, step = rig.run(job)
    assert step.kind == "finished" and step.status == "done" and len(rig.client.bodies) == 2
    car = sidecar(tmp_path, "done")
    assert car["possible_duplicate"] is True and car["attempts"] == 2
    assert [a["result"] for a in car["attempt_history"]] == ["transient", "accepted"]
    rig.close()


def test_a_refusal_whose_outcome_could_not_be_recorded_is_not_sent_again(tmp_path):
    rig = rig_with(tmp_path, ScriptedClient(PermanentDelivery("bad", status=400, errors=["no"])))
    rig.journal.failures["finishing"] = 2
    rig.drop("a.json", message("a"))
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "stuck"
    job, step = rig.run(job)
    assert step.kind == "stuck"
    job, step = rig.run(job)
    assert step.kind == "finished" and step.status == "failed" and len(rig.client.bodies) == 1
    assert sidecar(tmp_path, "failed")["reason_kind"] == "permanent"
    rig.close()


def test_a_move_the_journal_did_not_hear_of_is_completed_without_sending(tmp_path):
    rig = rig_with(tmp_path)
    rig.journal.failures["finished"] = 1
    rig.drop("a.json", message("a"))
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "stuck" and rig.listing("done") == ["a.json", "a.json.redox.json"]
    job, step = rig.run(job)
    assert step.kind == "finished" and len(rig.client.bodies) == 1
    assert rig.journal.get(job.record.claim_id).state == "done"
    rig.close()


def test_a_send_never_starts_while_an_earlier_one_is_open_unflagged(tmp_path):
    """Whatever lost an answer (a bug, a Job dropped), the journal closes the open attempt as
    interrupted in the commit that starts the next one, and flags the file."""
    journal = Journal(str(tmp_path / "state.db"))
    record = journal.begin("a.json", "0" * 64, 10, "/in/a.json", "/p/a.json", "me", 0.0)
    journal.attempt_started(record.claim_id, "send", 1)
    journal.attempt_started(record.claim_id, "send", 2)
    assert journal.get(record.claim_id).possible_duplicate is True
    assert [(a["n"], a["result"]) for a in journal.attempts_of(record.claim_id)] == \
        [(1, "interrupted"), (2, None)]
    other = journal.begin("b.json", "1" * 64, 10, "/in/b.json", "/p/b.json", "me", 0.0)
    journal.attempt_started(other.claim_id, "upload", 1)
    journal.attempt_started(other.claim_id, "send", 1)      # an open upload is no SEND
    assert journal.get(other.claim_id).possible_duplicate is False
    journal.close()


def test_a_once_run_that_gives_up_on_the_journal_leaves_the_next_send_flagged(tmp_path):
    """The Job (and the answer on it) is lost when --once puts the file back: the attempt the
    journal still holds open makes the next run's SEND a possible duplicate."""
    rig = rig_with(tmp_path)
    rig.journal.forever.add("attempt_ended")
    rig.drop("a.json", message("a"))
    first = Runner(rig.store, rig.journal, rig.work, workers=1, settle_seconds=0,
                   rescan_seconds=60, once=True, once_wait=0, grace=5)
    assert first.run() == 1 and rig.listing("inbox") == ["a.json"]
    rig.journal.forever.clear()
    second = Runner(rig.store, rig.journal, rig.work, workers=1, settle_seconds=0,
                    rescan_seconds=60, once=True, once_wait=0, grace=5)
    assert second.run() == 0
    car = sidecar(tmp_path, "done")
    assert car["possible_duplicate"] is True and len(rig.client.bodies) == 2
    assert [a["result"] for a in car["attempt_history"]] == ["interrupted", "accepted"]
    rig.close()


def test_the_real_command_with_its_journal_on_a_full_disk_when_redox_accepts(tmp_path, sandbox):
    state = tmp_path / "state"
    env = PipelineEnv(tmp_path, sandbox.url, state={"path": str(state / "state.db")})

    def accepted():
        return [s for s in sandbox.records()["sends"] if s["status"] == 200 and s["log_ids"]]

    with small_filesystem(state, "1m"):
        # Redox accepts and records the SEND at once; its reply then takes seconds to arrive,
        # so the journal's disk is full by the time the pipeline has the Log IDs to record
        sandbox.faults(send_trickle_bps=100)
        proc = env.start()
        err = Lines(proc.stderr)
        try:
            env.drop("a.json", message("full"))
            env.wait_for(accepted)
            filler = fill(state)
            env.wait_for(lambda: "database or disk is full" in err)
            assert env.files("done") == [] and len(accepted()) == 1
            os.unlink(filler)                                # room again
            env.wait_for(lambda: env.files("done") == ["a.json"], timeout=90)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Traceback" not in err
    sends = accepted()
    assert len(sends) == 1, "Redox accepted the message twice"
    send = sends[0]
    car = env.sidecar("done", "a.json")
    assert [log["ID"] for log in car["logs"]] == send["log_ids"]
    assert car["attempts"] == 1 and car["possible_duplicate"] is False


class DeadOwnersLease:
    """The S3 store's side of LeaseJournal: the SEND progress a dead owner left in the lease we
    took over (handed out once, as S3Store.inherited does), and our own notes."""

    def __init__(self, progress: dict):
        self._inherited = {"a.json": progress}

    def inherited(self, name: str):
        return self._inherited.get(name)

    def taken_in(self, name: str) -> None:
        self._inherited.pop(name, None)

    def note_progress(self, name: str, **progress) -> None:
        pass


@pytest.mark.parametrize("progress", [{"sends_started": 1},
                                      {"sends_started": 1, "accepted": {"n": 1, "status": 200,
                                                                        "logs": [{"ID": "l1"}]}}])
def test_a_dead_owners_send_survives_a_journal_write_failing_during_its_replay(tmp_path, progress):
    from pipeline.sources.s3.progress import LeaseJournal
    journal = FailingJournal(str(tmp_path / "state.db"))
    journal.failures["attempt_started"] = 1
    lease = LeaseJournal(journal, DeadOwnersLease(progress))
    args = ("a.json", "0" * 64, 10, "s3://b/in/a.json", "s3://b/p/a.json", "me", 0.0)
    with pytest.raises(StorageError):
        lease.begin(*args)
    record = lease.begin(*args)                             # the step is tried again
    assert record.state == "accepted" or record.possible_duplicate
    journal.close()


# -- Retry-After is per file ----------------------------------------------------------------------

class BusyForOne(FakeClient):
    """503 with a long Retry-After for the message marked "busy"; the others are accepted."""

    def send(self, body: bytes, departing=None, destinations=0):
        if departing is not None:
            departing()
        if b'"busy"' in body:
            raise TransientDelivery("HTTP 503", status=503, retry_after=250)
        return super().send(body)


def test_a_retry_after_delays_only_the_file_it_was_given_for(tmp_path):
    rig = rig_with(tmp_path, BusyForOne())
    rig.work = FileWork(store=rig.store, journal=rig.journal, client=rig.client,
                        policy=RetryPolicy(3, 1.0, 300.0), breaker=CircuitBreaker(5, 1.0, 60.0),
                        destinations=(Destination(**DESTINATION),), send_limit=10 << 20, dedupe=True)
    rig.drop("busy.json", message("busy"))
    rig.drop("other.json", message("other"))
    busy, step = rig.run(rig.claim("busy.json"))
    assert step.kind == "retry" and step.delay == 250          # this file waits, per Retry-After
    other, step = rig.run(Job(rig.claim("other.json")))
    assert step.kind == "finished" and step.status == "done"   # the next file does not
    assert rig.work.breaker.allow() and rig.work.breaker.wait_time() == 0
    rig.close()
