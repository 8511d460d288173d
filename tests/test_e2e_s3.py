"""End to end with an S3 source: the real command in subprocesses, moto in server mode on
127.0.0.1 as S3 (and SQS), the sandbox as Redox."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from pipeline_env import PipelineEnv, message, stop

FOLDERS = {"processing": "processing", "done": "done", "failed": "failed"}


def s3_env(tmp_path, sandbox, moto_server, bucket, name: str = "w", **source) -> PipelineEnv:
    """A pipeline whose source is ``bucket``'s ``incoming/`` prefix (its own state: another machine)."""
    root = tmp_path / name
    root.mkdir()
    config = {"kind": "s3", "bucket": bucket.name, "prefix": "incoming/",
              "endpoint_url": moto_server.url, "region": "us-east-1", "settle_seconds": 0,
              "rescan_seconds": 0.5, "lease_seconds": 5}
    config.update(source)
    return PipelineEnv(root, sandbox.url, source=config, folders=FOLDERS)


def sends_by_marker(sandbox) -> Counter:
    return Counter(s["marker"] for s in sandbox.records()["sends"])


def test_nested_prefixes_end_in_done_and_failed_with_sidecars_beside(tmp_path, sandbox, moto_server, bucket):
    good = {"incoming/a/b/deep.json": message("deep"), "incoming/top.json": message("top")}
    bad = b'{"Meta": {"DataModel": "PatientAdmin"'
    for key, data in good.items():
        bucket.put(key, data)
    bucket.put("incoming/x/bad.json", bad)
    env = s3_env(tmp_path, sandbox, moto_server, bucket, page_size=2)
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    assert bucket.keys("done/") == ["a/b/deep.json", "top.json"]
    assert bucket.keys("failed/") == ["x/bad.json"]
    assert bucket.keys("incoming/") == [] and bucket.keys("processing/", sidecars=True) == []
    for key, data in good.items():
        name = key[len("incoming/"):]
        assert bucket.get(f"done/{name}") == data
        car = bucket.sidecar(f"done/{name}")
        assert car["status"] == "done" and car["attempts"] == 1 and car["http_status"] == 200
        assert car["source"] == f"s3://{bucket.name}/{key}" and car["name"] == name
        assert car["sha256"] == hashlib.sha256(data).hexdigest()
        assert [log["ID"] for log in car["logs"]] and car["possible_duplicate"] is False
    car = bucket.sidecar("failed/x/bad.json")
    assert car["status"] == "failed" and car["attempts"] == 0 and any("truncated JSON" in e for e in car["errors"])
    assert bucket.get("failed/x/bad.json") == bad
    assert sends_by_marker(sandbox) == Counter({"deep": 1, "top": 1})


def test_keys_that_are_not_ours_are_left_untouched(tmp_path, sandbox, moto_server, bucket):
    untouched = {"other/o.json": b"outside", "incoming/.hidden.json": b"h", "incoming/.tmp/a.json": b"t",
                 "incoming/notes.txt": b"n", "incoming/up.json.part": b"p", "incoming/up.json.tmp": b"t",
                 "incoming/old.json.redox.json": b"{}", "incomingX.json": b"x"}
    for key, data in untouched.items():
        bucket.put(key, data)
    bucket.put("incoming/real.json", message("real"))
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    assert env.run("run", "--once").returncode == 0
    assert bucket.keys("done/") == ["real.json"]
    for key, data in untouched.items():
        assert bucket.get(key) == data
    assert sends_by_marker(sandbox) == Counter({"real": 1})


def test_pagination_takes_every_object_with_a_tiny_page_size(tmp_path, sandbox, moto_server, bucket):
    names = [f"p/{i:03d}.json" for i in range(11)]
    for name in names:
        bucket.put(f"incoming/{name}", message(name))
    env = s3_env(tmp_path, sandbox, moto_server, bucket, page_size=3)
    result = env.run("run", "--once")   # --once takes what the first full listing found: all pages
    assert result.returncode == 0, result.stderr
    assert bucket.keys("done/") == names
    assert sends_by_marker(sandbox) == Counter({n: 1 for n in names})


def test_a_name_already_in_done_gets_a_suffix_and_nothing_is_overwritten(tmp_path, sandbox, moto_server, bucket):
    bucket.put("done/a/x.json", b"earlier")
    bucket.put("incoming/a/x.json", message("x"))
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    assert env.run("run", "--once").returncode == 0
    assert bucket.keys("done/") == ["a/x-1.json", "a/x.json"]
    assert bucket.get("done/a/x.json") == b"earlier"
    assert bucket.sidecar("done/a/x-1.json")["source"] == f"s3://{bucket.name}/incoming/a/x.json"


def test_two_workers_on_one_bucket_never_send_one_object_twice(tmp_path, sandbox, moto_server, bucket):
    names = [f"n{i:03d}.json" for i in range(30)]
    for name in names:
        bucket.put(f"incoming/{name}", message(name))
    sandbox.faults(latency_ms=300)
    slow = s3_env(tmp_path, sandbox, moto_server, bucket, name="m1", page_size=4)
    slow.config_data["workers"] = 1
    slow.write_config()
    fast = s3_env(tmp_path, sandbox, moto_server, bucket, name="m2", page_size=4)
    service = slow.start()                  # one machine's service, one file at a time...
    try:
        slow.wait_for(bucket.leases)        # ...is working when the second machine's run starts
        result = fast.run("run", "--once")
        assert result.returncode == 0, result.stderr
        fast.wait_for(lambda: bucket.keys("done/") == names)
    finally:
        code, _, err = stop(service)
    assert code == 0, err
    assert bucket.keys("processing/", sidecars=True) == [] and bucket.keys("incoming/") == []
    assert sends_by_marker(sandbox) == Counter({n: 1 for n in names})
    owners = Counter(bucket.sidecar(f"done/{n}")["pipeline"]["pid"] for n in names)
    assert len(owners) == 2        # both really took part


def test_a_missing_bucket_is_a_config_error(tmp_path, sandbox, moto_server, aws_env):
    class Missing:
        name = "no-such-bucket-here"
    env = s3_env(tmp_path, sandbox, moto_server, Missing)
    result = env.run("run", "--once")
    assert result.returncode == 2
    assert "source.bucket" in result.stderr and "does not exist" in result.stderr


def test_no_aws_credentials_exit_3_and_touch_nothing(tmp_path, sandbox, moto_server, bucket, monkeypatch):
    bucket.put("incoming/a.json", message("a"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    result = env.run("run", "--once")
    assert result.returncode == 3
    assert "credentials" in result.stderr
    assert bucket.keys("incoming/") == ["a.json"] and sandbox.records()["sends"] == []


def test_service_sends_objects_as_they_arrive_and_stops_cleanly(tmp_path, sandbox, moto_server, bucket):
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    proc = env.start("--log-format", "json")
    bucket.put("incoming/late/one.json", message("late"))
    env.wait_for(lambda: bucket.keys("done/") == ["late/one.json"])
    code, _, err = stop(proc)
    assert code == 0, err
    assert bucket.keys("processing/", sidecars=True) == []
    assert "late" not in err.replace("late/one.json", "")     # no message content in the logs
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["event"] == "done" and line["file"] == "late/one.json" for line in lines)
