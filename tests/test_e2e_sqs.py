"""End to end in SQS mode: S3 ObjectCreated notifications on an SQS queue (moto server) feed
several workers; the real command in subprocesses, the sandbox as Redox."""

from __future__ import annotations

import signal
import uuid
from collections import Counter

from pipeline_env import message, stop
from test_e2e_s3 import s3_env, sends_by_marker


def sqs_env(tmp_path, sandbox, moto_server, bucket, url, name="w", **source):
    return s3_env(tmp_path, sandbox, moto_server, bucket, name=name, queue_url=url,
                  queue_wait_seconds=1, **source)


def test_once_drains_the_queue_and_deletes_every_message(tmp_path, sandbox, moto_server, bucket):
    url, dlq = bucket.queue(f"q-{uuid.uuid4().hex[:8]}", dlq_after=5)
    names = [f"a/{i}.json" for i in range(5)]
    for name in names:
        bucket.put(f"incoming/{name}", message(name))
    env = sqs_env(tmp_path, sandbox, moto_server, bucket, url)
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert bucket.keys("done/") == names and bucket.keys("processing/", sidecars=True) == []
    assert sends_by_marker(sandbox) == Counter({n: 1 for n in names})
    assert bucket.messages(url) == 0 and bucket.messages(dlq) == 0


def test_two_workers_deliver_every_object_once_and_survive_one_killed_mid_object(
        tmp_path, sandbox, moto_server, bucket):
    url, dlq = bucket.queue(f"q-{uuid.uuid4().hex[:8]}", dlq_after=10)
    sandbox.faults(latency_ms=1000)                  # SENDs slow enough to kill one mid-flight
    knobs = dict(lease_seconds=2, queue_visibility_seconds=3)
    first = sqs_env(tmp_path, sandbox, moto_server, bucket, url, name="m1", **knobs)
    second = sqs_env(tmp_path, sandbox, moto_server, bucket, url, name="m2", **knobs)
    first.config_data["workers"] = second.config_data["workers"] = 2
    first.write_config()
    second.write_config()
    victim, survivor = first.start(), None
    try:
        names = [f"k/{i:02d}.json" for i in range(8)]
        for name in names:
            bucket.put(f"incoming/{name}", message(name))
        tag = f"-{victim.pid}-"
        first.wait_for(lambda: [lease["name"] for lease in bucket.leases() if tag in lease["owner"]
                                and lease["progress"].get("sends_started")])
        survivor = second.start()       # the second worker joins; then the first one dies
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
        second.wait_for(lambda: bucket.keys("done/") == names, timeout=60)
        second.wait_for(lambda: bucket.messages(url) == 0, timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
        code, _, err = stop(survivor) if survivor else (None, "", "")
    assert code == 0, err
    assert bucket.keys("failed/") == [] and bucket.keys("processing/", sidecars=True) == []
    sent = sends_by_marker(sandbox)
    assert set(sent) == set(names)
    twice = {n for n, count in sent.items() if count > 1}
    assert max(sent.values()) <= 2 and len(twice) <= 2        # only the victim's SENDs in flight
    for name in twice:       # the killed worker's SEND may have reached Redox: the sidecar says so
        car = bucket.sidecar(f"done/{name}")
        assert car["possible_duplicate"] is True
        assert [a["result"] for a in car["attempt_history"]][0] == "interrupted"
    assert bucket.messages(dlq) == 0


def test_outside_keys_are_dropped_and_poison_goes_to_the_dead_letter_queue(
        tmp_path, sandbox, moto_server, bucket):
    # notifications for the whole bucket: other/, and our own processing/, done/ and lease writes
    url, dlq = bucket.queue(f"q-{uuid.uuid4().hex[:8]}", dlq_after=2, visibility=1, prefix="")
    sqs = moto_server.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="this is not an S3 notification")
    env = sqs_env(tmp_path, sandbox, moto_server, bucket, url, queue_visibility_seconds=1)
    proc = env.start()
    bucket.put("other/b.json", b"outside")
    bucket.put("incoming/a.json", message("a"))
    env.wait_for(lambda: bucket.keys("done/") == ["a.json"])
    env.wait_for(lambda: bucket.messages(dlq) == 1 and bucket.messages(url) == 0, timeout=30)
    code, _, err = stop(proc)
    assert code == 0, err
    assert bucket.get("other/b.json") == b"outside"
    body = sqs.receive_message(QueueUrl=dlq)["Messages"][0]["Body"]
    assert body == "this is not an S3 notification"
    assert "not an S3 notification" in err
    assert sends_by_marker(sandbox) == Counter({"a": 1})


def test_visibility_is_extended_while_a_slow_object_is_in_flight(tmp_path, sandbox, moto_server, bucket):
    # maxReceiveCount 1: a message that ever became visible again would land in the DLQ
    url, dlq = bucket.queue(f"q-{uuid.uuid4().hex[:8]}", dlq_after=1, visibility=1)
    sandbox.faults(latency_ms=3000)                    # the SEND outlasts the visibility 3 times
    env = sqs_env(tmp_path, sandbox, moto_server, bucket, url, queue_visibility_seconds=1)
    proc = env.start()
    try:
        bucket.put("incoming/slow.json", message("slow"))
        env.wait_for(lambda: bucket.keys("done/") == ["slow.json"])
        env.wait_for(lambda: bucket.messages(url) == 0)
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert bucket.messages(dlq) == 0
    assert sends_by_marker(sandbox) == Counter({"slow": 1})
