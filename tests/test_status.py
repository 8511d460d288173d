"""`redox-pipeline status`: the real command against real folders, journal and sandbox."""

from __future__ import annotations

import json
import socket

import pytest
from pipeline_env import PipelineEnv, message

MARK = "STATUS-CONTENT-MARKER"


@pytest.fixture
def env(tmp_path, sandbox):
    # a Retry-After of 30 s (capped at 60) keeps a 429'd file waiting past a --once run
    return PipelineEnv(tmp_path, sandbox.url,
                       retry={"backoff_initial_seconds": 0.01, "backoff_max_seconds": 60,
                              "once_wait_seconds": 0})


def status(env, *args):
    result = env.run("status", *args)
    assert result.returncode == 0, result.stderr
    return result


def test_counts_retries_last_errors_and_auth_as_json(env, sandbox):
    for i in range(3):
        env.drop(f"ok{i}.json", message(f"{MARK}{i}"))
    env.drop("bad.json", b'{"Meta": "' + MARK.encode() + b'"}')
    assert env.run("run", "--once").returncode == 1
    sandbox.faults(fail_next=[429], retry_after=30)
    env.drop("later.json", message(MARK), age=600)
    assert env.run("run", "--once").returncode == 0      # nothing failed; one waits
    # what status must not count: sidecars, dotfiles, a claim folder's lock; date folders count
    (env.folder("done") / "2024-05-01").mkdir()
    (env.folder("done") / "2024-05-01" / "old.json").write_bytes(b"{}")
    (env.folder("done") / "2024-05-01" / "old.json.redox.json").write_bytes(b"{}")
    (env.inbox / ".hidden.json").write_bytes(b"{}")
    (env.inbox / "notes.txt").write_bytes(b"x")

    doc = json.loads(status(env, "--json").stdout)
    assert {k: doc[k] for k in ("inbox", "processing", "done", "failed")} == {
        "inbox": 1, "processing": 0, "done": 4, "failed": 1}
    assert doc["oldest_waiting"]["file"] == "later.json"
    assert doc["oldest_waiting"]["age_seconds"] >= 600
    [retry] = doc["retries"]
    assert retry["file"] == "later.json" and retry["state"] == "released" and retry["attempts"] == 1
    assert 20 < retry["due_in_seconds"] <= 60 and retry["next_retry_at"].endswith("Z")
    assert retry["last_error"]
    [last] = doc["last_errors"]
    assert last["file"] == "bad.json" and last["reason_kind"] == "invalid"
    assert "Meta" in last["reason"] and "errors" not in last      # our words, never Redox's
    assert last["sidecar"] == str(env.folder("failed") / "bad.json.redox.json")
    assert doc["auth"]["state"] == "ok"
    assert doc["sections"] == {} and doc["journal"] == "ok"
    assert MARK not in json.dumps(doc)


def test_text_output_names_everything_an_operator_looks_for(env, sandbox):
    env.drop("bad.json", b"[1, 2]")
    env.drop("good.json", message(MARK))
    env.run("run", "--once")
    env.drop("waiting.json", message("w"))
    out = status(env).stdout
    lines = out.splitlines()
    assert any(line.split()[:2] == ["inbox", "1"] for line in lines)
    assert any(line.split()[:2] == ["done", "1"] for line in lines)
    assert any(line.split()[:2] == ["failed", "1"] for line in lines)
    assert "oldest waiting: waiting.json" in out
    assert "Redox auth: ok" in out
    assert "bad.json  invalid: not a Redox message: the top level is a JSON array" in out
    assert MARK not in out


def test_refused_credentials_are_reported_without_failing_the_command(env, sandbox):
    sandbox.faults(refuse_credentials=True)
    doc = json.loads(status(env, "--json").stdout)
    assert doc["auth"]["state"] == "refused"
    assert "refused" in doc["auth"]["detail"]
    [asked] = sandbox.records()["token_requests"]
    assert asked["status"] in (400, 401)


def test_an_unreachable_redox_is_reported_as_such(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = PipelineEnv(tmp_path, f"http://127.0.0.1:{port}")
    doc = json.loads(status(env, "--json").stdout)
    assert doc["auth"]["state"] == "unreachable"
    assert doc == {**doc, "inbox": 0, "processing": 0, "done": 0, "failed": 0, "journal": "missing"}


def test_no_auth_check_leaves_redox_alone_and_the_token_is_never_printed(env, sandbox):
    doc = json.loads(status(env, "--json", "--no-auth-check").stdout)
    assert doc["auth"] == {"state": "not_checked"}
    assert sandbox.records()["token_requests"] == []
    out = status(env).stdout + status(env, "--json").stdout
    assert "Bearer" not in out and "access_token" not in out


def test_processing_counts_claimed_files_but_not_the_owner_lock(env):
    owner = env.folder("processing") / "host-1-abc"
    owner.mkdir()
    (owner / ".lock").write_text("{}")
    (owner / "a.json").write_bytes(b"{}")
    doc = json.loads(status(env, "--json", "--no-auth-check").stdout)
    assert doc["processing"] == 1


def test_a_sidecar_without_its_file_is_not_a_current_failure(env):
    (env.folder("failed") / "gone.json.redox.json").write_text(json.dumps(
        {"status": "failed", "errors": ["x"], "reason_kind": "gave_up"}))
    (env.folder("failed") / "here.json").write_bytes(b"{}")
    (env.folder("failed") / "here.json.redox.json").write_text(json.dumps(
        {"status": "failed", "errors": ["y"], "reason_kind": "invalid"}))
    doc = json.loads(status(env, "--json", "--no-auth-check").stdout)
    assert doc["failed"] == 1
    assert [e["file"] for e in doc["last_errors"]] == ["here.json"]


def test_delivery_confirmation_counts_appear_as_their_own_section(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, delivery_check={
        "enabled": True, "organization_id": "org-test", "platform_url": f"{sandbox.url}/platform"})
    sandbox.faults(delivery_fail_marker=["will-fail"])
    env.drop("a.json", message("a"))
    env.drop("b.json", message("will-fail"))
    assert env.run("run", "--once").returncode == 0
    before = json.loads(status(env, "--json", "--no-auth-check").stdout)["sections"]["delivery"]
    assert before["unchecked"] == 2 and before["delivered"] == 0
    assert env.run("reconcile").returncode == 1
    doc = json.loads(status(env, "--json", "--no-auth-check").stdout)
    delivery = doc["sections"]["delivery"]
    assert (delivery["delivered"], delivery["failed"], delivery["unchecked"]) == (1, 1, 0)
    assert [p["file"] for p in delivery["problems"]] == ["b.json"]
    text = status(env, "--no-auth-check").stdout
    assert "delivery:\n  delivered 1, filtered 0, failed 1" in text
    assert "problems: file=b.json" in text
    report = json.loads(env.run("report", "--json").stdout)
    assert report["delivery"]["delivered"] == 1 and report["delivery"]["failed"] == 1
    assert "delivery confirmation (per Log ID): 1 delivered" in env.run("report").stdout


def test_no_delivery_section_when_it_is_disabled(env):
    doc = json.loads(status(env, "--json", "--no-auth-check").stdout)
    assert doc["sections"] == {}
    assert json.loads(env.run("report", "--json").stdout)["delivery"] is None
