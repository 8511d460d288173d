"""Chaos: a real service SIGKILLed at random moments while hundreds of files flow, restarted
each time. At the end every file has exactly one outcome, and every file the sandbox accepted
twice was in flight at a kill (or hit a dropped connection) and says possible_duplicate."""

from __future__ import annotations

import collections
import random
import signal
import time

import pytest
from pipeline_env import PipelineEnv, message

FILES = 240
KILLS = 5
WORKERS = 4


def run_chaos(env: PipelineEnv, sandbox, seed: int) -> int:
    """Drop FILES files, kill the service KILLS times at random moments, then finish with --once.
    Returns the number of kills that actually hit a running service."""
    rng = random.Random(seed)
    for i in range(FILES // 2):
        env.drop(f"f{i:04}.json", message(f"f{i:04}"))
    kills = 0
    for k in range(KILLS):
        proc = env.start()
        if k == 1:
            for i in range(FILES // 2, FILES):          # more arrive while it runs
                env.drop(f"f{i:04}.json", message(f"f{i:04}"))
        time.sleep(rng.uniform(0.8, 2.0))               # a random moment, not a measured window
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    result = env.run("run", "--once", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return kills


def check_outcomes(env: PipelineEnv, sandbox, allowed_duplicates: int) -> None:
    names = [f"f{i:04}.json" for i in range(FILES)]
    assert env.files("inbox") == [] and env.files("processing") == [] and env.files("failed") == []
    assert env.files("done") == names                   # exactly one outcome each, no -1 copies
    sends = sandbox.records()["sends"]
    issued = {log_id for s in sends for log_id in s["log_ids"]}
    accepted = collections.Counter(s["marker"] for s in sends if s["status"] == 200)
    assert set(accepted) == {n[:-5] for n in names}     # every file reached Redox
    duplicates = [marker for marker, count in accepted.items() if count > 1]
    for name in names:
        car = env.sidecar("done", name)
        assert car["status"] == "done"
        assert car["logs"] and {log["ID"] for log in car["logs"]} <= issued
        if name[:-5] in duplicates:
            assert car["possible_duplicate"] is True, name
    assert len(duplicates) <= allowed_duplicates, (len(duplicates), allowed_duplicates)
    print(f"chaos: {FILES} files, {KILLS} kills, {len(duplicates)} duplicates at the sandbox")


@pytest.fixture
def chaos_env(tmp_path, sandbox):
    sandbox.faults(latency_ms=40, seed=7)
    return PipelineEnv(tmp_path, sandbox.url, workers=WORKERS, shutdown_grace_seconds=5,
                       retry={"max_attempts": 10})


def test_kill_9_at_random_moments_loses_nothing(chaos_env, sandbox):
    kills = run_chaos(chaos_env, sandbox, seed=1)
    check_outcomes(chaos_env, sandbox, allowed_duplicates=kills * WORKERS)


def test_kill_9_with_two_percent_of_connections_dropped_after_accepting(chaos_env, sandbox):
    sandbox.faults(drop_after_accept_rate=0.02)
    kills = run_chaos(chaos_env, sandbox, seed=2)
    dropped = sum(1 for s in sandbox.records()["sends"] if s.get("dropped"))
    check_outcomes(chaos_env, sandbox, allowed_duplicates=kills * WORKERS + dropped)


def test_kill_9_with_workers_auto_loses_nothing_and_flags_every_duplicate(tmp_path, sandbox):
    # workers: auto keeps rate × latency × 1.25 + 1 files in flight (concurrency.py): at 40 a
    # second, up to 26 while Redox takes under half a second, so a kill may leave that many
    # SENDs unanswered; each is adopted, flagged and sent again, none lost
    sandbox.faults(latency_ms=40, seed=7)
    env = PipelineEnv(tmp_path, sandbox.url, workers="auto", shutdown_grace_seconds=5,
                      retry={"max_attempts": 10}, redox={"max_requests_per_second": 40})
    kills = run_chaos(env, sandbox, seed=3)
    check_outcomes(env, sandbox, allowed_duplicates=kills * 26)
