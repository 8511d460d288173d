"""`run --once` while Redox is down: the real command against the sandbox answering only errors.

The run ends once it has made no progress for `retry.once_wait_seconds` (exit 3), every file
goes back to the inbox with its retry schedule in the journal, and later runs send them once
Redox is back. A far-off Retry-After does not hold it either, and a signal says so in the exit
status. Outcomes are asserted, never durations: subprocess timeouts are only hang guards.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest
from pipeline_env import PipelineEnv, message
from service_lines import Lines

NAMES = [f"m{i}.json" for i in range(6)]


def accepted(sandbox) -> list[str]:
    return [s["marker"] for s in sandbox.records()["sends"] if s["status"] == 200 and s["log_ids"]]


def journal_rows(env) -> list[dict]:
    with sqlite3.connect(env.folder("state.db")) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT name, state, attempts, next_retry_at FROM claims")]


def run_until_sent(env, runs: int = 20) -> None:
    """Later --once runs, as cron would start them, until the inbox is empty."""
    for _ in range(runs):
        result = env.run("run", "--once", timeout=120)
        assert result.returncode == 0, result.stderr
        if not env.files("inbox"):
            return
        time.sleep(0.5)             # the released files' retries come due
    raise AssertionError(f"still in the inbox: {env.files('inbox')}")


@pytest.fixture
def env(tmp_path, sandbox):
    # plenty of attempts, so that no file gives up while Redox is down: the run must end
    # because it made no progress, not because the files ran out of attempts
    return PipelineEnv(tmp_path, sandbox.url, retry={
        "max_attempts": 1000, "backoff_initial_seconds": 0.2, "backoff_max_seconds": 1,
        "once_wait_seconds": 5, "breaker_threshold": 3})


def test_only_5xx_ends_the_run_with_exit_3_and_later_runs_send_everything(env, sandbox):
    for name in NAMES:
        env.drop(name, message(name))
    sandbox.faults(error_rate=1.0, error_status=503)
    result = env.run("run", "--once", timeout=120)
    assert result.returncode == 3, result.stderr
    assert "Redox answered nothing but server errors or timeouts" in result.stderr
    assert env.files("inbox") == NAMES
    assert env.files("processing") == env.files("done") == env.files("failed") == []
    rows = journal_rows(env)
    assert rows and all(r["state"] == "released" and r["next_retry_at"] for r in rows)
    assert all(r["attempts"] >= 1 for r in rows)
    assert accepted(sandbox) == []

    sandbox.faults(error_rate=0.0)
    run_until_sent(env)
    assert env.files("done") == NAMES and env.files("failed") == []
    assert sorted(accepted(sandbox)) == NAMES                 # each sent (accepted) once
    assert all(env.sidecar("done", n)["status"] == "done" for n in NAMES)


def test_no_answer_at_all_ends_the_run_the_same_way(env, sandbox):
    env.drop("a.json", message("a.json"))
    sandbox.faults(send_wire="no_reply")
    result = env.run("run", "--once", timeout=120)
    assert result.returncode == 3, result.stderr
    assert env.files("inbox") == ["a.json"] and env.files("processing") == []


def test_a_far_off_retry_after_does_not_hold_the_run(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, retry={"max_attempts": 10, "backoff_max_seconds": 300})
    for name in NAMES[:3]:
        env.drop(name, message(name))
    sandbox.faults(error_rate=1.0, error_status=503, retry_after="Fri, 31 Dec 9999 23:59:59 GMT",
                   retry_after_statuses=[429, 503])
    before = time.time()
    result = env.run("run", "--once", timeout=120)
    assert result.returncode == 3, result.stderr
    assert env.files("inbox") == NAMES[:3]
    rows = journal_rows(env)
    assert len(rows) == 3 and all(r["state"] == "released" for r in rows)
    # the schedule kept is the policy's longest wait, not the year 9999
    assert all(before < r["next_retry_at"] <= time.time() + 300 for r in rows)


def test_a_redox_that_recovers_within_once_wait_finishes_the_run_normally(env, sandbox):
    for name in NAMES[:2]:
        env.drop(name, message(name))
    sandbox.faults(fail_next=[503, 503, 503])
    result = env.run("run", "--once", timeout=120)
    assert result.returncode == 0, result.stderr
    assert env.files("done") == NAMES[:2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_once_run_stopped_by_a_signal_says_so_in_its_exit_status(env, sandbox, sig):
    for name in NAMES[:3]:
        env.drop(name, message(name))
    sandbox.faults(error_rate=1.0, error_status=503)
    env.config_data["retry"]["once_wait_seconds"] = 60
    env.write_config()
    proc = env.start("--once", "--log-format", "json")
    lines = Lines(proc.stderr)
    lines.wait_json(lambda d: d["event"] == "retry scheduled")
    proc.send_signal(sig)                    # (not stop(): Lines already reads stderr)
    assert proc.wait(timeout=60) == 128 + sig
    events = [json.loads(line)["event"] for line in lines.all()]
    assert any(e.startswith(f"stopped by {sig.name}") for e in events), events
    assert events[-1] == "finished"
    assert env.files("inbox") == NAMES[:3] and env.files("processing") == []
