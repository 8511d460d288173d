"""done/ or failed/ missing, unwritable or full: the file stays claimed (service) or goes back to
the inbox (--once), nothing is lost, half-written or sent twice, and it all recovers once the
folder is fixed.

Unwritable runs the real command as ``nobody`` (root writes anywhere); full mounts a real small
tmpfs (ENOSPC). Both skip only where the machine does not allow it; the storage seam test below
covers the same flow everywhere.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest
from fakes import FlakyFinish
from hostile import Lines, Rig, Unprivileged, fill, small_filesystem
from pipeline_env import PipelineEnv, message

GOOD, BAD = message("good"), b'{"Meta": "not an object"}'


def journal_states(env: PipelineEnv) -> list[str]:
    path = env.root / "drop" / "state.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return [row[0] for row in db.execute("SELECT state FROM claims")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def sends(sandbox) -> list[str]:
    return [s["marker"] for s in sandbox.records()["sends"]]


def no_debris(folder) -> bool:
    """Nothing half-written: no temp files, no sidecar without its file."""
    names = [n for n in os.listdir(folder) if n != ".filler"]
    files = {n for n in names if not n.endswith(".redox.json")}
    return (not any(n.startswith(".tmp-") for n in names)
            and all(n[:-len(".redox.json")] in files for n in names if n.endswith(".redox.json")))


# -- missing ------------------------------------------------------------------------------------------

def test_done_and_failed_removed_while_the_service_runs_are_recreated(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    proc = env.start()
    try:
        env.wait_for(lambda: any(p.is_dir() for p in env.folder("processing").iterdir()))
        os.rmdir(env.folder("done"))
        os.rmdir(env.folder("failed"))
        env.drop("good.json", GOOD)
        env.drop("bad.json", BAD)
        env.wait_for(lambda: env.folder("done").is_dir() and env.folder("failed").is_dir()
                     and env.files("done") == ["good.json"] and env.files("failed") == ["bad.json"])
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    for folder in ("done", "failed"):
        assert stat.S_IMODE(os.stat(env.folder(folder)).st_mode) == 0o700   # umask 077
    assert sends(sandbox) == ["good"]


# -- the storage seam: finishing fails, then works ----------------------------------------------------

@pytest.mark.parametrize("data, status", [(GOOD, "done"), (BAD, "failed")])
def test_a_finish_that_fails_is_retried_without_sending_again(tmp_path, data, status):
    rig = Rig(tmp_path, store_class=FlakyFinish)
    rig.drop("a.json", data)
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "stuck" and "No space left" in step.error and step.storage
    job, step = rig.run(job)
    assert step.kind == "stuck"
    assert rig.store.own_claims() and rig.listing(status) == []     # still claimed, nothing written
    job, step = rig.run(job)
    assert step.kind == "finished" and step.status == status
    assert len(rig.client.bodies) == (1 if status == "done" else 0)
    car = json.loads((tmp_path / status / "a.json.redox.json").read_bytes())
    assert car["attempts"] == (1 if status == "done" else 0)
    rig.close()


# -- unwritable (a real permission error, as an unprivileged user) ------------------------------------

@pytest.fixture
def unpriv():
    u = Unprivileged()
    yield u
    u.cleanup()


def lock_folder(env: PipelineEnv, name: str) -> None:
    os.chown(env.folder(name), 0, 0)
    os.chmod(env.folder(name), 0o755)                  # root's: nobody may not write there


def test_an_unwritable_done_folder_keeps_the_file_claimed_until_it_is_fixed(unpriv, sandbox):
    env = unpriv.env(sandbox.url, source={"settle_seconds": 0})
    lock_folder(env, "done")
    proc = env.start()
    try:
        env.drop("a.json", GOOD)
        unpriv.give(env.inbox)
        env.wait_for(lambda: journal_states(env) in (["accepted"], ["finishing"]))
        assert env.files("done") == [] and env.files("processing") != [] and no_debris(env.folder("done"))
        os.chown(env.folder("done"), unpriv.uid, unpriv.gid)          # the operator fixes it
        env.wait_for(lambda: env.files("done") == ["a.json"], timeout=90)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "cannot write sidecar (Permission denied)" in err and "Traceback" not in err
    assert sends(sandbox) == ["good"] and env.sidecar("done", "a.json")["attempts"] == 1
    assert env.files("processing") == [] and no_debris(env.folder("done"))


@pytest.mark.parametrize("folder, data", [("done", GOOD), ("failed", BAD)])
def test_once_returns_the_file_to_the_inbox_and_the_next_run_finishes_it(unpriv, sandbox, folder, data):
    env = unpriv.env(sandbox.url, retry={"once_wait_seconds": 1})
    lock_folder(env, folder)
    env.drop("a.json", data)
    unpriv.give(env.inbox)
    first = env.run("run", "--once")
    assert first.returncode == 1, first.stderr
    assert "could not be claimed or finished" in first.stderr and "Traceback" not in first.stderr
    assert env.files("inbox") == ["a.json"] and env.files("processing") == []
    assert env.files(folder) == [] and no_debris(env.folder(folder))
    os.chown(env.folder(folder), unpriv.uid, unpriv.gid)
    second = env.run("run", "--once")
    assert second.returncode == (0 if folder == "done" else 1), second.stderr
    assert env.files(folder) == ["a.json"] and env.files("inbox") == []
    car = env.sidecar(folder, "a.json")
    assert sends(sandbox) == (["good"] if folder == "done" else [])
    assert car["attempts"] == (1 if folder == "done" else 0)


# -- full (a real ENOSPC on a small tmpfs) ------------------------------------------------------------

def test_a_full_done_folder_keeps_the_file_claimed_until_there_is_room(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    with small_filesystem(env.folder("done"), "64k") as done:
        filler = fill(done)
        proc = env.start()
        err = Lines(proc.stderr)
        try:
            env.drop("a.json", message("good", padding="p" * 20000))
            # the finish has met the full disk (waiting for the journal's "accepted" raced it:
            # room could come back before the first try to finish)
            env.wait_for(lambda: "No space left on device" in err)
            assert journal_states(env) in (["accepted"], ["finishing"])
            assert env.files("done") == [] and env.files("processing") != [] and no_debris(done)
            os.unlink(filler)                                         # room again
            env.wait_for(lambda: env.files("done") == ["a.json"], timeout=90)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert "Traceback" not in err
        assert sends(sandbox) == ["good"] and env.sidecar("done", "a.json")["attempts"] == 1
        assert no_debris(done) and env.files("processing") == []
        assert (done / "a.json").read_bytes() == message("good", padding="p" * 20000)


@pytest.mark.parametrize("folder, data", [("done", GOOD), ("failed", BAD)])
def test_a_full_folder_with_once_then_room_again(tmp_path, sandbox, folder, data):
    env = PipelineEnv(tmp_path, sandbox.url, retry={"once_wait_seconds": 1})
    with small_filesystem(env.folder(folder), "64k") as target:
        filler = fill(target)
        env.drop("a.json", data)
        first = env.run("run", "--once")
        assert first.returncode == 1 and "No space left on device" in first.stderr, first.stderr
        assert env.files("inbox") == ["a.json"] and no_debris(target)
        os.unlink(filler)
        second = env.run("run", "--once")
        assert env.files(folder) == ["a.json"] and env.files("inbox") == [], second.stderr
        assert sends(sandbox) == (["good"] if folder == "done" else [])
        assert (target / "a.json").read_bytes() == data and no_debris(target)


def test_a_full_disk_under_the_journal_too_stops_nothing_and_loses_nothing(tmp_path, sandbox):
    """The whole drop folder, journal included, on one filesystem that fills up mid-run."""
    env = PipelineEnv(tmp_path, sandbox.url, source={"settle_seconds": 1.5})
    with small_filesystem(tmp_path / "drop", "2m") as drop:
        for sub in ("inbox", "processing", "done", "failed"):
            (drop / sub).mkdir()
        proc = env.start()
        err = Lines(proc.stderr)
        try:
            env.wait_for(lambda: (drop / "state.db").exists()
                         and any(p.is_dir() for p in env.folder("processing").iterdir()))
            env.drop("a.json", message("full", padding="f" * 3000))   # settles in 1.5 s ...
            filler = fill(drop)                                        # ... on a full disk
            env.wait_for(lambda: "database or disk is full" in err)
            assert env.files("done") == [] and no_debris(env.folder("done"))
            os.unlink(filler)
            env.wait_for(lambda: env.files("done") == ["a.json"], timeout=90)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert "Traceback" not in err and "unexpected" not in err
        assert sends(sandbox) == ["full"] and env.sidecar("done", "a.json")["attempts"] == 1


def test_once_exits_0_when_a_file_that_got_stuck_once_then_finished(tmp_path):
    """A --once run whose only file could not be finished at the first try (a full done/
    folder) but was at the second ends with exit 0: the file is in done/, not "left in the
    inbox for the next run"."""
    from pipeline.flow.runner import Runner
    rig = Rig(tmp_path, store_class=FlakyFinish)
    rig.store.failures = 1
    rig.drop("a.json", GOOD)
    runner = Runner(rig.store, rig.journal, rig.work, workers=1, settle_seconds=0,
                    rescan_seconds=60, once=True, once_wait=30, grace=5)
    code = runner.run()
    assert rig.listing("done") == ["a.json", "a.json.redox.json"]
    assert not runner.unfinished
    assert code == 0
    rig.close()
