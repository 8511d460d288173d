"""Logs: with --log-format json every line of every command is one JSON object, and no line
carries message content; text logs have one line per event with the fields operators need;
--once shows progress at a terminal only."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from pipeline_env import PipelineEnv, message

MARK = "PHI-MARKER-7f3a"


def json_lines(result) -> list[dict]:
    """Every line of stdout and stderr, each parsed as JSON (fails on the first that is not)."""
    docs = []
    for stream in (result.stdout, result.stderr):
        for line in stream.splitlines():
            assert line.strip(), "an empty line"
            docs.append(json.loads(line))
    return docs


def test_every_line_of_every_command_is_json_and_free_of_message_content(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, retry={"max_attempts": 2})
    for i in range(4):
        env.drop(f"ok{i}.json", message(f"{MARK}-ok{i}"))
    env.drop("bad.json", f'{{"Meta": {{"DataModel": "{MARK}"}}}}'.encode())
    env.drop("notjson.json", f"{MARK} is not JSON".encode())
    env.drop("refused.json", message(f"{MARK}-refused"))
    env.drop("flaky.json", message(f"{MARK}-flaky"))
    sandbox.faults(fail_next=[503, 400])
    runs = [env.run("run", "--once", "--log-format", "json")]
    runs.append(env.run("status", "--log-format", "json"))
    runs.append(env.run("status", "--json", "--log-format", "json"))
    runs.append(env.run("retry-failed", "--dry-run", "--log-format", "json"))
    runs.append(env.run("retry-failed", "--force", "--log-format", "json"))
    runs.append(env.run("run", "--once", "--log-format", "json"))
    runs.append(env.run("report", "--log-format", "json", "--html", str(tmp_path / "r.html")))
    runs.append(env.run("validate", "--log-format", "json"))
    runs.append(env.run("status", "--bogus", "--log-format", "json"))             # usage error
    runs.append(env.run("report", "--log-format=json", "--since", "whenever"))   # bad value
    runs.append(env.run("nonsense", "--log-format", "json"))
    docs = []
    for result in runs:
        docs += json_lines(result)
        assert MARK not in result.stdout + result.stderr
    events = [d.get("event") for d in docs]
    assert "send accepted" in events and "send permanent" in events and "failed" in events
    assert events.count("usage error") == 3
    assert [r.returncode for r in runs[-3:]] == [2, 2, 2]
    sends = [d for d in docs if d.get("event") == "send accepted"]
    assert all(len(d["sha256"]) == 12 and d["attempt"] >= 1 and d["status"] == 200
               and d["log_ids"] and d["duration"] >= 0 for d in sends)
    done = [d for d in docs if d.get("event") == "done"]
    assert done and all({"file", "sha256", "attempt", "log_ids", "duration", "dest"} <= set(d)
                        for d in done)

    bad_config = tmp_path / "broken.yaml"
    bad_config.write_text("source: {kind: ftp}\nfoo: 1\n")
    for command in ("run", "status", "report", "retry-failed", "validate"):
        result = env.run(command, "--config", str(bad_config), "--log-format", "json")
        assert result.returncode == 2
        assert {d["event"] for d in json_lines(result)} == {"config error"}


def test_text_lines_carry_file_hash_attempt_status_log_ids_and_duration(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("a.json", message(MARK))
    result = env.run("run", "--once")
    assert result.returncode == 0
    [done] = [line for line in result.stderr.splitlines() if " info done " in line]
    for field in ("file=a.json", "status=done", "sha256=", "attempt=1", "log_ids=", "duration="):
        assert field in done
    assert MARK not in result.stderr


def run_on_a_terminal(env, *args) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal; returns (exit status, what it showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(env.command(*args, "--config", str(env.config)), stdout=subprocess.PIPE,
                            stderr=follower, env=env._env(None), cwd=env.root)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:                     # the terminal closed: the process is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    proc.communicate(timeout=60)
    return proc.returncode, shown.decode()


def test_once_over_many_files_shows_progress_at_a_terminal_only(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    for i in range(30):
        env.drop(f"m{i:02}.json", message(f"m{i}"))
    code, shown = run_on_a_terminal(env, "run", "--once")
    assert code == 0
    assert "progress: 30 of 30 finished (30 done, 0 failed)" in shown
    for i in range(5):
        env.drop(f"n{i}.json", message(f"n{i}"))
    piped = env.run("run", "--once")
    assert piped.returncode == 0 and "progress" not in piped.stderr
