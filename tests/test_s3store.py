"""The S3 store against a real S3 endpoint (moto server on 127.0.0.1): claims, leases,
recovery, finishing, streaming. Clocks are injected where a lease's age matters."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from fakes import Clock
from moto_server import MotoServer

from pipeline.errors import ClaimLost, ConfigError
from pipeline.journal import Journal
from pipeline.sources.s3.api import Bucket
from pipeline.sources.s3.keys import is_ours
from pipeline.sources.s3.setup import probe_conditional_writes
from pipeline.sources.s3.store import S3Store


def store(moto_server, bucket, owner="me", clock=None, lease_seconds=60, page_size=1000):
    client = Bucket(bucket.name, endpoint_url=moto_server.url, region="us-east-1")
    return S3Store(client, prefix="in/", processing="proc/", done="done/", failed="failed/",
                   pattern="*.json", owner=owner, lease_seconds=lease_seconds,
                   page_size=page_size, clock=clock or Clock())


def claim_of(s, name):
    return s.claim(s.stat(name))


def sidecar(claim_id: str, sha: str = "s") -> bytes:
    return json.dumps({"claim_id": claim_id, "sha256": sha}).encode()


def test_names_that_count():
    assert is_ours("a.json", "*.json") and is_ours("a/b/c.json", "*.json")
    for name in ("", ".a.json", "a/.b/c.json", "a.json.part", "a.json.tmp", "a.json.redox.json",
                 "a.txt", "a//b.json", "dir/"):
        assert not is_ours(name, "*.json"), name


def test_scan_pages_through_the_prefix_and_skips_what_is_not_ours(moto_server, bucket):
    for i in range(7):
        bucket.put(f"in/d{i % 2}/{i}.json", b"{}")
    bucket.put("in/.x.json", b"{}")
    bucket.put("in/notes.txt", b"")
    bucket.put("out/a.json", b"{}")
    drops = list(store(moto_server, bucket, page_size=2).scan())
    assert sorted(d.name for d in drops) == sorted(f"d{i % 2}/{i}.json" for i in range(7))
    head = bucket.s3.head_object(Bucket=bucket.name, Key="in/d0/0.json")
    first = next(d for d in drops if d.name == "d0/0.json")
    assert first.mtime == head["LastModified"].timestamp() and first.size == 2   # Settler's age


def test_folders_inside_the_prefix_are_not_listed(moto_server, bucket):
    client = Bucket(bucket.name, endpoint_url=moto_server.url, region="us-east-1")
    s = S3Store(client, prefix="", processing="proc/", done="done/", failed="failed/",
                pattern="*.json", owner="me", lease_seconds=60)
    for key in ("a.json", "proc/b.json", "proc/.leases/c.json", "done/d.json", "failed/e.json"):
        bucket.put(key, b"{}")
    assert [d.name for d in s.scan()] == ["a.json"]


def test_concurrent_claims_of_the_same_objects_have_exactly_one_winner_each(moto_server, bucket):
    names = [f"n{i}.json" for i in range(16)]
    for name in names:
        bucket.put(f"in/{name}", b"{}")
    stores = [store(moto_server, bucket, owner=f"w{i}") for i in range(3)]
    drops = {(i, n): s.stat(n) for i, s in enumerate(stores) for n in names}
    won: list[tuple[int, str]] = []
    barrier = threading.Barrier(len(stores))

    def worker(i, s):
        barrier.wait()
        for name in names:
            try:
                s.claim(drops[(i, name)])
                won.append((i, name))
            except ClaimLost:
                pass
    threads = [threading.Thread(target=worker, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(n for _, n in won) == sorted(names)       # each once: no name twice
    assert bucket.keys("in/") == [] and bucket.keys("proc/") == sorted(names)


def test_finish_writes_the_sidecar_beside_and_keeps_the_path(moto_server, bucket):
    bucket.put("in/a/b.json", b'{"x": 1}')
    s = store(moto_server, bucket)
    claim = claim_of(s, "a/b.json")
    assert claim.location == "proc/a/b.json" and claim.source == f"s3://{bucket.name}/in/a/b.json"
    with s.open(claim) as handle:
        assert handle.read() == b'{"x": 1}'
    where = s.finish(claim, "failed", sidecar("c1"), "c1")
    assert where == f"s3://{bucket.name}/failed/a/b.json"
    assert bucket.get("failed/a/b.json") == b'{"x": 1}' and bucket.sidecar("failed/a/b.json")["claim_id"] == "c1"
    assert bucket.keys("proc/", sidecars=True) == [] and bucket.leases("proc/") == []


def test_an_interrupted_finish_is_completed_without_a_second_copy(moto_server, bucket):
    bucket.put("in/a.json", b"{}")
    s = store(moto_server, bucket)
    claim = claim_of(s, "a.json")
    bucket.put("done/a.json.redox.json", sidecar("c1"))     # our sidecar and copy made it...
    bucket.s3.copy_object(Bucket=bucket.name, Key="done/a.json",
                          CopySource={"Bucket": bucket.name, "Key": "proc/a.json"})
    assert s.finish(claim, "done", sidecar("c1"), "c1").endswith("/done/a.json")   # ...then a crash
    assert bucket.keys("done/") == ["a.json"] and bucket.keys("proc/") == []


def test_a_foreign_sidecar_or_file_in_done_is_never_overwritten(moto_server, bucket):
    bucket.put("done/a.json.redox.json", sidecar("someone-else"))
    bucket.put("done/a-1.json", b"theirs")
    bucket.put("in/a.json", b"{}")
    s = store(moto_server, bucket)
    where = s.finish(claim_of(s, "a.json"), "done", sidecar("c1"), "c1")
    assert where.endswith("/done/a-2.json")
    assert bucket.get("done/a-1.json") == b"theirs"
    assert bucket.sidecar("done/a.json")["claim_id"] == "someone-else"


def test_release_puts_the_object_back_under_a_free_name(moto_server, bucket):
    bucket.put("in/a.json", b"first")
    s = store(moto_server, bucket)
    claim = claim_of(s, "a.json")
    bucket.put("in/a.json", b"second")                     # a new drop under the same name
    assert s.release(claim).endswith("/in/a-1.json")
    assert bucket.get("in/a.json") == b"second" and bucket.get("in/a-1.json") == b"first"
    assert bucket.keys("proc/", sidecars=True) == []


def test_an_expired_lease_is_taken_over_and_the_old_owner_can_no_longer_finish(moto_server, bucket):
    bucket.put("in/a.json", b"{}")
    clock = Clock()
    dead = store(moto_server, bucket, owner="dead", clock=clock, lease_seconds=10)
    claim = claim_of(dead, "a.json")
    live = store(moto_server, bucket, owner="live", clock=clock, lease_seconds=10)
    assert live.adopt_orphans() == []                      # not expired yet: its owner may be alive
    clock.now += 11
    adopted = live.adopt_orphans()
    assert [c.name for c in adopted] == ["a.json"] and adopted[0].location == "proc/a.json"
    assert bucket.leases("proc/")[0]["owner"] == "live"
    with pytest.raises(ClaimLost):
        dead.finish(claim, "done", sidecar("old"), "old")
    assert bucket.keys("done/", sidecars=True) == []
    live.finish(adopted[0], "done", sidecar("new"), "new")
    assert bucket.keys("done/") == ["a.json"]


def test_recovery_completes_a_move_interrupted_between_copy_and_delete(moto_server, bucket):
    bucket.put("in/a.json", b"{}")
    clock = Clock()
    dead = store(moto_server, bucket, owner="dead", clock=clock, lease_seconds=10)
    etag = bucket.s3.head_object(Bucket=bucket.name, Key="in/a.json")["ETag"]
    dead.leases.acquire("a.json", source_etag=etag, size=2, source_mtime=1.0)
    bucket.s3.copy_object(Bucket=bucket.name, Key="proc/a.json",
                          CopySource={"Bucket": bucket.name, "Key": "in/a.json"})
    clock.now += 11
    adopted = store(moto_server, bucket, owner="live", clock=clock).adopt_orphans()
    assert [c.name for c in adopted] == ["a.json"]
    assert bucket.keys("in/") == [] and bucket.keys("proc/") == ["a.json"]


def test_recovery_drops_a_lease_whose_object_already_finished(moto_server, bucket):
    clock = Clock()
    store(moto_server, bucket, owner="dead", clock=clock).leases.acquire("gone.json", size=2)
    clock.now += 61
    assert store(moto_server, bucket, owner="live", clock=clock).adopt_orphans() == []
    assert bucket.leases("proc/") == []


def test_an_object_left_in_processing_without_a_lease_is_adopted(moto_server, bucket):
    bucket.put("proc/x/left.json", b"{}")
    s = store(moto_server, bucket)
    assert s.has_claims()
    assert [c.name for c in s.adopt_orphans()] == ["x/left.json"]
    assert store(moto_server, bucket, owner="other").adopt_orphans() == []    # it is leased now


def test_send_progress_travels_with_the_lease_to_the_next_owner(moto_server, bucket, tmp_path):
    for name in ("accepted.json", "midsend.json"):
        bucket.put(f"in/{name}", name.encode())
    clock = Clock()
    dead = store(moto_server, bucket, owner="dead", clock=clock, lease_seconds=10)
    dead_journal = dead.wrap_journal(Journal(str(tmp_path / "dead.db")))
    for name in ("accepted.json", "midsend.json"):
        claim = claim_of(dead, name)
        record = dead_journal.begin(name, hashlib.sha256(name.encode()).hexdigest(), claim.size,
                                    claim.source, claim.location, "dead", claim.mtime)
        dead_journal.attempt_started(record.claim_id, "send", 1)
        if name == "accepted.json":
            dead_journal.attempt_ended(record.claim_id, "send", 1, result="accepted", status=200,
                                       maybe_seen=False, logs=[{"ID": "log-1", "AttemptID": "a-1"}])
    clock.now += 11                                        # the dead worker's machine is gone
    live = store(moto_server, bucket, owner="live", clock=clock)
    journal = live.wrap_journal(Journal(str(tmp_path / "live.db")))
    records = {}
    for claim in live.adopt_orphans():
        sha = hashlib.sha256(claim.name.encode()).hexdigest()
        records[claim.name] = journal.begin(claim.name, sha, claim.size, claim.source,
                                            claim.location, "live", claim.mtime)
    assert records["accepted.json"].state == "accepted"                    # finished, not re-sent
    assert records["accepted.json"].logs == [{"ID": "log-1", "AttemptID": "a-1"}]
    assert records["midsend.json"].state == "claimed" and records["midsend.json"].attempts == 1
    assert records["midsend.json"].possible_duplicate is True


def test_a_worker_that_lost_its_lease_does_not_send(moto_server, bucket, tmp_path):
    bucket.put("in/a.json", b"{}")
    clock = Clock()
    slow = store(moto_server, bucket, owner="slow", clock=clock, lease_seconds=10)
    journal = slow.wrap_journal(Journal(str(tmp_path / "j.db")))
    claim = claim_of(slow, "a.json")
    record = journal.begin("a.json", "s", claim.size, claim.source, claim.location, "slow", 0)
    clock.now += 11
    assert store(moto_server, bucket, owner="fast", clock=clock).adopt_orphans()
    with pytest.raises(ClaimLost):
        journal.attempt_started(record.claim_id, "send", 1)  # the fence before a SEND
    assert journal.get(record.claim_id).attempts == 0


def test_open_streams_a_large_object_in_pieces(moto_server, bucket):
    data = bytes(range(256)) * (3 * 4096 + 7)               # ~3 MB
    bucket.put("in/big.json", data)
    s = store(moto_server, bucket)
    claim = claim_of(s, "big.json")
    digest, pieces = hashlib.sha256(), 0
    with s.open(claim) as handle:
        for chunk in iter(lambda: handle.read(1 << 18), b""):
            digest.update(chunk)
            pieces += 1
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest() and pieces > 10


def test_an_endpoint_that_ignores_conditional_writes_is_refused(aws_env, bucket):
    lax = MotoServer(ignore_conditions=True).start()
    try:
        client = Bucket(bucket.name, endpoint_url=lax.url, region="us-east-1")
        with pytest.raises(ConfigError, match="ignores conditional writes"):
            probe_conditional_writes(client, "proc/.leases/", "me")
    finally:
        lax.stop()


def release_after_one_failed_send(moto_server, bucket, tmp_path, status: int, seen: bool) -> None:
    """``in/a.json`` claimed by a worker "first" whose one SEND failed with ``status``, then
    released (a shutdown while its retry was pending)."""
    bucket.put("in/a.json", b"{}")
    first = store(moto_server, bucket, owner="first")
    journal = first.wrap_journal(Journal(str(tmp_path / "first.db")))
    claim = claim_of(first, "a.json")
    record = journal.begin("a.json", "sha", claim.size, claim.source, claim.location, "first", 0)
    journal.attempt_started(record.claim_id, "send", 1)
    journal.attempt_ended(record.claim_id, "send", 1, result="transient", status=status,
                          maybe_seen=seen, error=str(status))
    first.release(claim)


@pytest.mark.parametrize("status, seen", [(504, True), (500, False)])
def test_a_released_object_carries_its_send_progress_to_the_next_machine(
        moto_server, bucket, tmp_path, status, seen):
    release_after_one_failed_send(moto_server, bucket, tmp_path, status, seen)
    assert bucket.keys("in/") == ["a.json"]
    second = store(moto_server, bucket, owner="second")
    other = second.wrap_journal(Journal(str(tmp_path / "second.db")))
    again = claim_of(second, "a.json")
    carried = other.begin("a.json", "sha", again.size, again.source, again.location, "second", 0)
    assert carried.attempts == 1 and carried.possible_duplicate is seen
    assert carried.http_status == status


def test_a_claim_from_the_listing_asks_no_head_and_still_carries_a_released_objects_progress(
        moto_server, bucket, tmp_path):
    release_after_one_failed_send(moto_server, bucket, tmp_path, 504, True)
    second = store(moto_server, bucket, owner="second")
    [listed] = list(second.scan())
    heads = []
    second.stat = lambda name: heads.append(name)          # type: ignore[method-assign]
    assert second.stat_to_claim(listed) == listed and heads == []
    again = second.claim(listed)
    with second.open(again) as handle:                     # the GET brings the metadata
        assert handle.read() == b"{}"
    other = second.wrap_journal(Journal(str(tmp_path / "second.db")))
    carried = other.begin("a.json", "sha", again.size, again.source, again.location, "second", 0)
    assert carried.attempts == 1 and carried.possible_duplicate is True
    assert second.leases.get("a.json").body["progress"]["sends_started"] == 1


def test_a_claim_from_a_listing_of_an_object_replaced_since_takes_nothing(moto_server, bucket):
    bucket.put("in/a.json", b"{}")
    s = store(moto_server, bucket)
    [listed] = list(s.scan())
    bucket.put("in/a.json", b'{"new": 1}')                 # rewritten after it was listed
    assert s.stat_to_claim(listed) == listed
    with pytest.raises(ClaimLost):
        s.claim(listed)
    assert bucket.keys("in/") == ["a.json"] and s.leases.get("a.json") is None


def test_a_start_up_checks_page_is_the_first_listings_first_page(moto_server, bucket):
    bucket.put("in/a.json", b"{}")
    s = store(moto_server, bucket)
    s.bucket.check("in/", keep=1000)               # what open_source does for source.prefix
    bucket.put("in/b.json", b"{}")                 # after the check: not on its page
    assert [d.name for d in s.scan()] == ["a.json"]                      # no listing of its own
    assert sorted(d.name for d in s.scan()) == ["a.json", "b.json"]      # kept for one pass only


def test_a_kept_page_is_not_used_once_it_is_old(moto_server, bucket, monkeypatch):
    from pipeline.sources.s3 import api
    monkeypatch.setattr(api, "KEPT_SECONDS", 0.0)
    bucket.put("in/a.json", b"{}")
    s = store(moto_server, bucket)
    s.bucket.check("in/", keep=1000)
    bucket.put("in/b.json", b"{}")
    assert sorted(d.name for d in s.scan()) == ["a.json", "b.json"]
