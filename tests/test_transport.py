"""The HTTP transport (requests underneath) against real sockets on 127.0.0.1: what it sends,
how each way a request can fail maps to "Redox may have seen it" (Redox has no idempotency key,
so a SEND that may have arrived is a possible duplicate), proxies and CA bundles from the
environment, and that nothing in the package talks HTTP but through requests."""

from __future__ import annotations

import ast
import socket
import socketserver
import struct
import threading
from pathlib import Path

import pytest
from fakes import SizedStream
from raw_http import read_requests

from pipeline.errors import TransientDelivery
from pipeline.redox.client import Transport


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def server():
    """A TCP server answering each request it reads with the test's ``behaviour(sock)``, which
    returns "closed" when it ended the connection. Every request read is kept in ``requests``
    as (head, body)."""
    state = {"behaviour": None, "requests": [], "connections": []}

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):            # requests one after another on a kept-alive connection
            state["connections"].append(self.client_address)
            for head, body in read_requests(self.request):
                state["requests"].append((head, body))
                if state["behaviour"](self.request) == "closed":
                    return

    srv = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()
    srv.server_close()


def _answer(sock):
    body = b'{"Meta": {"Logs": [{"ID": "log-1"}]}}'
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRetry-After: 3\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_reply_carries_status_headers_and_body_and_the_request_is_framed(server):
    server["behaviour"] = _answer
    reply = Transport(2, 2).request("POST", server["url"] + "/endpoint", body=b'{"a": 1}',
                                    headers={"Content-Type": "application/json",
                                             "Authorization": "Bearer t"})
    assert reply.status == 200 and reply.body.startswith(b'{"Meta"')
    assert reply.headers.get("retry-after") == "3"        # header names are case-insensitive
    head, body = server["requests"][0]
    assert head.startswith("POST /endpoint HTTP/1.1") and body == b'{"a": 1}'
    assert "Content-Length: 8" in head and "User-Agent: redox-pipeline/" in head


def test_a_streamed_body_is_sent_with_its_length_not_chunked(server):
    server["behaviour"] = _answer
    Transport(2, 2).request("POST", server["url"] + "/upload", body=SizedStream(b"x" * 100_000))
    head, body = server["requests"][0]
    assert "Content-Length: 100000" in head and "chunked" not in head.lower()
    assert body == b"x" * 100_000


def test_forms_and_json_bodies_say_what_they_are(server):
    server["behaviour"] = _answer
    transport = Transport(2, 2)
    transport.request("POST", server["url"] + "/token", data={"grant_type": "client_credentials"})
    transport.request("POST", server["url"] + "/auth", json_body={"apiKey": "k"})
    (form_head, form), (json_head, doc) = server["requests"]
    assert "application/x-www-form-urlencoded" in form_head and form == b"grant_type=client_credentials"
    assert "Content-Type: application/json" in json_head and doc == b'{"apiKey": "k"}'


def test_a_refused_connection_was_never_seen():
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", f"http://127.0.0.1:{_free_port()}/endpoint", body=b"{}")
    assert caught.value.maybe_seen is False
    assert "could not connect" in str(caught.value)


def test_a_connection_closed_after_the_request_may_have_been_seen(server):
    server["behaviour"] = lambda sock: sock.close() or "closed"
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", server["url"] + "/endpoint", body=b"{}")
    assert caught.value.maybe_seen is True
    assert "connection to Redox was lost" in str(caught.value)


def test_no_answer_within_the_read_timeout_may_have_been_seen(server):
    gate = threading.Event()
    server["behaviour"] = lambda sock: gate.wait(10) and "closed"
    try:
        with pytest.raises(TransientDelivery) as caught:
            Transport(2, 0.2).request("POST", server["url"] + "/endpoint", body=b"{}")
    finally:
        gate.set()
    assert caught.value.maybe_seen is True and "did not answer in time" in str(caught.value)


def test_a_proxy_from_the_environment_carries_the_request(server, monkeypatch):
    server["behaviour"] = _answer
    monkeypatch.setenv("HTTP_PROXY", server["url"])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    reply = Transport(2, 2).request("POST", "http://redox.invalid/endpoint", body=b"{}")
    assert reply.status == 200
    head, _ = server["requests"][0]
    assert head.startswith("POST http://redox.invalid/endpoint HTTP/1.1")   # proxy form


def test_no_proxy_sends_direct(server, monkeypatch):
    server["behaviour"] = _answer
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")   # nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert Transport(2, 2).request("GET", server["url"] + "/x").status == 200
    assert server["requests"][0][0].startswith("GET /x HTTP/1.1")


def test_an_unreachable_proxy_was_never_seen(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", "http://redox.invalid/endpoint", body=b"{}")
    assert caught.value.maybe_seen is False


def test_a_proxy_setting_that_cannot_be_used_fails_before_anything_is_sent(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "gopher://127.0.0.1:1")     # a scheme urllib3 cannot use
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", "http://redox.invalid/endpoint", body=b"{}")
    assert caught.value.maybe_seen is False and "HTTPS_PROXY" in str(caught.value)


def test_a_private_ca_named_by_requests_ca_bundle_is_trusted(server, tmp_path, monkeypatch):
    """docs/security.md: a private CA is trusted the standard way (the same variable requests
    reads); without it the same server is refused."""
    from hostile import TlsFront
    server["behaviour"] = _answer
    front = TlsFront(int(server["url"].rsplit(":", 1)[1]), tmp_path)
    try:
        with pytest.raises(TransientDelivery) as caught:
            Transport(2, 2).request("GET", front.url + "/x")
        assert "verification failed" in str(caught.value) and caught.value.maybe_seen is False
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "tls-cert.pem"))
        assert Transport(2, 2).request("GET", front.url + "/x").status == 200
    finally:
        front.close()


def test_a_name_that_does_not_resolve_was_never_seen():
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", "http://no-such-host.invalid/endpoint", body=b"{}")
    assert caught.value.maybe_seen is False and "could not connect" in str(caught.value)


def test_a_reset_after_the_request_may_have_been_seen(server):
    def reset(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()                                  # RST, not FIN
        return "closed"
    server["behaviour"] = reset
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", server["url"] + "/endpoint", body=b"{}")
    assert caught.value.maybe_seen is True


def test_a_reply_cut_short_may_have_been_seen(server):
    def cut(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Meta\"")
        sock.close()
        return "closed"
    server["behaviour"] = cut
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", server["url"] + "/endpoint", body=b"{}")
    assert caught.value.maybe_seen is True and "connection to Redox was lost" in str(caught.value)


def test_a_tls_handshake_that_fails_was_never_seen():
    listener = socket.create_server(("127.0.0.1", 0))

    def plain_http():                                # answers a ClientHello with plain HTTP
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()
    threading.Thread(target=plain_http, daemon=True).start()
    try:
        with pytest.raises(TransientDelivery) as caught:
            Transport(2, 2).request("POST", f"https://127.0.0.1:{listener.getsockname()[1]}/endpoint",
                                    body=b"{}")
    finally:
        listener.close()
    assert caught.value.maybe_seen is False and "TLS handshake" in str(caught.value)


def test_a_tls_handshake_that_times_out_was_never_seen(server):
    server["behaviour"] = _answer                    # waits for a request that never comes
    url = server["url"].replace("http://", "https://")
    with pytest.raises(TransientDelivery) as caught:
        Transport(0.5, 0.5).request("POST", url + "/endpoint", body=b"{}")
    assert caught.value.maybe_seen is False and server["requests"] == []


def test_an_empty_curl_ca_bundle_does_not_switch_verification_off(server, tmp_path, monkeypatch):
    from hostile import TlsFront
    server["behaviour"] = _answer
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    front = TlsFront(int(server["url"].rsplit(":", 1)[1]), tmp_path)
    try:
        with pytest.raises(TransientDelivery) as caught:
            Transport(2, 2).request("GET", front.url + "/x")
    finally:
        front.close()
    assert "verification failed" in str(caught.value) and server["requests"] == []


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent(server):
    server["behaviour"] = _answer
    with pytest.raises(TransientDelivery) as caught:
        Transport(2, 2).request("POST", server["url"] + "/endpoint", body=b"{}",
                                headers={"Authorization": "Bearer a\r\nX-Injected: 1"})
    assert caught.value.maybe_seen is False and server["requests"] == []


def test_one_session_serves_every_request_and_keeps_its_connection(server):
    server["behaviour"] = _answer
    transport = Transport(2, 2)
    for _ in range(3):
        transport.request("POST", server["url"] + "/endpoint", body=b"{}")
    assert len(server["requests"]) == 3
    assert len(server["connections"]) == 1           # kept alive, one pool per origin


def test_no_module_of_the_package_talks_http_but_through_requests():
    """The sandbox (a server) may use the standard library's HTTP; nothing else may import
    urllib3, certifi or http.client itself."""
    package = Path(__file__).resolve().parents[1] / "pipeline"
    offenders = []
    for path in package.rglob("*.py"):
        if "sandbox" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("urllib3", "certifi") or n.startswith("http.client")]
    assert offenders == []
