"""File upload (`POST /upload`) and blob metadata (`GET /blob/<id>`).

The multipart body is scanned as a stream: the `file` part's bytes are counted and hashed as they
pass and then forgotten, so memory stays at a few chunks whatever the file size. Only the
metadata (source, size, sha256) is remembered, keyed by the URI handed back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import TYPE_CHECKING

from .context import admitted, bearer, gate, unauthorized
from .error_replies import redox_errors
from .wire import CHUNK, Reply, Request, json_reply
from .wirefaults import shape

if TYPE_CHECKING:
    from _hashlib import HASH

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))', re.I)
_NAME = re.compile(rb'(?:^|;)\s*name="?([^";]*)"?', re.I)
HEADER_CAP = 16 * 1024


class MultipartError(ValueError):
    """The body is not the multipart/form-data it claims to be."""


@dataclasses.dataclass
class FilePart:
    """The `file` part as seen in passing: decoded size, sha256, and whether over the limit."""

    size: int = 0
    sha256: str = ""
    too_large: bool = False


def boundary_of(content_type: str | None) -> bytes:
    """Extract the multipart boundary. Raises MultipartError when absent."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("Content-Type must be multipart/form-data")
    found = _BOUNDARY.search(content_type)
    if not found:
        raise MultipartError("multipart boundary missing")
    return (found.group(1) or found.group(2)).encode("latin-1")


class _Scanner:
    """A push parser: feed it the body chunk by chunk, then call `finish()`."""

    def __init__(self, boundary: bytes, limit: int) -> None:
        self._sep = b"\r\n--" + boundary
        # Leading CRLF makes the first delimiter look like every later one.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"
        self._limit = limit
        self._hash: HASH | None = None  # the open file part's hasher, None in other parts
        self.part: FilePart | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._state != "done" and self._step():
            pass

    def finish(self) -> FilePart | None:
        if self._state != "done":
            raise MultipartError("multipart body ended before its closing boundary")
        return self.part

    def _step(self) -> bool:
        """Advance one state; False when more input is needed."""
        if self._state in ("preamble", "body"):
            return self._scan_to_delimiter()
        if self._state == "delimiter":
            return self._after_delimiter()
        return self._headers()

    def _scan_to_delimiter(self) -> bool:
        at = self._buf.find(self._sep)
        # Without a delimiter, keep only a tail that could be its beginning.
        usable = at if at >= 0 else max(0, len(self._buf) - len(self._sep) + 1)
        if self._state == "body":
            self._consume(self._buf[:usable])
        del self._buf[:usable + (len(self._sep) if at >= 0 else 0)]
        if at < 0:
            return False
        if self._state == "body" and self._hash is not None:
            self._file_part().sha256 = self._hash.hexdigest()
            self._hash = None
        self._state = "delimiter"
        return True

    def _after_delimiter(self) -> bool:
        if self._buf.startswith(b"--"):
            self._state = "done"
            return False
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > 1024:
                raise MultipartError("garbage after multipart boundary")
            return False
        if self._buf[:end].strip(b" \t"):
            raise MultipartError("garbage after multipart boundary")
        del self._buf[:end + 2]
        self._state = "headers"
        return True

    def _headers(self) -> bool:
        end = 0 if self._buf.startswith(b"\r\n") else self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > HEADER_CAP:
                raise MultipartError("multipart part headers too long")
            return False
        name = _part_name(bytes(self._buf[:end]))
        del self._buf[:end + (2 if end == 0 else 4)]
        if name == "file":
            if self.part is not None:
                raise MultipartError("more than one part named file")
            self.part, self._hash = FilePart(), hashlib.sha256()
        self._state = "body"
        return True

    def _consume(self, data: bytes | bytearray) -> None:
        if self._hash is None or not len(data):
            return
        part = self._file_part()
        part.size += len(data)
        if part.size > self._limit:
            part.too_large = True
        else:
            self._hash.update(data)

    def _file_part(self) -> FilePart:
        # _headers sets part together with _hash, so while hashing there is always a part.
        if self.part is None:
            raise RuntimeError("multipart scanner is hashing a body without a file part")
        return self.part


def _part_name(headers: bytes) -> str | None:
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            found = _NAME.search(value)
            return found.group(1).decode("utf-8", "replace") if found else None
    return None


def scan_upload(req: Request, limit: int) -> FilePart | None:
    """Stream the request body through the multipart scanner; return the `file` part or None.

    Raises MultipartError for a malformed body.
    """
    scanner = _Scanner(boundary_of(req.headers.get("Content-Type")), limit)
    while data := req.body.read(CHUNK):
        scanner.feed(data)
    return scanner.finish()


def handle_upload(ctx, req: Request) -> Reply:
    """`POST /upload`: 201 `{"URI"}` for a good `file` part; 400/401/413/429/5xx otherwise.

    Every reply goes through the `upload` wire faults (wirefaults.py) before it is recorded.
    """
    entry = {"status": 0, "size": None, "sha256": None, "uri": None}
    reply, token = gate(ctx, req, "upload_fail_next", random_errors=False, module="Upload")
    if reply is None:
        reply = _accept_upload(ctx, req, admitted(token).source, entry)
    reply, wire = shape(ctx, "upload", reply)
    entry.update(wire, status=reply.status)
    ctx.state.record("uploads", entry)
    return reply


def _accept_upload(ctx, req: Request, source: str, entry: dict) -> Reply:
    try:
        part = scan_upload(req, ctx.state.fault("upload_limit_bytes"))
    except MultipartError as exc:
        return redox_errors(ctx, 400, [f"Invalid upload - {exc}"], "Upload")
    if part is None:
        return redox_errors(ctx, 400, ["Required field missing - multipart part named file"],
                            "Upload")
    entry["size"] = part.size
    if part.too_large:
        return redox_errors(ctx, 413, ["Payload Too Large - file exceeds the upload limit"],
                            "Upload")
    entry["sha256"] = part.sha256
    uri = f"{ctx.base_url}/blob/{ctx.state.add_blob(source, part.size, part.sha256)}"
    entry["uri"] = uri
    return json_reply(201, {"URI": uri})


def handle_blob(ctx, req: Request) -> Reply:
    """`GET /blob/<id>`: the uploaded file's `{"size", "sha256"}` (never its bytes)."""
    if bearer(ctx, req) is None:
        return unauthorized(ctx, "Upload")
    blob = ctx.state.blob(req.params[0])
    if blob is None:
        return redox_errors(ctx, 404, ["Not Found - no such file"], "Upload")
    _, size, sha256 = blob
    return json_reply(200, {"size": size, "sha256": sha256})
