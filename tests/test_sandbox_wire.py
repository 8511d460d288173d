"""Sandbox wire faults: trickled, huge, gzip-bombed, cut and hanging replies, per route group.

Real sockets against the subprocess. Nothing here asserts on how long something took: trickling
is shown by how many bytes each read gets, hangs by a read that gets nothing, size by counting.
"""

from __future__ import annotations

import http.client
import json
import socket
import uuid
import zlib

import pytest
import requests
from sandbox_control import LEGACY_API_KEY, LEGACY_SECRET, SandboxProcess, token_form

EMR = "af394f14-b34a-464f-8d24-895f370af4c9"
MESSAGE = {"Meta": {"DataModel": "Notes", "EventType": "New", "Destinations": [{"ID": EMR}]}}
BOUNDARY = "sandbox-test-boundary"
MiB = 1024 * 1024


def request_for(kind: str, sb, token: str) -> tuple[str, str, bytes, dict]:
    """(method, path, body, headers) of one request to the route `kind` names."""
    auth = {"Authorization": f"Bearer {token}"}
    if kind == "send":
        return "POST", "/endpoint", json.dumps(MESSAGE).encode(), {
            **auth, "Content-Type": "application/json"}
    if kind == "upload":
        body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"a.bin\"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n").encode()
        return "POST", "/upload", body, {
            **auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if kind == "oauth":
        form = "&".join(f"{k}={v}" for k, v in token_form(sb.url).items())
        return "POST", "/v2/auth/token", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded"}
    if kind == "legacy":
        body = json.dumps({"apiKey": LEGACY_API_KEY, "secret": LEGACY_SECRET}).encode()
        return "POST", "/auth/authenticate", body, {"Content-Type": "application/json"}
    return "GET", f"/platform/v1/organizations/o/logs/{uuid.uuid4()}", b"", auth


GROUP = {"send": "send", "upload": "upload", "oauth": "token", "legacy": "token",
         "platform": "platform"}
RECORDS = {"send": "sends", "upload": "uploads", "token": "token_requests",
           "platform": "log_lookups"}


def open_request(sb, kind: str, token: str) -> socket.socket:
    """A socket on which the request for `kind` has been sent, nothing read yet."""
    method, path, body, headers = request_for(kind, sb, token)
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{sb.port}",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    sock = socket.create_connection(("127.0.0.1", sb.port), timeout=10)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything up to the end of one reply whose framing is honest (Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def http_conn(sb) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", sb.port, timeout=10)


def send_via(conn: http.client.HTTPConnection, token: str) -> http.client.HTTPResponse:
    conn.request("POST", "/endpoint", body=json.dumps(MESSAGE), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return conn.getresponse()


# -- trickle ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["send", "upload", "oauth", "legacy", "platform"])
def test_trickle_sends_a_reply_a_byte_at_a_time(sb, kind):
    token = sb.oauth_token()
    with open_request(sb, kind, token) as sock:
        whole = len(read_all(sock))  # the same reply, untrickled: it comes in one write
    sb.faults(**{f"{GROUP[kind]}_trickle_bps": 50})
    with open_request(sb, kind, token) as sock:
        sizes = [len(sock.recv(65536)) for _ in range(10)]
    # Ten reads of a trickled reply get a few bytes each, far from the whole reply.
    assert all(sizes) and sum(sizes) < whole / 3, (sizes, whole)
    records = sb.records()[RECORDS[GROUP[kind]]]
    assert records[-1]["trickle_bps"] == 50 and records[-2]["trickle_bps"] == 0


def test_a_trickled_reply_arrives_whole_for_a_client_with_a_per_read_timeout(sb):
    token = sb.oauth_token()
    sb.faults(send_trickle_bps=4000, token_trickle_bps=4000)
    reply = requests.post(f"{sb.url}/endpoint", json=MESSAGE, timeout=(5, 1),
                          headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200 and len(reply.json()["Meta"]["Logs"]) == 1
    assert sb.oauth_token()


# -- huge replies and gzip bombs ----------------------------------------------------------------

def test_huge_reply_is_streamed_without_holding_it(sb):
    token = sb.oauth_token()
    size = 200 * MiB
    sb.faults(send_wire_next=["huge"], huge_reply_bytes=size)
    before = sb.peak_rss_bytes()
    conn = http_conn(sb)
    reply = send_via(conn, token)
    assert reply.status == 200 and int(reply.getheader("Content-Length")) == size
    first = reply.read(MiB)
    total = len(first)
    while chunk := reply.read(4 * MiB):
        total += len(chunk)
    assert total == size and first.startswith(b'{"Meta":')
    assert sb.peak_rss_bytes() - before < size // 4
    # the connection stays usable: the framing was honest
    assert send_via(conn, token).read() and sb.records()["sends"][0]["wire"] == "huge"
    conn.close()


def test_huge_error_reply_is_still_valid_json(sb):
    token = sb.oauth_token()
    sb.faults(upload_wire="huge", huge_reply_bytes=3 * MiB, upload_fail_next=[503])
    method, path, body, headers = request_for("upload", sb, token)
    reply = requests.post(f"{sb.url}{path}", data=body, headers=headers, timeout=10)
    assert reply.status_code == 503 and len(reply.content) == 3 * MiB
    assert reply.json()["Meta"]["Errors"]  # padded with whitespace, which JSON allows


def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_the_declared_size(sb):
    token = sb.oauth_token()
    size = 64 * MiB
    sb.faults(send_wire_next="gzip_bomb", gzip_bomb_bytes=size)
    reply = send_via(http_conn(sb), token)  # http.client leaves the encoding alone
    raw = reply.read()
    assert reply.getheader("Content-Encoding") == "gzip"
    assert len(raw) == int(reply.getheader("Content-Length")) < size // 500
    inflate, total, tail = zlib.decompressobj(zlib.MAX_WBITS | 16), 0, b""
    while raw:
        out = inflate.decompress(raw, MiB)  # bounded steps: the test must not hold 64 MiB
        total, tail = total + len(out), (tail + out)[-4096:]
        raw = inflate.unconsumed_tail
    assert inflate.eof and total == size
    assert len(json.loads(tail)["Meta"]["Logs"]) == 1
    [record] = sb.records()["sends"]
    assert record["wire"] == "gzip_bomb" and record["status"] == 200 and record["log_ids"]


# -- broken framing -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["send", "upload", "oauth", "legacy", "platform"])
def test_cut_after_headers_in_every_group(sb, kind):
    token = sb.oauth_token()
    sb.faults(**{f"{GROUP[kind]}_wire_next": ["cut_after_headers"]})
    method, path, body, headers = request_for(kind, sb, token)
    conn = http_conn(sb)
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    assert int(reply.getheader("Content-Length")) > 0
    with pytest.raises(http.client.IncompleteRead) as cut:
        reply.read()
    assert cut.value.partial == b""
    assert sb.records()[RECORDS[GROUP[kind]]][-1]["wire"] == "cut_after_headers"


def test_cut_mid_body_sends_half(sb):
    token = sb.oauth_token()
    sb.faults(send_wire_next="cut_mid_body")
    reply = send_via(http_conn(sb), token)
    with pytest.raises(http.client.IncompleteRead) as cut:
        reply.read()
    length = int(reply.getheader("Content-Length"))
    assert len(cut.value.partial) == length // 2 > 0


def test_short_body_then_hang(sb):
    token = sb.oauth_token()
    sb.faults(send_wire_next="short_body_hang", hang_seconds=60)
    with open_request(sb, "send", token) as sock:
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        claimed = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")))
        while len(body) < claimed - 1000:
            body += sock.recv(65536)
        assert json.loads(body)["Meta"]["Logs"]  # the real reply, whole
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # ... and then nothing, on an open connection
            sock.recv(1)
    assert sb.records()["sends"][0]["wire"] == "short_body_hang"


def test_hang_sends_nothing_until_hang_seconds(sb):
    token = sb.oauth_token()
    sb.faults(send_wire_next=["hang", "hang"], hang_seconds=60)
    with open_request(sb, "send", token) as sock:
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
    sb.faults(hang_seconds=0.1)
    with open_request(sb, "send", token) as sock:
        assert sock.recv(1) == b""  # closed without a byte once hang_seconds passed
    assert [r["wire"] for r in sb.records()["sends"]] == ["hang", "hang"]


def test_no_reply_still_records(sb):
    token = sb.oauth_token()
    sb.faults(send_wire_next="no_reply", token_wire_next="no_reply")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{sb.url}/endpoint", json=MESSAGE, timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{sb.url}/v2/auth/token", data=token_form(sb.url), timeout=10)
    records = sb.records()
    assert records["sends"][0]["wire"] == "no_reply" and records["sends"][0]["log_ids"]
    assert records["token_requests"][-1]["wire"] == "no_reply"
    assert records["tokens_issued"] == 2


def test_wire_queue_comes_before_the_standing_mode(sb):
    token = sb.oauth_token()
    sb.faults(send_wire="cut_mid_body", send_wire_next=["normal"])
    assert send_via(http_conn(sb), token).read()
    with pytest.raises(http.client.IncompleteRead):
        send_via(http_conn(sb), token).read()
    assert [r["wire"] for r in sb.records()["sends"]] == ["normal", "cut_mid_body"]


def test_wire_faults_apply_to_error_replies(sb):
    sb.faults(send_wire_next="cut_after_headers")
    reply = send_via(http_conn(sb), "not-a-token")
    assert reply.status == 401
    with pytest.raises(http.client.IncompleteRead):
        reply.read()


def test_stop_ends_a_hanging_connection():
    with SandboxProcess("--send-wire", "hang", "--hang-seconds", "300") as sb:
        token = sb.oauth_token()
        with open_request(sb, "send", token) as sock:
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            assert sb.stop() == 0
