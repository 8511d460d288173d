"""source.recursive for local folders, end to end: the inbox's subfolders count, and a file's
path below the inbox is its name everywhere and is kept under processing/, done/ and failed/."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest
from pipeline_env import PipelineEnv, message, stop


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url, source={"recursive": True})


def accepted(sandbox) -> Counter:
    return Counter(s["marker"] for s in sandbox.records()["sends"] if s["status"] == 200)


def folders_below(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_dir())


def test_subfolders_are_kept_under_done_and_failed_and_same_names_stay_apart(env, sandbox):
    env.drop("lab/2024/a.json", message("lab-a"))
    env.drop("billing/a.json", message("billing-a"))
    env.drop("a.json", message("top-a"))
    env.drop("lab/bad.json", b"{not json")
    env.drop(".hidden/h.json", message("hidden"))          # hidden folders never count
    env.drop("lab/.tmp/t.json", message("tmp"))
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    assert env.files("done") == ["a.json", "billing/a.json", "lab/2024/a.json"]
    assert env.files("failed") == ["lab/bad.json"]
    assert accepted(sandbox) == Counter({"lab-a": 1, "billing-a": 1, "top-a": 1})
    car = env.sidecar("done", "lab/2024/a.json")
    assert car["name"] == "lab/2024/a.json" and car["source"] == str(env.inbox / "lab" / "2024" / "a.json")
    assert env.sidecar("failed", "lab/bad.json")["name"] == "lab/bad.json"
    assert (env.inbox / ".hidden" / "h.json").exists() and (env.inbox / "lab" / ".tmp" / "t.json").exists()
    assert folders_below(env.folder("processing")) == []     # claim folders and subfolders tidied
    assert (env.inbox / "lab" / "2024").is_dir()             # the inbox's own folders stay
    lines = [json.loads(line) for line in env.run("status", "--json", "--no-auth-check").stdout.splitlines()]
    assert (lines[0]["done"], lines[0]["failed"], lines[0]["inbox"]) == (3, 1, 0)


def test_without_recursive_files_in_subfolders_are_left_alone(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("lab/a.json", message("lab-a"))
    env.drop("b.json", message("b"))
    assert env.run("run", "--once").returncode == 0
    assert env.files("done") == ["b.json"] and env.files("inbox") == ["lab/a.json"]


def test_a_killed_process_claims_in_subfolders_are_adopted_and_sent_once(env, sandbox):
    env.drop("lab/x/a.json", message("a"))
    result = env.run("run", "--once", env={"PIPELINE_FAILPOINT": "after_claim"})
    assert result.returncode == -signal.SIGKILL
    [claimed] = env.files("processing")
    assert claimed.endswith("/lab/x/a.json")                  # <owner>/lab/x/a.json
    assert env.run("run", "--once").returncode == 0
    assert env.files("done") == ["lab/x/a.json"] and env.files("processing") == []
    assert folders_below(env.folder("processing")) == []
    assert accepted(sandbox) == Counter({"a": 1})


def test_retry_failed_puts_a_file_back_under_its_path(env, sandbox):
    env.drop("lab/x/a.json", message("a"))
    sandbox.faults(fail_next=[404])
    assert env.run("run", "--once").returncode == 1
    assert env.files("failed") == ["lab/x/a.json"]
    retry = env.run("retry-failed")
    assert "requeued failed/lab/x/a.json" in retry.stdout, retry.stdout
    assert env.files("inbox") == ["lab/x/a.json"]
    assert env.run("run", "--once").returncode == 0
    car = env.sidecar("done", "lab/x/a.json")
    assert car["history"][0]["replayed_from"] == "lab/x/a.json"


def test_a_service_sees_files_dropped_into_new_subfolders_through_file_events(env, sandbox):
    env.config_data["source"]["rescan_seconds"] = 3600      # only file events can find it
    env.write_config()
    proc = env.start()
    try:
        env.wait_for(lambda: any(os.scandir(env.folder("processing"))))   # started, claim folder made
        env.drop("new/deeper/a.json", message("a"))
        env.wait_for(lambda: env.files("done") == ["new/deeper/a.json"], timeout=20)
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
