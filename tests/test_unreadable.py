"""A file the service may not read. Tests run as root, and root reads anything, so the real
command runs as the unprivileged ``nobody`` (setpriv); a unit test covers the same mapping
through the storage seam wherever that is impossible."""

from __future__ import annotations

import json
import os

import pytest
from fakes import UnreadableStore
from hostile import Lines, Rig, Unprivileged
from pipeline_env import message


@pytest.fixture
def unpriv():
    u = Unprivileged()
    yield u
    u.cleanup()


def test_an_unreadable_file_fails_with_the_reason_and_is_never_sent(unpriv, sandbox):
    env = unpriv.env(sandbox.url)
    env.drop("good.json", message("good"))
    locked = env.drop("locked.json", message("locked"))
    os.chown(locked, 0, 0)
    os.chmod(locked, 0o600)                      # root's own file: nobody may not read it
    unpriv.give(env.inbox / "good.json")
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert env.files("done") == ["good.json"] and env.files("failed") == ["locked.json"]
    car = env.sidecar("failed", "locked.json")
    assert car["reason_kind"] == "unreadable" and car["attempts"] == 0
    assert car["errors"] == ["cannot read the file (Permission denied)"]
    moved = env.folder("failed") / "locked.json"
    assert moved.read_bytes() == message("locked") and os.stat(moved).st_uid == 0
    assert [s["marker"] for s in sandbox.records()["sends"]] == ["good"]


def test_the_stage_maps_an_unreadable_file_to_failed(tmp_path):
    rig = Rig(tmp_path, store_class=UnreadableStore)
    rig.drop("locked.json", message("locked"))
    _, step = rig.run(rig.claim("locked.json"))
    assert step.kind == "finished" and step.status == "failed"
    car = json.loads((tmp_path / "failed" / "locked.json.redox.json").read_bytes())
    assert car["reason_kind"] == "unreadable" and rig.client.bodies == []
    rig.close()


def test_an_inbox_that_cannot_be_listed_is_a_clear_error_for_once(unpriv, sandbox):
    env = unpriv.env(sandbox.url)
    env.drop("a.json", message("a"))
    os.chown(env.inbox, 0, 0)
    os.chmod(env.inbox, 0o700)
    result = env.run("run", "--once")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot list the inbox (Permission denied)" in result.stderr
    assert sorted(os.listdir(env.inbox)) == ["a.json"]


def test_the_service_waits_out_an_inbox_it_can_no_longer_list(unpriv, sandbox):
    # (at start an unlistable inbox is a config error, exit 2: test_source_missing.py)
    env = unpriv.env(sandbox.url, source={"rescan_seconds": 0.2})
    proc = env.start()
    err = Lines(proc.stderr)
    try:
        env.wait_for(lambda: "starting as a service" in err)
        os.chown(env.inbox, 0, 0)
        os.chmod(env.inbox, 0o700)
        env.wait_for(lambda: "cannot list the inbox (Permission denied)" in err)
        env.drop("a.json", message("a"))
        os.chown(env.inbox / "a.json", unpriv.uid, unpriv.gid)
        os.chown(env.inbox, unpriv.uid, unpriv.gid)             # fixed
        env.wait_for(lambda: env.files("done") == ["a.json"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in err
