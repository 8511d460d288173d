"""Never an attempt left open: an exception that is not an answer from Redox (a ValueError from
an HTTP library on a token with CR/LF, an OverflowError from a sleep, a bug) closes its attempt
honestly - Redox may have seen it unless the exception says otherwise - is retried, counts
toward max_attempts (a bug ends in gave_up, not in endless retries), and its text goes nowhere.
The same for uploads on the Transferring Files path.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from hostile import FakeClient, Rig
from journal_faults import SECRET, ScriptedClient, open_attempts, rig_with, sidecar
from pipeline_env import DESTINATION, message

from pipeline.config import Destination
from pipeline.errors import DeliveryError
from pipeline.flow.runner import Runner
from pipeline.redox.transfer import documents
from pipeline.redox.transfer.upload import Transfer


@pytest.mark.parametrize("exc", [ValueError(f"Invalid header value b'Bearer {SECRET}'"),
                                 OverflowError("timestamp too large to convert to C _PyTime_t")])
def test_an_unexpected_exception_in_the_send_closes_its_attempt_and_is_retried(tmp_path, exc):
    rig = rig_with(tmp_path, ScriptedClient(exc))
    rig.drop("a.json", message("a"))
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "retry" and f"unexpected {type(exc).__name__}" in step.error
    assert open_attempts(rig) == []
    [attempt] = rig.journal.attempts_of(job.record.claim_id)
    assert attempt["result"] == "transient" and attempt["maybe_seen"] == 1
    job, step = rig.run(job)
    assert step.kind == "finished" and step.status == "done"
    text = (tmp_path / "done" / "a.json.redox.json").read_text()
    car = json.loads(text)
    assert car["possible_duplicate"] is True and car["attempts"] == 2    # it may have left
    assert "Injected" not in text and "Jane" not in text                # its text is never kept
    rig.close()


class NotSent(Exception):
    maybe_seen = False             # what a client may say of an error of its own


@pytest.mark.parametrize("exc", [NotSent("refused before connecting"),
                                 DeliveryError("never left", maybe_seen=False)])
def test_an_exception_that_says_nothing_left_is_no_possible_duplicate(tmp_path, exc):
    rig = rig_with(tmp_path, ScriptedClient(exc))
    rig.drop("a.json", message("a"))
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "retry" and open_attempts(rig) == []
    job, step = rig.run(job)
    car = sidecar(tmp_path, "done")
    assert car["possible_duplicate"] is False and car["attempts"] == 2
    rig.close()


def test_a_bug_in_every_send_ends_in_gave_up_not_in_endless_retries(tmp_path):
    rig = rig_with(tmp_path, ScriptedClient(*[ValueError(SECRET) for _ in range(10)]))
    rig.drop("a.json", message("a"))
    runner = Runner(rig.store, rig.journal, rig.work, workers=1, settle_seconds=0,
                    rescan_seconds=60, once=True, once_wait=30, grace=5)
    assert runner.run() == 1
    car = sidecar(tmp_path, "failed")
    assert car["reason_kind"] == "gave_up" and car["attempts"] == 3      # max_attempts
    assert any("unexpected ValueError during the SEND" in e for e in car["errors"])
    assert open_attempts(rig) == [] and len(rig.client.bodies) == 3
    assert "Injected" not in json.dumps(car)
    rig.close()


class UploadClient(FakeClient):
    """Uploads raise ``exc`` (every time); SENDs are accepted."""

    def __init__(self, exc: BaseException):
        super().__init__()
        self.exc, self.uploads = exc, 0

    def upload(self, document, filename):
        self.uploads += 1
        raise self.exc


def transfer_rig(tmp_path, client) -> Rig:
    rig = rig_with(tmp_path, client)
    dest = [Destination(**DESTINATION).model_dump()]
    rig.work.transfer = Transfer(rig.store, rig.journal, client, dest, 4096, 1 << 20)
    rig.work.send_limit = 4096
    return rig


def media_message() -> bytes:
    return message("big", data_model="Media", Media={
        "FileType": "PDF", "FileName": "scan.pdf",
        "FileContents": base64.b64encode(os.urandom(6000)).decode()})


def test_an_unexpected_exception_in_an_upload_closes_its_attempt_and_counts(tmp_path):
    rig = transfer_rig(tmp_path, UploadClient(ValueError(SECRET)))
    rig.drop("a.json", media_message())
    job, step = rig.run(rig.claim("a.json"))
    assert step.kind == "retry" and "unexpected ValueError during the upload" in step.error
    assert open_attempts(rig) == []
    while step.kind == "retry":
        job, step = rig.run(job)
    assert step.kind == "finished" and step.status == "failed"
    car = sidecar(tmp_path, "failed")
    assert car["reason_kind"] == "gave_up" and "gave up after 3 upload attempts" in car["errors"][0]
    assert rig.client.uploads == 3 and rig.client.bodies == [] and open_attempts(rig) == []
    assert "Injected" not in json.dumps(car)
    rig.close()


def test_an_unexpected_exception_before_any_upload_counts_too(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError(SECRET)
    monkeypatch.setattr(documents, "plan", broken)
    rig = transfer_rig(tmp_path, UploadClient(AssertionError("no upload expected")))
    rig.drop("a.json", media_message())
    job, step = rig.run(rig.claim("a.json"))
    steps = 1
    while step.kind == "retry":
        job, step = rig.run(job)
        steps += 1
    assert step.kind == "finished" and steps == 3          # three counted attempts, then gave up
    assert sidecar(tmp_path, "failed")["reason_kind"] == "gave_up" and rig.client.uploads == 0
    rig.close()
