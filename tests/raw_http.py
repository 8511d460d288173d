"""Test helper: a raw HTTP/1.1 server on 127.0.0.1 whose replies the test writes byte by byte.

``RawServer()`` reads each request (head and Content-Length body) and hands the socket to the
behaviour routed by the request's path (``server.route("/endpoint", behaviour)``, or
``server.default``). Behaviours are plain functions of the socket: :func:`answer` (a whole
reply), :func:`trickle` (a reply one byte at a time, for as long as the client listens) and
:func:`endless` (a body that never ends). Every request read is kept in ``requests`` as
(head, body); ``sent`` counts the bytes that behaviours managed to write.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from typing import Callable, Iterable, Iterator, Optional

Behaviour = Callable[[socket.socket], Optional[str]]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        pass            # a client hanging up mid-reply is what these tests are about


class RawServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.routes: dict[str, Behaviour] = {}
        self.default: Behaviour = answer(200, {"Meta": {"Logs": [{"ID": "log-1"}]}})
        self.sent = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer._serve(self.request)

        self._srv = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._srv.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}"

    def route(self, path: str, behaviour: Behaviour) -> None:
        self.routes[path] = behaviour

    def count(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def paths(self) -> list[str]:
        return [head.split(" ", 2)[1] for head, _ in self.requests]

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def _serve(self, sock: socket.socket) -> None:
        """Requests one after another on a kept-alive connection."""
        for text, body in read_requests(sock):
            self.requests.append((text, body))
            path = text.split(" ", 2)[1]
            behaviour = self.routes.get(path, self.default)
            try:
                if behaviour(sock) == "closed":
                    return
            except OSError:
                return


def read_requests(sock: socket.socket) -> Iterator[tuple[str, bytes]]:
    """Each request a client sends on ``sock`` (kept alive), as (head, body), until it hangs up."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(data) < length:
            data += sock.recv(65536)
        body, data = data[:length], data[length:]
        yield head.decode("latin-1"), body


def reply_bytes(status: int, body: bytes | dict | list = b"",
                headers: Iterable[tuple[str, str]] = (), length: bool = True) -> bytes:
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = [("Content-Type", "application/json"), *headers]
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answer(status: int, body: bytes | dict | list = b"",
           headers: Iterable[tuple[str, str]] = ()) -> Behaviour:
    """The whole reply at once; the connection stays open for the next request."""
    data = reply_bytes(status, body, list(headers))

    def behaviour(sock: socket.socket) -> None:
        sock.sendall(data)
    return behaviour


def trickle(server: RawServer, data: bytes, interval: float = 0.05) -> Behaviour:
    """``data`` one byte every ``interval`` seconds, then the connection is closed; stops
    as soon as the client has gone (what it sent is counted in ``server.sent``)."""
    def behaviour(sock: socket.socket) -> str:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            server.count(1)
            time.sleep(interval)
        return "closed"
    return behaviour


def endless(server: RawServer, head: bytes, chunk: bytes = b"\0" * 65536,
            limit: int = 400 * 1024 * 1024) -> Behaviour:
    """``head``, then ``chunk`` after ``chunk`` (up to ``limit`` bytes) until the client
    stops reading; what was sent is counted in ``server.sent``."""
    def behaviour(sock: socket.socket) -> str:
        sock.sendall(head)
        total = 0
        while total < limit:
            sock.sendall(chunk)
            total += len(chunk)
            server.count(len(chunk))
        return "closed"
    return behaviour
