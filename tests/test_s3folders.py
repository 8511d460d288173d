"""status and report over an S3 source: the read view counts keys as the store would."""

from __future__ import annotations

import json

from pipeline_env import PipelineEnv, message


def s3_env(tmp_path, moto_server, bucket):
    return PipelineEnv(tmp_path, "http://127.0.0.1:9", source={
        "kind": "s3", "bucket": bucket.name, "prefix": "incoming/", "endpoint_url": moto_server.url,
        "region": "us-east-1"}, folders={"processing": "processing", "done": "done", "failed": "failed"})


def test_status_and_report_count_an_s3_source(tmp_path, moto_server, bucket):
    car = {"status": "failed", "errors": ["not valid JSON"], "reason_kind": "invalid",
           "reason": "not valid JSON", "finished_at": "2026-11-26T10:00:00+00:00",
           "dropped_at": "2026-11-26T09:59:00+00:00"}
    for key, data in {
        "incoming/a.json": message("a"), "incoming/sub/b.json": message("b"),
        "incoming/.hidden.json": b"{}", "incoming/c.json.part": b"{}", "incoming/notes.txt": b"x",
        "processing/x.json": message("x"), "processing/.leases/x.json": b"{}",
        "done/d.json": message("d"), "done/d.json.redox.json": json.dumps(dict(car, status="done",
                                                                               errors=[])).encode(),
        "failed/f.json": b"{", "failed/f.json.redox.json": json.dumps(car).encode(),
    }.items():
        bucket.put(key, data)
    env = s3_env(tmp_path, moto_server, bucket)
    result = env.run("status", "--json", "--no-auth-check")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["inbox"], doc["processing"], doc["done"], doc["failed"]) == (2, 1, 1, 1)
    assert [e["file"] for e in doc["last_errors"]] == ["f.json"]
    report = env.run("report", "--json")
    assert report.returncode == 0, report.stderr
    assert "not valid JSON" in report.stdout


def test_retry_failed_puts_an_s3_object_back_and_its_history_reaches_the_next_sidecar(
        tmp_path, moto_server, bucket, sandbox):
    car = {"status": "failed", "errors": ["gave up after 10 attempts"], "reason_kind": "gave_up",
           "attempts": 10, "finished_at": "2026-11-26T10:00:00+00:00"}
    bucket.put("failed/x/late.json", message("late"))
    bucket.put("failed/x/late.json.redox.json", json.dumps(car).encode())
    env = PipelineEnv(tmp_path, sandbox.url, source={
        "kind": "s3", "bucket": bucket.name, "prefix": "incoming/", "endpoint_url": moto_server.url,
        "region": "us-east-1", "settle_seconds": 0}, folders={
        "processing": "processing", "done": "done", "failed": "failed"})
    result = env.run("retry-failed")
    assert result.returncode == 0, result.stderr
    assert bucket.keys("incoming/") == ["x/late.json"] and bucket.keys("failed/") == []
    assert env.run("run", "--once").returncode == 0
    assert bucket.keys("done/") == ["x/late.json"]
    sidecar = bucket.sidecar("done/x/late.json")
    assert sidecar["status"] == "done" and sidecar["history"][0]["errors"] == car["errors"]


def test_reconcile_follows_the_log_ids_of_files_in_an_s3_done_prefix(tmp_path, moto_server, bucket, sandbox):
    bucket.put("incoming/r/a.json", message("a"))
    env = PipelineEnv(tmp_path, sandbox.url, source={
        "kind": "s3", "bucket": bucket.name, "prefix": "incoming/", "endpoint_url": moto_server.url,
        "region": "us-east-1", "settle_seconds": 0}, folders={
        "processing": "processing", "done": "done", "failed": "failed"},
        delivery_check={"enabled": True, "organization_id": "org-1",
                        "platform_url": f"{sandbox.url}/platform"})
    assert env.run("run", "--once").returncode == 0
    result = env.run("reconcile")
    assert result.returncode == 0, result.stderr
    sidecar = bucket.sidecar("done/r/a.json")
    [log_id] = [entry["ID"] for entry in sidecar["logs"]]
    assert sidecar["delivery"][log_id]["status"] == "succeeded"
