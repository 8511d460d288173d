"""The Source and FolderView contract, run against every backend: the local folders and a real
S3 endpoint (moto's server on 127.0.0.1). The same scenarios (claim, finish, release, adopt,
view) must hold for both; a backend-specific detail (how a dead owner is detected) is behind
the ``Backend`` adapter, never in the scenario."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fakes import Clock

from pipeline.errors import ClaimLost
from pipeline.sources.base import Source
from pipeline.sources.local.store import LocalStore
from pipeline.sources.local.view import LocalView
from pipeline.sources.s3.api import Bucket
from pipeline.sources.s3.store import S3Store
from pipeline.sources.s3.view import S3View
from pipeline.sources.view import DoneFolder, FolderView


class LocalBackend:
    """Four folders under a temporary root; a dead owner is one whose lock is gone."""

    def __init__(self, root: Path):
        self.root = root
        for sub in ("inbox", "processing", "done", "failed"):
            (root / sub).mkdir()

    def source(self, owner: str) -> Source:
        r = self.root
        return LocalStore(str(r / "inbox"), str(r / "processing"), str(r / "done"), str(r / "failed"),
                          "*.json", owner, recursive=True)

    def view(self) -> FolderView:
        return LocalView({k: str(self.root / k) for k in ("inbox", "processing", "done", "failed")},
                         recursive=True)

    def put(self, name: str, data: bytes) -> None:
        target = self.root / "inbox" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get(self, folder: str, path: str) -> bytes | None:
        target = self.root / folder / path
        return target.read_bytes() if target.exists() else None

    def kill(self, source: LocalStore) -> None:
        os.close(source.claims._lock_fd)       # the kernel drops the lock of a dead process
        source.claims._lock_fd = None

    def outlive(self, source) -> None:
        """Nothing to wait for: a dead owner's lock is gone at once."""


class S3Backend:
    """Prefixes in a moto bucket; a dead owner is one whose lease has expired."""

    LEASE = 60

    def __init__(self, moto_server, bucket):
        self.server, self.bucket = moto_server, bucket
        self.clock = Clock()

    def _bucket(self) -> Bucket:
        return Bucket(self.bucket.name, endpoint_url=self.server.url, region="us-east-1")

    def source(self, owner: str) -> Source:
        return S3Store(self._bucket(), prefix="in/", processing="proc/", done="done/", failed="failed/",
                       pattern="*.json", owner=owner, lease_seconds=self.LEASE, clock=self.clock)

    def view(self) -> FolderView:
        return S3View(self._bucket(), {"inbox": "in", "processing": "proc", "done": "done",
                                       "failed": "failed"})

    def put(self, name: str, data: bytes) -> None:
        self.bucket.put(f"in/{name}", data)

    def get(self, folder: str, path: str) -> bytes | None:
        prefix = {"inbox": "in/", "processing": "proc/", "done": "done/", "failed": "failed/"}[folder]
        key = prefix + path
        return self.bucket.get(key) if self.bucket.exists(key) else None

    def kill(self, source: S3Store) -> None:
        source.leases.held.clear()              # it stops renewing: nothing more from it

    def outlive(self, source) -> None:
        self.clock.now += self.LEASE + 1


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return LocalBackend(tmp_path)
    return S3Backend(request.getfixturevalue("moto_server"), request.getfixturevalue("bucket"))


def sidecar(claim_id: str, data: bytes) -> bytes:
    return json.dumps({"claim_id": claim_id, "sha256": hashlib.sha256(data).hexdigest(),
                       "status": "done"}).encode()


def claim(source: Source, name: str):
    drop = source.stat(name)
    assert drop is not None, name
    return source.claim(drop)


def test_scan_sees_what_counts_and_a_claim_takes_it_out_of_the_inbox(backend):
    backend.put("a.json", b'{"a": 1}')
    backend.put("notes.txt", b"x")
    backend.put(".hidden.json", b"{}")
    source = backend.source("one")
    source.prepare()
    assert [d.name for d in source.scan()] == ["a.json"]
    taken = claim(source, "a.json")
    assert taken.name == "a.json" and taken.size == len(b'{"a": 1}')
    assert source.stat("a.json") is None and list(source.scan()) == []
    with source.open(taken) as handle:
        assert handle.read() == b'{"a": 1}'
    assert source.has_claims()
    source.close()


def test_two_owners_claiming_one_file_have_exactly_one_winner(backend):
    backend.put("a.json", b"{}")
    first, second = backend.source("one"), backend.source("two")
    first.prepare()
    second.prepare()
    drop = second.stat("a.json")
    claim(first, "a.json")
    with pytest.raises(ClaimLost):
        second.claim(drop)
    first.close()
    second.close()


def test_finish_writes_the_sidecar_beside_the_file_and_never_overwrites(backend):
    source = backend.source("one")
    source.prepare()
    for n, data in enumerate((b'{"n": 1}', b'{"n": 2}')):
        backend.put("a.json", data)
        taken = claim(source, "a.json")
        where = source.finish(taken, "done", sidecar(f"c{n}", data), f"c{n}")
        assert where.endswith("a.json" if n == 0 else "a-1.json")
    assert backend.get("done", "a.json") == b'{"n": 1}' and backend.get("done", "a-1.json") == b'{"n": 2}'
    assert json.loads(backend.get("done", "a-1.json.redox.json"))["claim_id"] == "c1"
    assert not source.has_claims()
    source.close()


def test_release_puts_the_file_back_where_the_next_claim_finds_it(backend):
    backend.put("a.json", b"{}")
    source = backend.source("one")
    source.prepare()
    taken = claim(source, "a.json")
    source.release(taken)
    assert backend.get("inbox", "a.json") == b"{}"
    assert claim(source, "a.json").name == "a.json"
    source.close()


def test_the_claims_of_a_dead_owner_are_adopted_once_and_can_be_finished(backend):
    backend.put("a.json", b'{"x": 1}')
    dead, heir = backend.source("dead"), backend.source("heir")
    dead.prepare()
    claim(dead, "a.json")
    backend.kill(dead)
    heir.prepare()
    backend.outlive(dead)
    adopted = heir.adopt_orphans()
    assert [c.name for c in adopted] == ["a.json"]
    assert heir.adopt_orphans() == []                     # ours now: not adopted twice
    with heir.open(adopted[0]) as handle:
        assert handle.read() == b'{"x": 1}'
    heir.finish(adopted[0], "failed", sidecar("c9", b'{"x": 1}'), "c9")
    assert backend.get("failed", "a.json") == b'{"x": 1}'
    heir.close()


def test_a_live_owner_keeps_its_claims(backend):
    backend.put("a.json", b"{}")
    owner, other = backend.source("owner"), backend.source("other")
    owner.prepare()
    other.prepare()
    claim(owner, "a.json")
    assert other.adopt_orphans() == []
    owner.close()
    other.close()


def test_the_view_lists_reads_and_moves_what_the_operator_commands_need(backend):
    source = backend.source("one")
    source.prepare()
    for name, status in (("good.json", "done"), ("bad.json", "failed")):
        backend.put(name, name.encode())
        source.finish(claim(source, name), status, sidecar(name, name.encode()), name)
    backend.put("waiting.json", b"{}")
    source.close()
    view = backend.view()
    assert [e.path for e in view.entries("inbox")] == ["waiting.json"]
    assert [e.path for e in view.entries("done")] == ["good.json"]
    assert [e.path for e in view.sidecars("failed")] == ["bad.json.redox.json"]
    assert view.read_sidecar("done", "good.json")["claim_id"] == "good.json"
    assert view.finished("done") == ["good.json"]
    [bad] = view.entries("failed")
    assert view.sha256(bad) == hashlib.sha256(b"bad.json").hexdigest()
    assert not view.inbox_has("bad.json")
    view.move_to_inbox(bad, view.inbox_name(bad))
    view.remove_sidecar(bad)
    assert backend.get("inbox", "bad.json") == b"bad.json" and list(view.entries("failed")) == []
    assert list(view.sidecars("failed")) == []
    done = DoneFolder(view)
    assert list(done.refs()) == ["good.json"]
    assert done.write_sidecar("good.json", b'{"delivery": {}}\n')
    assert done.read_sidecar("good.json") == {"delivery": {}}
    assert done.write_sidecar("gone.json", b"{}") is False      # no file: nothing written
    view.remove("done", "good.json")
    assert view.finished("done") == []


def test_names_with_folders_keep_their_path_through_claim_adoption_release_and_finish(backend):
    """A file's name is its path below the inbox: two files named a.json in different folders
    are different files, and each keeps its path in processing, done and failed."""
    for name in ("lab/x/a.json", "billing/a.json", "a.json"):
        backend.put(name, name.encode())
    backend.put(".hidden/h.json", b"{}")
    dead, heir = backend.source("dead"), backend.source("heir")
    dead.prepare()
    assert sorted(d.name for d in dead.scan()) == ["a.json", "billing/a.json", "lab/x/a.json"]
    taken = [claim(dead, n) for n in ("lab/x/a.json", "billing/a.json")]
    assert {c.name for c in taken} == {"lab/x/a.json", "billing/a.json"}
    assert sorted(backend.view().claimed_name(e) for e in backend.view().entries("processing")) == \
        ["billing/a.json", "lab/x/a.json"]
    backend.kill(dead)
    heir.prepare()
    backend.outlive(dead)
    adopted = {c.name: c for c in heir.adopt_orphans()}
    assert sorted(adopted) == ["billing/a.json", "lab/x/a.json"]
    heir.release(adopted["billing/a.json"])
    assert backend.get("inbox", "billing/a.json") == b"billing/a.json"
    where = heir.finish(adopted["lab/x/a.json"], "failed", sidecar("c1", b"lab/x/a.json"), "c1")
    assert where.endswith("lab/x/a.json")
    assert backend.get("failed", "lab/x/a.json") == b"lab/x/a.json"
    again = claim(heir, "billing/a.json")
    heir.finish(again, "done", sidecar("c2", b"billing/a.json"), "c2")
    assert backend.get("done", "billing/a.json") == b"billing/a.json"
    assert not heir.has_claims()
    heir.close()
    view = backend.view()
    assert [e.path for e in view.entries("failed")] == ["lab/x/a.json"]
    [failed] = view.entries("failed")
    assert view.inbox_name(failed) == "lab/x/a.json"
    view.move_to_inbox(failed, view.inbox_name(failed))
    assert backend.get("inbox", "lab/x/a.json") == b"lab/x/a.json"
    assert sorted(e.path for e in view.entries("inbox")) == ["a.json", "lab/x/a.json"]
