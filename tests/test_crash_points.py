"""A real process killed (SIGKILL) at each step of a file's path, then restarted.

Driven deterministically by PIPELINE_FAILPOINT (pipeline/failpoints.py), not by timing.
"""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest
from pipeline_env import PipelineEnv, message


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url)


def crash(env, point: str):
    result = env.run("run", "--once", env={"PIPELINE_FAILPOINT": point})
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr)


def accepted(sandbox):
    return [s for s in sandbox.records()["sends"] if s["status"] == 200]


def restart(env):
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert env.files("done") == ["a.json"]
    assert env.files("processing") == [] and env.files("inbox") == [] and env.files("failed") == []
    return env.sidecar("done", "a.json")


def journal_state(env):
    db = sqlite3.connect(env.root / "drop" / "state.db")
    return [r[0] for r in db.execute("SELECT state FROM claims")]


def test_killed_after_claim_sends_once_after_restart(env, sandbox):
    env.drop("a.json", message("a"))
    crash(env, "after_claim")
    assert env.files("inbox") == [] and len(env.files("processing")) == 1
    car = restart(env)
    assert car["attempts"] == 1 and car["possible_duplicate"] is False
    assert len(accepted(sandbox)) == 1


def test_killed_after_the_attempt_was_journaled_but_before_it_left(env, sandbox):
    env.drop("a.json", message("a"))
    crash(env, "before_send")
    assert sandbox.records()["sends"] == []
    car = restart(env)
    # the process died mid-SEND as far as anyone can tell: counted, and flagged honestly
    assert car["attempts"] == 2 and car["possible_duplicate"] is True
    assert [a["result"] for a in car["attempt_history"]] == ["interrupted", "accepted"]
    assert len(accepted(sandbox)) == 1


def test_killed_after_redox_accepted_but_before_the_journal_knew(env, sandbox):
    env.drop("a.json", message("a"))
    crash(env, "after_send")
    assert len(accepted(sandbox)) == 1
    car = restart(env)
    # the one window no sender can close without an idempotency key: sent twice, and said so
    assert len(accepted(sandbox)) == 2
    assert car["possible_duplicate"] is True and car["attempts"] == 2


def test_killed_after_the_log_ids_were_journaled_is_never_sent_again(env, sandbox):
    env.drop("a.json", message("a"))
    crash(env, "after_accept")
    first = accepted(sandbox)
    car = restart(env)
    assert len(accepted(sandbox)) == 1
    assert [log["ID"] for log in car["logs"]] == first[0]["log_ids"]
    assert car["attempts"] == 1 and car["possible_duplicate"] is False


def test_killed_between_sidecar_and_move_reuses_its_own_sidecar(env, sandbox):
    env.drop("a.json", message("a"))
    crash(env, "after_sidecar")
    assert (env.folder("done") / "a.json.redox.json").exists()
    assert not (env.folder("done") / "a.json").exists()
    car = restart(env)
    assert len(accepted(sandbox)) == 1 and car["status"] == "done"
    assert sorted(p.name for p in env.folder("done").iterdir()) == ["a.json", "a.json.redox.json"]


def test_killed_between_link_and_unlink_leaves_one_copy(env, sandbox):
    # Where rename(RENAME_NOREPLACE) is missing, a move is link + unlink; a kill between the two
    # leaves the file both in done/ and in processing/. Linux has the atomic rename, so build
    # that state for real: kill after the sidecar, then make the link the move would have made.
    env.drop("a.json", message("a"))
    crash(env, "after_sidecar")
    [claimed] = [p for p in env.folder("processing").rglob("a.json")]
    os.link(claimed, env.folder("done") / "a.json")
    restart(env)
    assert len(accepted(sandbox)) == 1
    assert sorted(p.name for p in env.folder("done").iterdir()) == ["a.json", "a.json.redox.json"]


def test_killed_after_the_move_completes_the_journal_and_still_dedupes(env, sandbox):
    env.drop("a.json", message("a"))
    crash(env, "after_move")
    assert env.files("done") == ["a.json"] and env.files("processing") == []
    assert journal_state(env) == ["accepted"]       # Log IDs in, the finish not yet recorded
    env.drop("again.json", message("a"))           # the same bytes, dropped again
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert env.sidecar("done", "again.json")["duplicate_of"] == str(env.folder("done") / "a.json")
    assert len(accepted(sandbox)) == 1
    assert sorted(journal_state(env)) == ["done", "done"]


def test_killed_while_waiting_for_a_retry_keeps_attempts_and_schedule(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, retry={"backoff_initial_seconds": 0.01,
                                                    "backoff_max_seconds": 0.01, "max_attempts": 3})
    env.drop("a.json", message("a"))
    sandbox.faults(fail_next=[503, 503])
    crash(env, "before_send:3")            # the third attempt: two 503s are in the journal
    result = env.run("run", "--once")
    # 2 answered attempts + 1 interrupted = max_attempts (3): given up, not reset by the restart
    assert result.returncode == 1
    car = env.sidecar("failed", "a.json")
    assert car["attempts"] == 3 and car["reason_kind"] == "gave_up"
    assert [a["result"] for a in car["attempt_history"]] == ["transient", "transient", "interrupted"]
    assert any("503" in e for e in car["errors"])
    assert len(sandbox.records()["sends"]) == 2


def test_max_attempts_survives_a_crash_loop(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, retry={"backoff_initial_seconds": 0.01,
                                                    "backoff_max_seconds": 0.01, "max_attempts": 4})
    env.drop("a.json", message("a"))
    sandbox.faults(error_rate=1.0, error_status=503)
    for _ in range(2):
        crash(env, "before_send:2")        # each run: one answered 503, then dies on the next
    result = env.run("run", "--once")      # 4 attempts are in the journal: max_attempts reached
    assert result.returncode == 1
    car = env.sidecar("failed", "a.json")
    assert car["attempts"] == 4 and car["reason_kind"] == "gave_up"
    assert len(sandbox.records()["sends"]) == 2     # a restart never resets the count
