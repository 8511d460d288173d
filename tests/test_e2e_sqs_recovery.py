"""SQS mode: a worker killed with -9 while it holds received messages costs about a minute.

The killed worker had received every notification (hidden from the others) but claimed only
one object. Its unclaimed messages come back when their receive-time visibility runs out
(``source.queue_visibility_seconds``, left at its default here), and the claimed object when its
lease expires (``lease_seconds``, the unchanged lease recovery). The real command runs in
subprocesses against moto's S3 and SQS, the sandbox as Redox.
"""

from __future__ import annotations

import signal
import sys
import time
import uuid

from pipeline_env import message, stop
from test_e2e_s3 import sends_by_marker
from test_e2e_sqs import sqs_env

from pipeline.config.models import SourceSettings

# a hang guard, not a target: three times the minute the default visibility is chosen for
# (with the former 300 s default the survivor would still be waiting when it fires)
RECOVERY_GUARD_SECONDS = 180


def _queue_counts(bucket, url) -> tuple[int, int]:
    attrs = bucket.server.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_a_killed_workers_unclaimed_messages_reach_a_survivor_within_about_a_minute(
        tmp_path, sandbox, moto_server, bucket):
    assert SourceSettings().queue_visibility_seconds <= 60
    # the queue's own VisibilityTimeout is far longer: only what the pipeline asks for counts
    url, dlq = bucket.queue(f"q-{uuid.uuid4().hex[:8]}", dlq_after=10, visibility=600)
    names = [f"r/{i}.json" for i in range(6)]
    for name in names:
        bucket.put(f"incoming/{name}", message(name))
    sandbox.faults(latency_ms=300_000)               # the victim's one SEND never comes back
    victim_env = sqs_env(tmp_path, sandbox, moto_server, bucket, url, name="victim",
                         lease_seconds=20)
    victim_env.config_data["workers"] = 1            # claims one object, holds the other messages
    victim_env.config_data["redox"]["timeout_seconds"] = 600
    victim_env.write_config()
    victim = victim_env.start()
    survivor = None
    try:
        tag = f"-{victim.pid}-"
        victim_env.wait_for(lambda: [lease for lease in bucket.leases() if tag in lease["owner"]
                                     and lease["progress"].get("sends_started")], timeout=60)
        victim_env.wait_for(lambda: _queue_counts(bucket, url) == (0, len(names)), timeout=60)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
        killed_at = time.monotonic()
        claimed = {lease["name"] for lease in bucket.leases() if tag in lease["owner"]}
        assert len(claimed) == 1 and set(bucket.keys("incoming/")) == set(names) - claimed
        sandbox.faults(latency_ms=0)

        survivor_env = sqs_env(tmp_path, sandbox, moto_server, bucket, url, name="survivor",
                               lease_seconds=20)
        survivor = survivor_env.start()
        seen: dict[str, float] = {}

        def all_done() -> bool:
            for name in bucket.keys("done/"):
                seen.setdefault(name, time.monotonic() - killed_at)
            return sorted(seen) == sorted(names)

        survivor_env.wait_for(all_done, timeout=RECOVERY_GUARD_SECONDS, interval=0.5)
        survivor_env.wait_for(lambda: bucket.messages(url) == 0, timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.communicate()
        code, _, err = stop(survivor) if survivor else (None, "", "")
    assert code == 0, err
    unclaimed = sorted(set(names) - claimed)
    print(f"\nrecovery after kill -9: unclaimed objects done within "
          f"{max(seen[n] for n in unclaimed):.1f} s (first {min(seen[n] for n in unclaimed):.1f} s), "
          f"the claimed one within {seen[next(iter(claimed))]:.1f} s", file=sys.stderr)
    assert bucket.keys("failed/") == [] and bucket.keys("processing/", sidecars=True) == []
    sent = sends_by_marker(sandbox)
    assert {n: sent[n] for n in unclaimed} == {n: 1 for n in unclaimed}   # never sent twice
    (held,) = claimed
    assert 1 <= sent[held] <= 2
    if sent[held] == 2:   # the victim's SEND reached the sandbox: the sidecar says so
        assert bucket.sidecar(f"done/{held}")["possible_duplicate"] is True
    assert bucket.messages(dlq) == 0
