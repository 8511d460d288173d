"""End to end: the real `redox-pipeline` command in a subprocess against the sandbox on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from pipeline_env import PipelineEnv, message, stop


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url)


def sends(sandbox):
    return sandbox.records()["sends"]


def test_valid_files_end_in_done_with_the_log_ids_the_sandbox_issued(env, sandbox):
    for i in range(5):
        env.drop(f"m{i}.json", message(f"m{i}"))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert env.files("done") == [f"m{i}.json" for i in range(5)]
    assert env.files("inbox") == [] and env.files("processing") == []
    issued = {log_id for s in sends(sandbox) for log_id in s["log_ids"]}
    for i in range(5):
        car = env.sidecar("done", f"m{i}.json")
        assert car["status"] == "done" and car["attempts"] == 1 and car["http_status"] == 200
        assert car["errors"] == [] and car["uploads"] == [] and car["possible_duplicate"] is False
        assert [log["ID"] for log in car["logs"]] and {log["ID"] for log in car["logs"]} <= issued
        assert all(log["AttemptID"] for log in car["logs"])
        assert car["source"] == str(env.inbox / f"m{i}.json")
        assert car["sha256"] == __import__("hashlib").sha256(
            (env.folder("done") / f"m{i}.json").read_bytes()).hexdigest()
    # the configured destinations were set on every SEND
    assert all(s["destinations"] == ["af394f14-b34a-464f-8d24-895f370af4c9"] for s in sends(sandbox))


BAD_FILES = {
    "empty.json": (b"", "empty file"),
    "truncated.json": (b'{"Meta": {"DataModel": "PatientAdmin"', "truncated JSON"),
    "latin1.json": ('{"Meta": {"DataModel": "Caf\xe9"}}'.encode("latin-1"), "not UTF-8"),
    "array.json": (b"[1, 2, 3]", "JSON array"),
    "nan.json": (b'{"Meta": {"DataModel": "a", "EventType": "b"}, "x": NaN}', "NaN"),
    "deep.json": (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    "bignum.json": (b'{"Meta": {"DataModel": "a", "EventType": "b"}, "x": ' + b"9" * 5000 + b"}", "digits long"),
    "nometa.json": (b'{"Patient": {}}', "no Meta"),
    "eventtype.json": (b'{"Meta": {"DataModel": "a", "EventType": 7}}', "Meta.EventType"),
}


def test_each_kind_of_bad_file_fails_with_its_reason_and_is_never_sent(env, sandbox):
    for name, (data, _) in BAD_FILES.items():
        env.drop(name, data)
    env.drop("good.json", message("good"))
    result = env.run("run", "--once")
    assert result.returncode == 1
    assert env.files("failed") == sorted(BAD_FILES)
    assert env.files("done") == ["good.json"]
    for name, (data, reason) in BAD_FILES.items():
        car = env.sidecar("failed", name)
        assert car["status"] == "failed" and car["attempts"] == 0 and car["http_status"] is None
        assert any(reason in e for e in car["errors"]), (name, car["errors"])
        assert (env.folder("failed") / name).read_bytes() == data    # moved as dropped
    assert len(sends(sandbox)) == 1


def test_a_400_is_not_retried_and_keeps_redoxs_error_text(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(fail_next=[400])
    result = env.run("run", "--once")
    assert result.returncode == 1
    assert env.files("failed") == ["a.json"]
    car = env.sidecar("failed", "a.json")
    assert car["attempts"] == 1 and car["http_status"] == 400 and car["reason_kind"] == "permanent"
    assert car["errors"] and all(isinstance(e, str) for e in car["errors"])
    assert len(sends(sandbox)) == 1


def test_a_403_fails_at_once_and_says_it_is_likely_a_config_problem(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(fail_next=[403])
    assert env.run("run", "--once").returncode == 1
    car = env.sidecar("failed", "a.json")
    assert car["attempts"] == 1 and any("configuration problem" in e for e in car["errors"])


def test_two_503s_then_success_gives_three_attempts(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(fail_next=[503, 503])
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    car = env.sidecar("done", "a.json")
    assert car["attempts"] == 3 and car["http_status"] == 200
    assert [a["status"] for a in car["attempt_history"]] == [503, 503, 200]
    assert car["possible_duplicate"] is False


def test_always_5xx_makes_exactly_max_attempts_sends_then_fails(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(error_rate=1.0, error_status=500)
    result = env.run("run", "--once")
    assert result.returncode == 1
    car = env.sidecar("failed", "a.json")
    assert car["attempts"] == 5 and car["http_status"] == 500 and car["reason_kind"] == "gave_up"
    assert "gave up after 5 attempts" in car["errors"][0]
    assert len(sends(sandbox)) == 5


def test_a_504_marks_the_file_as_a_possible_duplicate(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(fail_next=[504])
    assert env.run("run", "--once").returncode == 0
    car = env.sidecar("done", "a.json")
    assert car["attempts"] == 2 and car["possible_duplicate"] is True


def test_a_429_is_retried(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(fail_next=[429], retry_after=0)
    assert env.run("run", "--once").returncode == 0
    assert env.sidecar("done", "a.json")["attempts"] == 2


def test_token_expiry_mid_run_loses_nothing_and_tokens_are_shared(env, sandbox):
    for i in range(12):
        env.drop(f"m{i:02}.json", message(f"m{i}"))
    sandbox.faults(latency_ms=30)
    proc = env.start()
    env.wait_for(lambda: len(env.files("done")) >= 3)
    sandbox.expire_tokens()
    env.wait_for(lambda: len(env.files("done")) == 12)
    code, _, err = stop(proc)
    assert code == 0, err
    assert all(env.sidecar("done", n)["attempts"] == 1 for n in env.files("done"))
    tokens = sandbox.records()["tokens_issued"]
    assert tokens == 2          # one at start, one after the expiry: shared by all 4 workers


def test_refused_credentials_exit_3_and_leave_every_file_in_the_inbox(env, sandbox):
    for i in range(3):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(refuse_credentials=True)
    result = env.run("run", "--once")
    assert result.returncode == 3
    assert "refused the credentials" in result.stderr
    assert env.files("inbox") == ["m0.json", "m1.json", "m2.json"]
    assert env.files("failed") == [] and env.files("done") == [] and env.files("processing") == []
    assert sends(sandbox) == []


def test_credentials_refused_mid_run_stop_with_exit_3_and_release_files(env, sandbox):
    for i in range(20):
        env.drop(f"m{i:02}.json", message(f"m{i}"))
    sandbox.faults(latency_ms=50)
    proc = env.start()
    env.wait_for(lambda: len(env.files("done")) >= 2)
    sandbox.faults(refuse_credentials=True)
    sandbox.expire_tokens()
    code = proc.wait(timeout=60)
    assert code == 3
    assert env.files("failed") == [] and env.files("processing") == []
    assert sorted(env.files("done") + env.files("inbox")) == [f"m{i:02}.json" for i in range(20)]


def test_unreachable_redox_exits_3_and_touches_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # nothing listens here once closed
    env = PipelineEnv(tmp_path, f"http://127.0.0.1:{port}")
    env.drop("a.json", message("a"))
    result = env.run("run", "--once")
    assert result.returncode == 3
    assert "could not be reached" in result.stderr
    assert env.files("inbox") == ["a.json"]


def test_empty_inbox_exits_0_without_contacting_redox(env, sandbox):
    assert env.run("run", "--once").returncode == 0
    assert sandbox.records()["token_requests"] == []


def test_names_that_are_not_ours_are_left_alone(env, sandbox):
    for name in (".hidden.json", "a.json.tmp", "b.json.part", "notes.txt", "c.tmp"):
        (env.inbox / name).write_bytes(message(name))
    (env.inbox / "dir.json").mkdir()
    os.symlink(env.root / "config.yaml", env.inbox / "link.json")
    env.drop("real.json", message("real"))
    assert env.run("run", "--once").returncode == 0
    assert env.files("done") == ["real.json"]
    left = sorted(os.listdir(env.inbox))
    assert left == sorted([".hidden.json", "a.json.tmp", "b.json.part", "notes.txt", "c.tmp",
                           "dir.json", "link.json"])
    assert len(sends(sandbox)) == 1


def test_a_name_already_in_done_is_never_overwritten(env, sandbox):
    env.drop("a.json", message("first"))
    assert env.run("run", "--once").returncode == 0
    env.drop("a.json", message("second"))
    assert env.run("run", "--once").returncode == 0
    assert env.files("done") == ["a-1.json", "a.json"]
    assert b"first" in (env.folder("done") / "a.json").read_bytes()
    assert b"second" in (env.folder("done") / "a-1.json").read_bytes()


def test_the_same_bytes_dropped_again_are_not_sent_twice(env, sandbox):
    env.drop("a.json", message("same"))
    assert env.run("run", "--once").returncode == 0
    env.drop("again.json", message("same"))
    assert env.run("run", "--once").returncode == 0
    car = env.sidecar("done", "again.json")
    assert car["duplicate_of"] == str(env.folder("done") / "a.json")
    assert car["attempts"] == 0 and car["logs"] == []
    assert len(sends(sandbox)) == 1


def test_dedupe_false_sends_the_same_bytes_again(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, dedupe=False)
    env.drop("a.json", message("same"))
    env.run("run", "--once")
    env.drop("again.json", message("same"))
    env.run("run", "--once")
    assert "duplicate_of" not in env.sidecar("done", "again.json")
    assert len(sends(sandbox)) == 2


def test_the_configured_rate_is_never_exceeded(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, redox={"max_requests_per_second": 5})
    for i in range(16):
        env.drop(f"m{i:02}.json", message(f"m{i}"))
    assert env.run("run", "--once").returncode == 0
    times = sorted(s["received_at"] for s in sends(sandbox))     # arrival, not completion
    assert len(times) == 16
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 5


def test_a_second_once_run_exits_promptly_and_says_who_holds_the_lock(env, sandbox):
    for i in range(4):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(latency_ms=6000)       # the first run holds its claims while the second starts
    first = env.start("--once")
    env.wait_for(lambda: env.files("processing"))
    second = env.run("run", "--once", timeout=20)
    assert second.returncode == 0
    assert "already working on these folders" in second.stderr and "pid" in second.stderr
    assert first.wait(timeout=60) == 0
    assert len(sends(sandbox)) == 4


def test_service_sends_a_file_dropped_while_it_runs_and_stops_cleanly(env, sandbox):
    proc = env.start("--log-format", "json")
    env.wait_for(lambda: (env.folder("processing")).exists() and any(
        p.is_dir() for p in env.folder("processing").iterdir()))
    env.drop("late.json", message("late"))
    env.wait_for(lambda: env.files("done") == ["late.json"])
    code, out, err = stop(proc)
    assert code == 0
    assert env.files("processing") == [] and list(env.folder("processing").iterdir()) == []
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["event"] == "done" and line["file"] == "late.json" for line in lines)
    assert "late" not in err.replace("late.json", "")      # no message content in the logs


def test_a_half_written_file_is_not_sent_early(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, source={"settle_seconds": 1.0})
    proc = env.start()
    body = message("slow", padding="x" * 4000)
    path = env.inbox / "slow.json"
    with open(path, "wb") as handle:
        for i in range(0, len(body), 1000):
            handle.write(body[i:i + 1000])
            handle.flush()
            time.sleep(0.3)             # the writer pauses for less than settle_seconds
    env.wait_for(lambda: env.files("done") == ["slow.json"])
    stop(proc)
    assert env.files("failed") == []
    assert len(sends(sandbox)) == 1


def test_sigterm_releases_files_waiting_for_a_retry(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, retry={"backoff_initial_seconds": 30,
                                                    "backoff_max_seconds": 60})
    env.drop("a.json", message("a"))
    sandbox.faults(error_rate=1.0, error_status=503)
    proc = env.start()
    env.wait_for(lambda: sends(sandbox))
    time.sleep(0.2)
    code, _, _ = stop(proc)
    assert code == 0
    assert env.files("inbox") == ["a.json"] and env.files("processing") == []
