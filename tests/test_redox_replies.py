"""Hostile replies to SEND and upload, against a real socket on 127.0.0.1 (raw_http.py).

A 200 that does not prove acceptance is never a delivery; a reply is read for at most a
bounded time and size, whatever its shape; Retry-After of any shape never raises nor holds
everyone back longer than the retry policy's longest wait; nothing a reply says reaches a log.
"""

from __future__ import annotations

import gzip
import io
import json
import logging

import pytest
from fakes import Clock, FakeTokens
from raw_http import RawServer, answer, endless, reply_bytes, trickle

from pipeline.errors import PermanentDelivery, TransientDelivery
from pipeline.redox.client import RedoxClient, Transport
from pipeline.redox.ratelimit import RateLimiter

PATIENT = "Jane Q. Patient"          # what a hostile reply echoes; must never be logged
DEST = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "EMR"}
CAP = 7.0                             # retry.backoff_max_seconds in these tests



@pytest.fixture
def server():
    srv = RawServer()
    yield srv
    srv.close()


def client_for(server: RawServer, timeout: float = 2.0, limiter=None) -> RedoxClient:
    return RedoxClient(server.url, server.url + "/upload", Transport(2, timeout), FakeTokens(),
                       limiter or RateLimiter(0), retry_cap=CAP)


def message(destinations: int = 1) -> bytes:
    return json.dumps({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient",
                                "Destinations": [DEST] * destinations},
                       "Patient": {"Name": PATIENT}}).encode()


def ambiguous(client: RedoxClient, body: bytes) -> TransientDelivery:
    with pytest.raises(TransientDelivery) as caught:
        client.send(body)
    exc = caught.value
    assert exc.maybe_seen is True, exc
    assert PATIENT not in str(exc) and "<html" not in str(exc)
    return exc


# -- a 200 is a delivery only with a Log ID per destination ---------------------------------------

def test_an_html_200_from_a_proxy_is_ambiguous_and_described_not_quoted(server, caplog):
    page = f"<html><body>Welcome back, {PATIENT}</body></html>".encode()
    server.default = answer(200, page, [("Content-Type", "text/html; charset=utf-8")])
    with caplog.at_level(logging.DEBUG):
        exc = ambiguous(client_for(server), message())
    assert f"a 200 reply without Log IDs (text/html, {len(page)} bytes)" in str(exc)
    assert exc.status == 200 and not any(PATIENT in e for e in exc.errors)
    assert PATIENT not in caplog.text


@pytest.mark.parametrize("reply", [
    b"",                                                          # empty
    b'{"Meta": {"DataModel": "PatientAdmin"}}',                   # no Meta.Logs
    b'{"Meta": {"Logs": []}}',                                    # no entries
    b'{"Meta": {"Logs": [{"AttemptID": "a"}]}}',                  # an entry without ID
    b'{"Meta": {"Logs": [{"ID": 12345}]}}',                       # an ID that is not a string
    b'{"Meta": {"Logs": [{"ID": "Jane Q. Patient <b>"}]}}',       # nor an ID at all
    b'[{"ID": "log-1"}]',                                         # not an object
    b"[" * 100_000 + b"]" * 100_000,                              # nests too deep to parse
], ids=["empty", "no-logs", "empty-logs", "no-id", "int-id", "text-id", "array", "deep"])
def test_a_200_without_log_ids_is_ambiguous(server, reply):
    server.default = answer(200, reply, [("Content-Type", "application/json")])
    exc = ambiguous(client_for(server), message())
    assert "without Log IDs" in str(exc) or "0 Log IDs" in str(exc)


def test_fewer_log_ids_than_destinations_is_ambiguous(server):
    server.default = answer(200, {"Meta": {"Logs": [{"ID": "log-1"}]}})
    exc = ambiguous(client_for(server), message(destinations=2))
    assert "1 Log IDs for 2 destinations" in str(exc)


def test_a_200_with_meta_errors_is_ambiguous_and_keeps_the_texts_out_of_the_message(server):
    server.default = answer(200, {"Meta": {"Logs": [{"ID": "log-1"}],
                                           "Errors": [{"Text": f"bad value for {PATIENT}"}]}})
    exc = ambiguous(client_for(server), message())
    assert "Meta.Errors" in str(exc) and exc.errors[-1] == f"bad value for {PATIENT}"


def test_a_log_id_for_each_destination_is_a_delivery(server):
    logs = [{"ID": "log-1", "AttemptID": "a-1"}, {"ID": "log-2", "AttemptID": "<script>"}]
    server.default = answer(200, {"Meta": {"Logs": logs, "Errors": []}})
    sent = client_for(server).send(message(destinations=2))
    assert sent.status == 200
    assert sent.logs == ({"ID": "log-1", "AttemptID": "a-1"}, {"ID": "log-2", "AttemptID": None})


@pytest.mark.parametrize("status", [201, 202, 204])
def test_an_unexpected_success_status_is_ambiguous(server, status):
    server.default = answer(status, b"")
    assert ambiguous(client_for(server), message()).status == status


def test_a_redirect_is_not_followed(server):
    server.default = answer(302, b"", [("Location", server.url + "/elsewhere")])
    with pytest.raises(PermanentDelivery):
        client_for(server).send(message())
    assert server.paths() == ["/endpoint"]


def test_cookies_are_never_kept_or_sent_back(server):
    server.default = answer(200, {"Meta": {"Logs": [{"ID": "log-1"}]}},
                            [("Set-Cookie", "session=abc; Path=/")])
    client = client_for(server)
    client.send(message())
    client.send(message())
    assert all("cookie" not in head.lower() for head, _ in server.requests)


# -- upload replies ------------------------------------------------------------------------------

@pytest.mark.parametrize("reply", [b"", b"<html>ok</html>", b'{"URI": ""}', b'{"URI": 42}',
                                   b'{"URI": "javascript:alert(1)"}', b'{"URI": "https://a b"}'])
def test_an_upload_reply_without_a_usable_uri_is_ambiguous(server, reply):
    server.route("/upload", answer(201, reply))
    with pytest.raises(TransientDelivery) as caught:
        client_for(server).upload(io.BytesIO(b"%PDF-1.4 " + PATIENT.encode()), "a.pdf")
    assert caught.value.maybe_seen is True and caught.value.status == 201
    assert "no usable URI" in str(caught.value)


def test_an_upload_is_streamed_with_its_length(server):
    server.route("/upload", answer(201, {"URI": "https://blob.example/f/1"}))
    uri, status = client_for(server).upload(io.BytesIO(b"x" * 300_000), "a.pdf")
    head, body = server.requests[0]
    assert (uri, status) == ("https://blob.example/f/1", 201)
    assert f"Content-Length: {len(body)}" in head and "chunked" not in head.lower()
    assert b"x" * 300_000 in body


# -- bounded in time and size --------------------------------------------------------------------

REPLY = reply_bytes(200, {"Meta": {"Logs": [{"ID": "log-1"}], "Padding": "." * 400}})


@pytest.mark.parametrize("path", ["/endpoint", "/upload"])
def test_a_reply_trickled_byte_by_byte_is_cut_at_the_deadline(server, path):
    server.route(path, trickle(server, REPLY, interval=0.02))      # 10 s for the whole reply
    client = client_for(server, timeout=1.0)
    with pytest.raises(TransientDelivery) as caught:
        if path == "/upload":
            client.upload(io.BytesIO(b"doc"), "a.pdf")
        else:
            client.send(message())
    assert caught.value.maybe_seen is True and "did not answer in time" in str(caught.value)
    assert server.sent < len(REPLY)              # the reply was never read whole


def test_a_body_trickled_after_prompt_headers_is_cut_at_the_deadline(server):
    head, _, body = REPLY.partition(b"\r\n\r\n")
    server.default = lambda sock: (sock.sendall(head + b"\r\n\r\n"),
                                   trickle(server, body, interval=0.02)(sock))[1]
    with pytest.raises(TransientDelivery) as caught:
        client_for(server, timeout=1.0).send(message())
    assert caught.value.maybe_seen is True and server.sent < len(body)


def test_a_huge_declared_reply_is_not_read(server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
    server.default = endless(server, head, limit=300_000_000)
    exc = ambiguous(client_for(server), message())
    assert "300000000 bytes" in str(exc) and "not read" in str(exc)
    assert server.sent < 50 * 1024 * 1024       # the client hung up instead of reading on


def test_a_reply_that_never_ends_is_read_no_further_than_the_limit(server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    server.default = endless(server, head)
    exc = ambiguous(client_for(server), message())
    assert "reply limit, not read" in str(exc)
    assert server.sent < 50 * 1024 * 1024


def test_a_compressed_reply_is_never_decompressed(server):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)   # 64 MiB from ~64 KiB
    server.default = answer(200, bomb, [("Content-Type", "application/json"),
                                        ("Content-Encoding", "gzip")])
    exc = ambiguous(client_for(server), message())
    assert "compressed" in str(exc)
    assert "Accept-Encoding: identity" in server.requests[0][0]


def test_a_hostile_300_mb_reply_costs_a_few_mb_of_memory(tmp_path):
    """Measured in a fresh process: peak RSS before and after one 300 MB reply, streamed
    without a Content-Length (the case where the client has to read to know)."""
    import subprocess
    import sys
    from pathlib import Path
    here = Path(__file__).resolve().parent
    script = tmp_path / "rss.py"
    script.write_text(RSS_SCRIPT.format(repo=str(here.parent), tests=str(here)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    grown_kib = int(out.stdout.split()[-1])
    assert grown_kib < 16 * 1024, f"peak RSS grew by {grown_kib} KiB"


RSS_SCRIPT = """
import resource, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from raw_http import RawServer, endless, answer
from pipeline.errors import TransientDelivery
from pipeline.redox.client import Transport
server = RawServer()
transport = Transport(2, 30)
server.default = answer(200, b"{{}}")
transport.request("POST", server.url + "/endpoint", body=b"{{}}")      # warm: imports, pool
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
server.default = endless(server, b"HTTP/1.1 200 OK\\r\\nConnection: close\\r\\n\\r\\n",
                         limit=300 * 1024 * 1024)
reply = transport.request("POST", server.url + "/endpoint", body=b"{{}}")
assert reply.unread and not reply.body
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(after - before)
"""


# -- Retry-After of any shape --------------------------------------------------------------------

ODD_RETRY_AFTER = ["inf", "nan", "-5", "1e400", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT",
                   "Sat, 01 Jan 10000 00:00:00 GMT", "garbage", " ", "1_000", "0x10",
                   "Wed, 21 Oct 2015 07:28:00 GMT", "3.5", "\u00e9\u00e9"]


@pytest.mark.parametrize("value", ODD_RETRY_AFTER)
def test_a_429_retry_after_of_any_shape_pauses_everyone_at_most_the_cap(server, value):
    server.default = answer(429, b"", [("Retry-After", value)])
    clock = Clock(1000.0)
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep, max_pause=CAP)
    with pytest.raises(TransientDelivery) as caught:
        client_for(server, limiter=limiter).send(message())
    assert caught.value.status == 429
    assert caught.value.retry_after is None or 0 <= caught.value.retry_after <= CAP
    assert 0 <= limiter.acquire() <= CAP       # how long the next request, anyone's, waits


@pytest.mark.parametrize("value", ["99999999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_503_retry_after_delays_that_file_only_and_is_capped(server, value):
    server.default = answer(503, b"", [("Retry-After", value)])
    clock = Clock(1000.0)
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep, max_pause=CAP)
    with pytest.raises(TransientDelivery) as caught:
        client_for(server, limiter=limiter).send(message())
    assert caught.value.retry_after in (None, CAP)
    assert limiter.acquire() == 0               # nobody else is held back


def test_the_limiter_caps_any_pause_and_ignores_nan():
    clock = Clock(1000.0)
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep, max_pause=CAP)
    for seconds in (float("inf"), 1e300, float("nan"), -1.0):
        limiter.pause_for(seconds)
    assert limiter.acquire() == CAP
