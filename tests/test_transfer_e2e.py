"""End to end: files over the send limit take the Transferring Files path against the sandbox.

Limits are made small (config and sandbox alike) so the files stay a few KB and the tests fast;
the code path is the one a 28 MB file takes (the memory part of scripts/bench/ measures that one).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import uuid

import pytest
from pipeline_env import DESTINATION, PipelineEnv

SEND_LIMIT, UPLOAD_LIMIT = 4096, 64 * 1024


@pytest.fixture
def env(tmp_path, sandbox):
    # The sandbox enforces the same SEND limit, as Redox does: on the body, destinations included.
    sandbox.faults(send_limit_bytes=SEND_LIMIT, upload_limit_bytes=UPLOAD_LIMIT)
    return PipelineEnv(tmp_path, sandbox.url, redox={"send_limit_bytes": SEND_LIMIT,
                                                     "upload_limit_bytes": UPLOAD_LIMIT})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def media(doc: bytes, marker="media", **extra) -> dict:
    return {"Meta": {"DataModel": "Media", "EventType": "New", "Test": True}, "_test_marker": marker,
            "Media": {"FileType": "PDF", "FileName": "scan.pdf", "DocumentType": "Lab",
                      "FileContents": b64(doc)}, **extra}


def note(doc: bytes, marker="note") -> dict:
    return {"Meta": {"DataModel": "Notes", "EventType": "New", "Test": True}, "_test_marker": marker,
            "Note": {"ContentType": "Base64 Encoded", "FileType": "PDF", "FileName": "note.pdf",
                     "FileContents": b64(doc)}}


def results(*docs: bytes, marker="results") -> dict:
    values = [{"Code": "1", "Value": "5.4", "ValueType": "Numeric"}]
    values += [{"Code": str(i + 2), "Value": b64(d), "ValueType": "Encapsulated Data", "FileType": "PDF"}
               for i, d in enumerate(docs)]
    return {"Meta": {"DataModel": "Results", "EventType": "New", "Test": True}, "_test_marker": marker,
            "Orders": [{"ID": "o1", "Results": values}]}


def encode(message: dict) -> bytes:
    return json.dumps(message, indent=2).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uploads(sandbox) -> list[dict]:
    return sandbox.records()["uploads"]


KINDS = {
    "media": (media, "Media.FileContents", lambda b: b["Media"]),
    "note": (note, "Note.FileContents", lambda b: b["Note"]),
    "results": (results, "Orders[0].Results[1].Value", lambda b: b["Orders"][0]["Results"][1]),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_field_is_uploaded_decoded_and_replaced_by_its_uri(env, sandbox, kind):
    build, field, where = KINDS[kind]
    document = os.urandom(6000)
    raw = encode(build(document))
    env.drop("big.json", raw)
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert env.files("done") == ["big.json"]
    assert (env.folder("done") / "big.json").read_bytes() == raw          # as dropped
    car = env.sidecar("done", "big.json")
    [up] = uploads(sandbox)
    assert up["status"] == 201 and up["sha256"] == sha(document) and up["size"] == len(document)
    assert car["uploads"] == [{"URI": up["uri"], "field": field, "size": len(document),
                               "sha256": sha(document)}]
    assert car["attempts"] == 1 and car["http_status"] == 200 and car["sha256"] == sha(raw)
    [send] = sandbox.records(bodies=True)["sends"]
    assert send["status"] == 200 and send["destinations"] == ["af394f14-b34a-464f-8d24-895f370af4c9"]
    container = where(send["body"])
    value = container["FileContents" if kind != "results" else "Value"]
    assert value == up["uri"]
    assert container["FileType"] == "PDF"
    if kind == "note":
        assert container["ContentType"] == "Plain Text" and container["FileName"] == "note.pdf"
    if kind == "media":
        assert container["FileName"] == "scan.pdf"
    assert [a["kind"] for a in car["attempt_history"]] == ["upload", "send"]


def test_a_body_at_the_limit_is_sent_as_it_is_and_a_file_at_the_limit_is_transferred(env, sandbox):
    """Redox's limit is on the body, Meta.Destinations written in: a file that already names
    the destinations is its own body; one that does not grows by them."""
    def sized(marker: str, size: int, destinations: bool) -> bytes:
        base = media(os.urandom(1500), marker=marker, Filler="")
        if destinations:
            base["Meta"]["Destinations"] = [DESTINATION]
        raw = json.dumps(base, separators=(",", ":")).encode()
        base["Filler"] = "f" * (size - len(raw))
        raw = json.dumps(base, separators=(",", ":")).encode()
        assert len(raw) == size
        return raw
    env.drop("at.json", sized("at", SEND_LIMIT, destinations=True))       # body == limit
    env.drop("file-at.json", sized("file-at", SEND_LIMIT, destinations=False))
    env.drop("over.json", sized("over", SEND_LIMIT + 1, destinations=True))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert env.files("done") == ["at.json", "file-at.json", "over.json"]
    assert env.sidecar("done", "at.json")["uploads"] == []
    assert len(env.sidecar("done", "file-at.json")["uploads"]) == 1
    assert len(env.sidecar("done", "over.json")["uploads"]) == 1
    sends = {s["marker"]: s for s in sandbox.records(bodies=True)["sends"]}
    assert {s["status"] for s in sends.values()} == {200}                # never a 413
    assert sends["at"]["size"] == SEND_LIMIT
    assert sends["at"]["body"]["Media"]["FileContents"] != sends["over"]["body"]["Media"]["FileContents"]
    uris = {u["uri"] for u in uploads(sandbox)}
    assert {sends[m]["body"]["Media"]["FileContents"] for m in ("file-at", "over")} == uris
    assert len(uploads(sandbox)) == 2


def test_what_cannot_travel_is_refused_with_its_reason_and_nothing_is_sent(env, sandbox):
    bad_base64 = json.dumps(media(os.urandom(3000))).replace('"FileContents": "', '"FileContents": "*')
    files = {
        "nodoc.json": (encode({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"},
                               "Patient": {"Notes": "n" * SEND_LIMIT}}), "no embedded document"),
        "toobig.json": (encode(media(os.urandom(UPLOAD_LIMIT + 1))), "over the upload limit"),
        "notbase64.json": (bad_base64.encode(), "Media.FileContents is not valid base64"),
        "stillover.json": (encode(media(os.urandom(3000), Filler="f" * SEND_LIMIT)), "still be about"),
    }
    for name, (raw, _) in files.items():
        env.drop(name, raw)
    result = env.run("run", "--once")
    assert result.returncode == 1
    assert env.files("failed") == sorted(files)
    for name, (raw, reason) in files.items():
        car = env.sidecar("failed", name)
        assert any(reason in e for e in car["errors"]), (name, car["errors"])
        assert car["attempts"] == 0 and car["uploads"] == [] and car["attempt_history"] == []
        assert (env.folder("failed") / name).read_bytes() == raw
    records = sandbox.records()
    assert records["uploads"] == [] and records["sends"] == []


def test_an_upload_failing_twice_with_503_is_retried_and_then_sent_once(env, sandbox):
    sandbox.faults(upload_fail_next=[503, 503])
    document = os.urandom(5000)
    env.drop("big.json", encode(media(document)))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert [u["status"] for u in uploads(sandbox)] == [503, 503, 201]
    car = env.sidecar("done", "big.json")
    assert [(a["kind"], a["result"], a["status"]) for a in car["attempt_history"]] == [
        ("upload", "transient", 503), ("upload", "transient", 503), ("upload", "accepted", 201),
        ("send", "accepted", 200)]
    assert car["attempts"] == 1 and car["possible_duplicate"] is False
    assert car["uploads"][0]["URI"] == uploads(sandbox)[2]["uri"]
    assert len(sandbox.records()["sends"]) == 1


def test_an_upload_refused_with_413_fails_the_file_without_a_send(env, sandbox):
    sandbox.faults(upload_fail_next=[413])
    env.drop("big.json", encode(media(os.urandom(5000))))
    result = env.run("run", "--once")
    assert result.returncode == 1
    car = env.sidecar("failed", "big.json")
    assert car["errors"][0] == "upload of Media.FileContents refused (HTTP 413)"
    assert car["reason_kind"] == "permanent" and car["http_status"] is None and car["attempts"] == 0
    assert sandbox.records()["sends"] == []


def test_a_crash_between_upload_and_send_does_not_upload_again_on_restart(env, sandbox):
    first, second = os.urandom(2000), os.urandom(2500)
    raw = encode(results(first, second))
    env.drop("big.json", raw)
    crashed = env.run("run", "--once", env={"PIPELINE_FAILPOINT": "after_upload"})
    assert crashed.returncode == -signal.SIGKILL
    [up] = uploads(sandbox)                       # the first document, then the process died
    assert up["sha256"] == sha(first) and sandbox.records()["sends"] == []
    assert env.files("done") == [] and len(env.files("processing")) == 1
    db = sqlite3.connect(env.root / "drop" / "state.db")
    [(saved,)] = db.execute("SELECT uploads FROM claims").fetchall()
    assert [u["URI"] for u in json.loads(saved)] == [up["uri"]]

    restarted = env.run("run", "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert [u["sha256"] for u in uploads(sandbox)] == [sha(first), sha(second)]   # no repeat
    assert len(sandbox.records()["sends"]) == 1
    assert (env.folder("done") / "big.json").read_bytes() == raw
    car = env.sidecar("done", "big.json")
    assert [u["URI"] for u in car["uploads"]] == [u["uri"] for u in uploads(sandbox)]
    assert [u["field"] for u in car["uploads"]] == ["Orders[0].Results[1].Value",
                                                    "Orders[0].Results[2].Value"]
    assert car["possible_duplicate"] is False and car["attempts"] == 1


def test_a_send_referencing_a_uri_this_source_did_not_upload_is_refused(env, sandbox):
    message = media(b"")
    message["Media"]["FileContents"] = f"{sandbox.url}/blob/{uuid.uuid4()}"
    env.drop("foreign.json", json.dumps(message).encode())
    result = env.run("run", "--once")
    assert result.returncode == 1
    car = env.sidecar("failed", "foreign.json")
    assert car["http_status"] == 400 and any("Unknown file URI" in e for e in car["errors"])


def test_an_upload_answered_401_gets_a_new_token_and_the_whole_document_again(env, sandbox):
    from pipeline import app, config
    settings = config.load(env.config)
    client = app.make_client(settings)
    document = os.urandom(50_000)
    with open(env.root / "doc.bin", "w+b") as handle:
        handle.write(document)
        client.upload(handle, "a.pdf")             # a token is cached and works
        sandbox.expire_tokens()
        handle.seek(500)                           # wherever the file stands, all of it goes
        uri, status = client.upload(handle, "a.pdf")
    assert status == 201
    assert [(u["status"], u["sha256"]) for u in uploads(sandbox)] == [
        (201, sha(document)), (401, None), (201, sha(document))]
    assert uploads(sandbox)[2]["uri"] == uri


def test_refused_credentials_stop_the_run_and_leave_a_big_file_in_the_inbox(env, sandbox):
    sandbox.faults(refuse_credentials=True)
    raw = encode(media(os.urandom(5000)))
    env.drop("big.json", raw)
    result = env.run("run", "--once")
    assert result.returncode == 3
    assert env.files("inbox") == ["big.json"] and env.files("failed") == []
    assert (env.inbox / "big.json").read_bytes() == raw
    assert uploads(sandbox) == [] and sandbox.records()["sends"] == []


def test_uploads_failing_every_time_give_up_after_max_attempts_without_a_send(env, sandbox):
    sandbox.faults(upload_fail_next=[500] * 5)       # retry.max_attempts is 5 in PipelineEnv
    env.drop("big.json", encode(media(os.urandom(5000))))
    result = env.run("run", "--once")
    assert result.returncode == 1
    car = env.sidecar("failed", "big.json")
    assert car["reason_kind"] == "gave_up" and car["errors"][0] == "gave up after 5 upload attempts"
    assert "upload of Media.FileContents failed (HTTP 500)" in car["errors"][1]
    assert len(uploads(sandbox)) == 5 and sandbox.records()["sends"] == []
    assert car["uploads"] == [] and car["attempts"] == 0


def test_a_process_killed_while_its_send_is_in_flight_resends_without_uploading_again(env, sandbox):
    sandbox.faults(latency_ms=2000)          # the sandbox holds every request this long
    document = os.urandom(3000)
    env.drop("big.json", encode(media(document)))
    proc = env.start("--once")
    db = env.root / "drop" / "state.db"

    def send_in_flight():
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        except sqlite3.OperationalError:         # not created yet
            return False
        try:
            return conn.execute("SELECT COUNT(*) FROM attempts WHERE kind = 'send' AND "
                                "result IS NULL").fetchone()[0]
        except sqlite3.OperationalError:         # no tables yet
            return False
        finally:
            conn.close()
    env.wait_for(send_in_flight)
    proc.kill()
    proc.communicate(timeout=30)
    sandbox.faults(latency_ms=0)
    assert len(uploads(sandbox)) == 1
    restarted = env.run("run", "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert len(uploads(sandbox)) == 1                           # the URI was reused
    car = env.sidecar("done", "big.json")
    assert car["possible_duplicate"] is True                    # the first SEND may have landed
    assert car["uploads"][0]["URI"] == uploads(sandbox)[0]["uri"]
    assert [a["result"] for a in car["attempt_history"]] == ["accepted", "interrupted", "accepted"]
