"""End to end: `redox-pipeline reconcile` and the service's background passes, in subprocesses,
against the sandbox's Platform logs endpoint (delivery confirmation)."""

from __future__ import annotations

import json
import time

import pytest
from pipeline_env import PipelineEnv, message, stop

from pipeline import config
from pipeline.delivery.records import delivery_summary, sent_time

ORG = "org-test"


def delivery_env(tmp_path, sandbox, **check):
    settings = {"organization_id": ORG, "platform_url": f"{sandbox.url}/platform", **check}
    return PipelineEnv(tmp_path, sandbox.url, delivery_check=settings)


@pytest.fixture
def env(tmp_path, sandbox):
    return delivery_env(tmp_path, sandbox)


def send(env, *markers):
    for marker in markers:
        env.drop(f"{marker}.json", message(marker))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    return {m: [log["ID"] for log in env.sidecar("done", f"{m}.json")["logs"]] for m in markers}


def lookups(sandbox):
    return sandbox.records()["log_lookups"]


def test_sent_files_are_reconciled_to_succeeded_and_final_ones_are_not_asked_again(env, sandbox):
    ids = send(env, "a", "b", "c")
    settings = config.load(env.config)
    assert delivery_summary(settings) == {"delivered": 0, "filtered": 0, "failed": 0, "gave_up": 0,
                                          "pending": 0, "unchecked": 3, "problems": []}
    result = env.run("reconcile")
    assert result.returncode == 0, result.stderr
    assert "3 delivered, 0 filtered, 0 failed, 0 gave up, 0 pending" in result.stdout
    for marker, log_ids in ids.items():
        car = env.sidecar("done", f"{marker}.json")
        assert set(car["delivery"]) == set(log_ids)
        entry = car["delivery"][log_ids[0]]
        assert entry["status"] == "succeeded" and entry["attempts"] == 1 and entry["final"] is True
        assert entry["gave_up"] is False and entry["checks"] == 1
        assert entry["attempt_at"] and entry["checked_at"]
        assert car["status"] == "done" and car["logs"]      # the rest of the sidecar is kept
    assert sorted(r["log_id"] for r in lookups(sandbox)) == sorted(i for v in ids.values() for i in v)
    again = env.run("reconcile")
    assert again.returncode == 0 and len(lookups(sandbox)) == 3     # final: not looked up again
    summary = delivery_summary(settings)
    assert (summary["delivered"], summary["unchecked"], summary["problems"]) == (3, 0, [])


def test_a_failed_delivery_is_reported_in_the_sidecar_and_the_exit_status(env, sandbox):
    sandbox.faults(delivery_fail_marker=["bad"], delivery_pending_marker=["slow"])
    ids = send(env, "good", "bad", "slow")
    result = env.run("reconcile", "--log-format", "json")     # failed wins over pending
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["failed"], summary["delivered"], summary["pending"]) == (1, 1, 1)
    assert summary["exit_status"] == 1
    assert summary["problems"] == [{"file": "bad.json", "log_id": ids["bad"][0], "status": "failed",
                                    "gave_up": False}]
    assert any(line.get("event") == "delivery failed" and line.get("log_id") == ids["bad"][0]
               for line in lines)
    assert env.sidecar("done", "bad.json")["delivery"][ids["bad"][0]]["status"] == "failed"
    assert env.sidecar("done", "good.json")["delivery"][ids["good"][0]]["status"] == "succeeded"
    problems = delivery_summary(config.load(env.config))["problems"]
    assert [(p["file"], p["status"]) for p in problems] == [("bad.json", "failed")]


def test_pending_exits_4_and_is_checked_again_until_final(env, sandbox):
    sandbox.faults(delivery_pending_marker=["slow"])
    ids = send(env, "slow", "quick")
    first = env.run("reconcile")
    assert first.returncode == 4, first.stderr
    entry = env.sidecar("done", "slow.json")["delivery"][ids["slow"][0]]
    assert entry["status"] == "pending" and entry["final"] is False and entry["gave_up"] is False
    assert env.run("reconcile").returncode == 4
    sandbox.faults(delivery_pending_marker=[])
    assert env.run("reconcile").returncode == 0
    entry = env.sidecar("done", "slow.json")["delivery"][ids["slow"][0]]
    assert entry["status"] == "succeeded" and entry["checks"] == 3
    assert [r["log_id"] for r in lookups(sandbox)].count(ids["quick"][0]) == 1


def test_pending_past_the_give_up_time_is_reported_and_no_longer_checked(tmp_path, sandbox):
    env = delivery_env(tmp_path, sandbox, give_up_after_hours=0.0001)   # 0.36 s after the SEND
    sandbox.faults(delivery_pending_marker=["slow"])
    ids = send(env, "slow")
    sent = sent_time(env.sidecar("done", "slow.json"))
    env.wait_for(lambda: time.time() > sent + 0.5)       # the give-up time has run out
    result = env.run("reconcile")
    assert result.returncode == 1, result.stderr
    assert "1 gave up" in result.stdout and ids["slow"][0] in result.stdout
    assert "gave up waiting for delivery" in result.stderr
    entry = env.sidecar("done", "slow.json")["delivery"][ids["slow"][0]]
    assert entry["status"] == "pending" and entry["gave_up"] is True and entry["final"] is True
    assert env.run("reconcile").returncode == 1
    assert len(lookups(sandbox)) == 1         # given up: not looked up again


def test_a_platform_5xx_or_429_is_retried_within_the_pass(env, sandbox):
    ids = send(env, "a")
    sandbox.faults(platform_fail_next=[500, 503, 429], retry_after=0.05)
    result = env.run("reconcile")
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in lookups(sandbox)] == [500, 503, 429, 200]
    assert env.sidecar("done", "a.json")["delivery"][ids["a"][0]]["status"] == "succeeded"


def test_refused_platform_credentials_stop_the_reconcile_with_exit_3(tmp_path, sandbox):
    env = delivery_env(tmp_path, sandbox, auth={
        "method": "oauth", "client_id": "sandbox-client", "key_id": "no-such-kid",
        "private_key_file": "client-key.pem"})
    send(env, "a")
    before = env.sidecar("done", "a.json")
    result = env.run("reconcile")
    assert result.returncode == 3
    assert "refused the credentials" in result.stderr
    assert env.sidecar("done", "a.json") == before and lookups(sandbox) == []


def test_reconcile_usage_and_config_problems_exit_2(tmp_path, sandbox):
    env = delivery_env(tmp_path, sandbox)
    bad = env.run("reconcile", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr
    del env.config_data["delivery_check"]["organization_id"]
    env.write_config()
    result = env.run("reconcile")
    assert result.returncode == 2 and "delivery_check.organization_id: missing" in result.stderr
    env.config_data["redox"]["auth"] = {"method": "legacy", "api_key": "k", "secret": "s"}
    env.config_data["delivery_check"] = {"enabled": True, "organization_id": ORG}
    env.write_config()
    result = env.run("validate")
    assert result.returncode == 2
    assert "delivery_check.auth: missing" in result.stderr and "OAuth" in result.stderr


def test_the_service_reconciles_in_the_background(tmp_path, sandbox):
    env = delivery_env(tmp_path, sandbox, enabled=True, interval_seconds=0.2)
    sandbox.faults(delivery_fail_marker=["bad"])
    proc = env.start()
    try:
        env.drop("good.json", message("good"))
        env.drop("bad.json", message("bad"))

        def reconciled():
            try:
                cars = [env.sidecar("done", n) for n in ("good.json", "bad.json")]
            except (OSError, ValueError):
                return False
            return all(c.get("delivery") and all(e["final"] for e in c["delivery"].values())
                       for c in cars)
        env.wait_for(reconciled, timeout=30)
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    statuses = {n: [e["status"] for e in env.sidecar("done", n)["delivery"].values()]
                for n in ("good.json", "bad.json")}
    assert statuses == {"good.json": ["succeeded"], "bad.json": ["failed"]}
    assert "delivery failed" in err
