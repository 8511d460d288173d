"""Files at the send limit: routed by the size of the body that would be sent, never sent to get a 413.

Redox's limit (``redox.send_limit_bytes``) applies to the SEND body, Meta.Destinations written
in. A file that fits on disk but whose body does not takes the Transferring Files path when it
has a document, and is rejected as ``too_large`` otherwise; a body exactly at the limit is sent.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from hostile import FakeClient, Rig
from pipeline_env import DESTINATION, PipelineEnv

from pipeline.config import Destination
from pipeline.errors import PermanentDelivery
from pipeline.redox.transfer.upload import Transfer

LIMIT = 4096
MEMBER = ',"Destinations":' + json.dumps([DESTINATION], separators=(",", ":"))   # what is added


def sized(size: int, *, destinations: bool, document: bool, marker: str = "m") -> bytes:
    """A compact message of exactly ``size`` bytes."""
    doc: dict = {"Meta": {"DataModel": "Media", "EventType": "New"}, "_test_marker": marker}
    if destinations:
        doc["Meta"]["Destinations"] = [DESTINATION]
    if document:
        doc["Media"] = {"FileType": "PDF", "FileName": "a.pdf",
                        "FileContents": base64.b64encode(os.urandom(size // 2)).decode()}
    doc["Filler"] = ""
    raw = json.dumps(doc, separators=(",", ":")).encode()
    doc["Filler"] = "f" * (size - len(raw))
    raw = json.dumps(doc, separators=(",", ":")).encode()
    assert len(raw) == size
    return raw


class LimitedClient(FakeClient):
    """Answers 413 to a body over LIMIT, as Redox does; uploads return a URI."""

    def __init__(self):
        super().__init__()
        self.refused = 0
        self.uploads = 0

    def send(self, body: bytes, departing=None, destinations=0):
        if departing is not None:
            departing()
        if len(body) > LIMIT:
            self.refused += 1
            raise PermanentDelivery("HTTP 413", status=413, errors=["Payload Too Large"])
        return super().send(body)

    def upload(self, document, filename):
        self.uploads += 1
        return f"https://blob.example/{self.uploads}", 201


def rig(tmp_path, transfer: bool = True) -> Rig:
    r = Rig(tmp_path)
    r.client = r.work.client = LimitedClient()
    r.work.send_limit = LIMIT
    if transfer:
        r.work.transfer = Transfer(r.store, r.journal, r.client,
                                   [Destination(**DESTINATION).model_dump()], LIMIT, 1 << 20)
    return r


CASES = {   # name: (size on disk, names the destinations already, has a document, how it travels)
    "body exactly at the limit": (LIMIT, True, False, "sent"),
    "body one under": (LIMIT - 1, True, False, "sent"),
    "destinations fill it exactly": (LIMIT - len(MEMBER), False, False, "sent"),
    "destinations push it one over": (LIMIT - len(MEMBER) + 1, False, False, "too_large"),
    "destinations push it over, with a document": (LIMIT - len(MEMBER) + 1, False, True, "transferred"),
    "file exactly at the limit": (LIMIT, False, False, "too_large"),
    "file exactly at the limit, with a document": (LIMIT, False, True, "transferred"),
    "file one under the limit": (LIMIT - 1, False, False, "too_large"),
    "file one over": (LIMIT + 1, True, False, "too_large"),
    "file one over, with a document": (LIMIT + 1, True, True, "transferred"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_size_at_the_boundary_travels_the_way_its_body_allows(tmp_path, case):
    size, named, document, how = CASES[case]
    r = rig(tmp_path)
    r.drop("a.json", sized(size, destinations=named, document=document))
    job, step = r.run(r.claim("a.json"))
    while step.kind == "retry":
        job, step = r.run(job)
    assert r.client.refused == 0                          # never sent to be refused
    car = json.loads((tmp_path / step.status / "a.json.redox.json").read_bytes())
    if how == "too_large":
        assert step.status == "failed" and car["reason_kind"] == "too_large" and r.client.bodies == []
        assert "send limit of 4096 bytes" in car["errors"][0]
    else:
        assert step.status == "done" and len(r.client.bodies) == 1
        assert len(r.client.bodies[0]) <= LIMIT
        assert len(car["uploads"]) == (1 if how == "transferred" else 0)
    if case == "body exactly at the limit":
        assert len(r.client.bodies[0]) == LIMIT
    r.close()


def test_without_the_transfer_path_a_body_over_the_limit_is_refused_with_the_reason(tmp_path):
    r = rig(tmp_path, transfer=False)
    r.drop("a.json", sized(LIMIT, destinations=False, document=True))
    job, step = r.run(r.claim("a.json"))
    assert step.kind == "finished" and step.status == "failed" and r.client.bodies == []
    car = json.loads((tmp_path / "failed" / "a.json.redox.json").read_bytes())
    assert car["reason_kind"] == "too_large"
    assert car["errors"] == [f"message is {LIMIT + len(MEMBER)} bytes with Meta.Destinations set, "
                             f"over the send limit of {LIMIT} bytes, and cannot take the "
                             "Transferring Files path"]
    r.close()


def test_ten_mebibytes_against_the_sandbox_which_enforces_the_limit(tmp_path, sandbox):
    """The default limit, 10 MiB, on both sides: Redox's rule is the body's size."""
    limit = 10 * 1024 * 1024
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("file-at-limit.json", sized(limit, destinations=False, document=True, marker="doc"))
    env.drop("file-under-limit.json", sized(limit - 1, destinations=False, document=False, marker="no"))
    env.drop("body-at-limit.json", sized(limit, destinations=True, document=False, marker="exact"))
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr           # one file could not travel at all
    assert env.files("done") == ["body-at-limit.json", "file-at-limit.json"]
    assert env.files("failed") == ["file-under-limit.json"]
    assert env.sidecar("failed", "file-under-limit.json")["reason_kind"] == "too_large"
    assert len(env.sidecar("done", "file-at-limit.json")["uploads"]) == 1
    sends = {s["marker"]: s for s in sandbox.records()["sends"]}
    assert sorted(sends) == ["doc", "exact"] and {s["status"] for s in sends.values()} == {200}
    assert sends["exact"]["size"] == limit
