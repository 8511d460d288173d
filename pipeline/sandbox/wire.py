"""HTTP plumbing shared by the route modules: the request/reply values and body reading.

Routes are plain functions `(ctx, Request) -> Reply`; only server.py touches sockets. Bodies are
read through `BodyReader`, which speaks both Content-Length and chunked framing and never holds
more than the caller asks for.
"""

from __future__ import annotations

import dataclasses
import email.message
import hashlib
import http
import json
from typing import Callable, Iterator

CHUNK = 64 * 1024
# How much unwanted body the sandbox reads and discards to keep a connection usable; beyond this
# it stops reading and closes the connection instead.
DRAIN_CAP = 64 * 1024 * 1024


class BadRequest(Exception):
    """The request's framing is broken; the connection cannot be reused."""


@dataclasses.dataclass(frozen=True)
class BodyStream:
    """A reply body made chunk by chunk as it is written, never held whole: `length` bytes."""

    length: int
    chunks: Callable[[], Iterator[bytes]]


@dataclasses.dataclass(frozen=True)
class Reply:
    """One HTTP answer. `drop` closes the socket without answering; `close` ends keep-alive.

    `stream`, when set, is the body instead of `body`. `wire` (a faults.WIRE_MODES name),
    `trickle_bps` and `hang_seconds` tell transmit.py how to put the reply on the wire; route
    functions leave them alone and wirefaults.shape sets them.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    drop: bool = False
    stream: BodyStream | None = None
    wire: str = "normal"
    trickle_bps: float = 0.0
    hang_seconds: float = 0.0

    @property
    def length(self) -> int:
        """The number of body bytes the reply really carries."""
        return self.stream.length if self.stream is not None else len(self.body)


@dataclasses.dataclass
class Request:
    """What a route sees: method, path, query string, headers, body stream and path params."""

    method: str
    path: str
    query: str
    headers: email.message.Message  # an http.client.HTTPMessage (case-insensitive .get)
    body: "BodyReader"
    params: tuple[str, ...] = ()
    received_at: float = 0.0   # epoch seconds when the request line arrived (rate measurements)


def parse_json(data: bytes | None):
    """A body as JSON, or None when there is none or it is not JSON (even nested too deep)."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def json_reply(status: int, payload, headers=()) -> Reply:
    """Reply with `payload` serialised as compact JSON."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, body, "application/json", tuple(headers))


def phrase(status: int) -> str:
    """The standard reason phrase for `status`, or "Error"."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class BodyReader:
    """A request body stream over the connection's buffered reader.

    `length` is the Content-Length (None with chunked framing). Raises `BadRequest` on broken
    chunk framing or a body that ends early.
    """

    def __init__(self, rfile, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._left = 0 if chunked else (length or 0)
        self._done = not chunked and not length
        self.declared_length = None if chunked else (length or 0)

    def read(self, size: int = CHUNK) -> bytes:
        """Return up to `size` bytes (b"" at the end of the body)."""
        if self._done:
            return b""
        if self._left == 0 and self._chunked:
            self._next_chunk()
            if self._done:
                return b""
        data = self._rfile.read(min(size, self._left))
        if not data:
            raise BadRequest("request body ended early")
        self._left -= len(data)
        if self._left == 0 and not self._chunked:
            self._done = True
        elif self._left == 0:
            self._expect_crlf()
        return data

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("bad chunk size line") from None
        if size < 0:
            raise BadRequest("bad chunk size")
        if size == 0:
            self._skip_trailers()
            self._done = True
        self._left = size

    def _expect_crlf(self) -> None:
        if self._rfile.readline(3) not in (b"\r\n", b"\n"):
            raise BadRequest("chunk not followed by CRLF")

    def _skip_trailers(self) -> None:
        for _ in range(100):
            line = self._rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                return
        raise BadRequest("too many trailer lines")

    def drain(self, cap: int) -> bool:
        """Read and discard the rest of the body; False if more than `cap` bytes remained."""
        seen = 0
        while seen <= cap:
            data = self.read(CHUNK)
            if not data:
                return True
            seen += len(data)
        return False


@dataclasses.dataclass
class Body:
    """A body read with a size limit: `data` is None when it was over the limit."""

    data: bytes | None
    size: int
    sha256: str


def read_limited(reader: BodyReader, limit: int) -> Body:
    """Read the body, keeping it only if it is at most `limit` bytes; hash what was read.

    Stops reading DRAIN_CAP bytes past the limit (the server then closes the connection).
    """
    digest = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    while True:
        data = reader.read(CHUNK)
        if not data:
            break
        size += len(data)
        digest.update(data)
        if size <= limit:
            parts.append(data)
        elif parts:
            parts.clear()  # over the limit: stop holding it, keep hashing
        if size > limit + DRAIN_CAP:
            break
    return Body(b"".join(parts) if size <= limit else None, size, digest.hexdigest())
