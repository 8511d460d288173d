"""The service says what it does and how it is: --version, the start-up, stop and summary lines,
dedupe skips logged as such, GET /healthz (200, then 503 with a reason), the `health` command
and systemd's notify/watchdog protocol; all with the real command against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid

import pytest
import requests
from hostile import Unprivileged
from pipeline_env import PipelineEnv, message, stop
from service_lines import Lines

from pipeline import __version__
from pipeline.config.models import HealthSettings
from pipeline.flow.pulse import Pulse
from pipeline.service.health import Health


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version(tmp_path):
    result = PipelineEnv(tmp_path, "http://127.0.0.1:9").run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"redox-pipeline {__version__}"


def test_start_up_stop_and_summary_lines(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, redox={"max_requests_per_second": 15})
    proc = env.start("--log-format", "json")
    lines = Lines(proc.stderr)
    start = lines.wait_json(lambda d: d["event"].startswith("redox-pipeline "))
    assert start["event"].startswith(f"redox-pipeline {__version__} starting as a service: source local ")
    assert start["startup"] == {
        "version": __version__, "mode": "service", "source": "local", "inbox": str(env.inbox),
        "folders": {k: str(env.folder(k)) for k in ("processing", "done", "failed")},
        "destinations": 1, "rate_limit": 15, "workers": 4, "auth": "oauth", "redox": sandbox.url}
    env.drop("a.json", message("a"))
    env.wait_for(lambda: env.files("done") == ["a.json"])
    proc.send_signal(signal.SIGTERM)         # (not stop(): Lines already reads stderr)
    assert proc.wait(timeout=60) == 0
    events = [json.loads(line) for line in lines.all()]
    [stopping] = [e for e in events if e["event"].startswith("stopping")]
    assert stopping["event"] == "stopping: draining 0 in flight" and stopping["reason"] == "SIGTERM"
    last = events[-1]
    assert last["event"] == "finished"
    assert {k: last[k] for k in ("done", "failed", "retried", "released", "duplicates")} == {
        "done": 1, "failed": 0, "retried": 0, "released": 0, "duplicates": 0}
    assert last["duration"] > 0
    text = json.dumps(events)
    assert "BEGIN" not in text and "PRIVATE" not in text        # never key material


def test_a_dedupe_skip_is_logged_as_such(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("a.json", message("same"))
    assert env.run("run", "--once").returncode == 0
    env.drop("again.json", message("same"))
    result = env.run("run", "--once", "--log-format", "json")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stderr.splitlines()]
    [skip] = [e for e in events if e.get("file") == "again.json" and "status" in e]
    assert skip["event"] == "skipped: already delivered"
    assert skip["duplicate_of"] == str(env.folder("done") / "a.json")
    assert events[-1]["duplicates"] == 1 and events[-1]["done"] == 1
    assert env.sidecar("done", "again.json")["duplicate_of"] == str(env.folder("done") / "a.json")


def test_healthz_is_200_then_503_with_a_reason_while_redox_fails(tmp_path, sandbox):
    port = free_port()
    env = PipelineEnv(tmp_path, sandbox.url, metrics={"port": port},
                      health={"breaker_open_minutes": 0.005, "loop_stall_seconds": 60},
                      retry={"max_attempts": 1000, "backoff_initial_seconds": 0.05,
                             "backoff_max_seconds": 0.2, "breaker_threshold": 2})
    proc = env.start()
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        ok = env.wait_for(lambda: _get(url, 200))
        [ok] = ok
        assert ok.headers["Content-Type"] == "application/json"
        body = ok.json()
        assert body["status"] == "ok" and body["version"] == __version__ and "reason" not in body
        assert env.run("health").returncode == 0                       # the container's check

        sandbox.faults(error_rate=1.0, error_status=503)
        for i in range(3):
            env.drop(f"m{i}.json", message(f"m{i}"))
        bad = env.wait_for(lambda: _get(url, 503))
        body = bad[0].json()
        assert body["status"] == "unhealthy" and "circuit breaker" in body["reason"]
        assert body["reasons"][0]["check"] == "breaker" and "HTTP 503" in body["reason"]
        check = env.run("health")
        assert check.returncode == 1 and json.loads(check.stdout)["status"] == "unhealthy"

        sandbox.faults(error_rate=0.0)                                 # Redox is back
        env.wait_for(lambda: len(env.files("done")) == 3, timeout=60)
        assert env.wait_for(lambda: _get(url, 200))
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_the_health_command_without_a_service_or_without_a_port(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9", metrics={"port": free_port()})
    result = env.run("health")
    assert result.returncode == 1 and "does not answer" in result.stdout
    env.config_data["metrics"]["port"] = None
    env.write_config()
    result = env.run("health")
    assert result.returncode == 2 and "metrics.port" in result.stderr


def _get(url: str, status: int):
    """The reply when it has ``status`` (a Response with 503 is falsy: wrapped in a list)."""
    try:
        reply = requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None
    return [reply] if reply.status_code == status else None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def judged():
    clock = Clock()
    pulse = Pulse(clock)
    return clock, pulse, Health(pulse, HealthSettings(breaker_open_minutes=5, redox_silent_minutes=10,
                                                      loop_stall_seconds=60), clock)


def test_health_reasons_storage_loop_credentials_and_a_silent_redox(judged):
    clock, pulse, health = judged
    pulse.turned(busy=False, breaker_open=False)
    assert health.check()[0] == 200
    pulse.storage_failed("cannot write sidecar (No space left on device): /d/done/a.json.redox.json")
    status, body = health.check()
    assert status == 503 and body["reasons"] == [{"check": "storage", "detail": (
        "writes are failing: cannot write sidecar (No space left on device): /d/done/a.json.redox.json")}]
    pulse.finished()                                  # a file finished: the storage works again
    assert health.check()[0] == 200
    clock.now += 61
    status, body = health.check()
    assert status == 503 and body["reason"] == "the main loop has not turned for 61s"
    pulse.turned(busy=True, breaker_open=False)
    assert health.check()[0] == 200
    clock.now += 600                                  # files waiting, Redox silent for 10 minutes
    pulse.turned(busy=True, breaker_open=False)
    assert health.check()[1]["reasons"][0]["check"] == "redox"
    pulse.answered(200)
    assert health.check()[0] == 200
    pulse.refused("Redox answered 401 to a freshly issued token")
    assert health.check()[1]["reasons"][0]["check"] == "credentials"


def test_nothing_to_send_is_healthy_however_long_redox_is_quiet(judged):
    clock, pulse, health = judged
    clock.now += 86400
    pulse.turned(busy=False, breaker_open=False)
    assert health.check()[0] == 200


def test_systemd_hears_ready_watchdog_pings_and_stopping(tmp_path, sandbox):
    address = f"\0redox-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(30)
    env = PipelineEnv(tmp_path, sandbox.url)
    proc = env.start(env={"NOTIFY_SOCKET": "@" + address[1:], "WATCHDOG_USEC": "200000"})
    try:
        first = listener.recv(4096).decode()
        assert first.startswith("READY=1\nSTATUS=redox-pipeline ")
        pings = [listener.recv(4096).decode() for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
    finally:
        proc.send_signal(signal.SIGTERM)
    seen = []
    while not any(m.startswith("STOPPING=1") for m in seen):
        seen.append(listener.recv(4096).decode())
    assert proc.wait(timeout=30) == 0
    listener.close()


@pytest.fixture
def unpriv():
    u = Unprivileged()
    yield u
    u.cleanup()


def test_healthz_says_when_writes_fail_and_recovers_when_they_work(unpriv, sandbox):
    port = free_port()
    env = unpriv.env(sandbox.url, metrics={"port": port})
    os.chown(env.folder("done"), 0, 0)
    os.chmod(env.folder("done"), 0o755)                # root's: the service may not write there
    proc = env.start()
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        env.wait_for(lambda: _get(url, 200))
        env.drop("a.json", message("a"))
        unpriv.give(env.inbox)
        [bad] = env.wait_for(lambda: _get(url, 503))
        [reason] = bad.json()["reasons"]
        assert reason["check"] == "storage" and "cannot write sidecar (Permission denied)" in reason["detail"]
        os.chown(env.folder("done"), unpriv.uid, unpriv.gid)          # the operator fixes it
        env.wait_for(lambda: env.files("done") == ["a.json"], timeout=90)
        assert env.wait_for(lambda: _get(url, 200))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
