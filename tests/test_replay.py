"""`redox-pipeline retry-failed`: failed files back into the inbox, their history kept."""

from __future__ import annotations

import json
import sqlite3

import pytest
from pipeline_env import PipelineEnv, message

from pipeline.ops.retry_failed import own_fault
from pipeline.timefmt import parse_since


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url, retry={"max_attempts": 2})


def fail_with_503s(env, sandbox, *names):
    """Files that fail by giving up on a Redox that answers 503 (not their fault)."""
    for name in names:
        env.drop(name, message(name))
    sandbox.faults(error_rate=1.0, error_status=503)
    assert env.run("run", "--once").returncode == 1
    sandbox.faults(error_rate=0.0)


def replays(env) -> list:
    with sqlite3.connect(env.folder("state.db")) as db:
        return db.execute("SELECT name, consumed_by FROM replays").fetchall()


def test_a_replayed_file_ends_in_done_with_its_failure_kept_as_history(env, sandbox):
    fail_with_503s(env, sandbox, "a.json")
    failed = env.sidecar("failed", "a.json")
    assert failed["reason_kind"] == "gave_up"

    result = env.run("retry-failed")
    assert result.returncode == 0, result.stderr
    assert "requeued failed/a.json" in result.stdout
    assert env.files("inbox") == ["a.json"] and env.files("failed") == []
    assert list(env.folder("failed").iterdir()) == []       # the old sidecar went with it

    assert env.run("run", "--once").returncode == 0
    car = env.sidecar("done", "a.json")
    assert car["status"] == "done" and car["attempts"] == 1 and car["claim_id"] != failed["claim_id"]
    [old] = car["history"]
    assert {k: old[k] for k in failed} == failed             # the whole earlier sidecar
    assert old["replayed_from"] == "a.json" and old["replay_forced"] is False
    assert old["replayed_at"].endswith("Z")
    assert replays(env) == [("a.json", car["claim_id"])]


def test_history_accumulates_oldest_first_over_several_replays(env, sandbox):
    fail_with_503s(env, sandbox, "a.json")
    first = env.sidecar("failed", "a.json")
    env.run("retry-failed")
    sandbox.faults(error_rate=1.0, error_status=503)
    assert env.run("run", "--once").returncode == 1
    second = env.sidecar("failed", "a.json")
    assert [h["claim_id"] for h in second["history"]] == [first["claim_id"]]
    sandbox.faults(error_rate=0.0)
    env.run("retry-failed")
    assert env.run("run", "--once").returncode == 0
    history = env.sidecar("done", "a.json")["history"]
    assert [h["claim_id"] for h in history] == [first["claim_id"], second["claim_id"]]
    assert all("history" not in h for h in history)          # flat, not nested


def test_failures_that_are_the_files_own_fault_are_refused_unless_forced(env, sandbox):
    env.drop("notjson.json", b"{oops")
    env.drop("rejected.json", message("r"))
    sandbox.faults(fail_next=[400])
    assert env.run("run", "--once").returncode == 1
    fail_with_503s(env, sandbox, "flaky.json")

    result = env.run("retry-failed")
    assert result.returncode == 0, result.stderr
    assert "refused failed/notjson.json: the file's own fault (invalid" in result.stdout
    assert "refused failed/rejected.json: Redox refused the message itself (HTTP 400" in result.stdout
    assert "requeued failed/flaky.json" in result.stdout
    assert "1 requeued, 2 refused" in result.stdout
    assert env.files("failed") == ["notjson.json", "rejected.json"]
    assert env.files("inbox") == ["flaky.json"]

    forced = env.run("retry-failed", "--force", "notjson.json")
    assert forced.returncode == 0 and "requeued failed/notjson.json" in forced.stdout
    assert env.files("failed") == ["rejected.json"]
    env.run("run", "--once")
    assert env.sidecar("failed", "notjson.json")["history"][0]["replay_forced"] is True


def test_dry_run_lists_and_moves_nothing(env, sandbox):
    fail_with_503s(env, sandbox, "a.json", "b.json")
    env.drop("c.json", b"nope")
    env.run("run", "--once")
    result = env.run("retry-failed", "--dry-run")
    assert result.returncode == 0
    assert "would requeue failed/a.json" in result.stdout and "would requeue failed/b.json" in result.stdout
    assert "refused failed/c.json" in result.stdout
    assert "2 would be requeued, 1 refused" in result.stdout
    assert env.files("failed") == ["a.json", "b.json", "c.json"] and env.files("inbox") == []
    assert replays(env) == []


def test_a_name_taken_in_the_inbox_is_never_overwritten(env, sandbox):
    fail_with_503s(env, sandbox, "a.json")
    env.drop("a.json", message("a newer file with the same name"))
    newer = (env.inbox / "a.json").read_bytes()
    result = env.run("retry-failed")
    assert result.returncode == 0
    assert (env.inbox / "a.json").read_bytes() == newer
    assert env.files("inbox") == ["a-1.json", "a.json"]
    assert env.run("run", "--once").returncode == 0
    assert "history" not in env.sidecar("done", "a.json")
    assert env.sidecar("done", "a-1.json")["history"][0]["name"] == "a.json"


def test_since_reason_and_names_choose_which_files(env, sandbox):
    fail_with_503s(env, sandbox, "old.json", "new.json", "other.json")
    path = env.folder("failed") / "old.json.redox.json"
    car = json.loads(path.read_text())
    car["finished_at"] = "2020-01-02T03:04:05.000+00:00"
    path.write_text(json.dumps(car))

    recent = env.run("retry-failed", "--dry-run", "--since", "2021-01-01")
    assert "old.json" not in recent.stdout and "new.json" in recent.stdout
    by_reason = env.run("retry-failed", "--dry-run", "--reason", "http 503")
    assert by_reason.stdout.count("would requeue") == 3
    assert "no failed file matched" in env.run("retry-failed", "--dry-run", "--reason", "timeout").stdout
    by_name = env.run("retry-failed", "--dry-run", "n*.json")
    assert by_name.stdout.count("would requeue") == 1 and "new.json" in by_name.stdout
    bad = env.run("retry-failed", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday'" in bad.stderr


def test_own_fault_decisions():
    assert own_fault({"reason_kind": "invalid", "errors": ["empty file"]})
    assert own_fault({"reason_kind": "too_large", "errors": []})
    assert own_fault({"reason_kind": "not_a_file", "errors": []})
    assert own_fault({"reason_kind": "permanent", "http_status": 400, "errors": []})
    assert own_fault({"reason_kind": "permanent", "http_status": 413, "errors": []})
    assert own_fault({"reason_kind": "gave_up", "possible_duplicate": True})
    # configuration problems and outages are worth another try
    assert own_fault({"reason_kind": "permanent", "http_status": 403, "errors": []}) is None
    assert own_fault({"reason_kind": "permanent", "http_status": 404, "errors": []}) is None
    assert own_fault({"reason_kind": "gave_up", "http_status": 503}) is None
    assert own_fault(None) is None


def test_since_accepts_dates_times_and_ages():
    now = 1_714_560_000.0                                    # 2024-05-01T10:40:00Z
    assert parse_since("2024-05-01", now) == 1_714_521_600.0
    assert parse_since("2024-05-01T10:00", now) == 1_714_557_600.0
    assert parse_since("2024-05-01T12:00+02:00", now) == 1_714_557_600.0
    assert parse_since("36h", now) == now - 36 * 3600
    assert parse_since("7d", now) == now - 7 * 86400
    with pytest.raises(ValueError):
        parse_since("yesterday", now)
