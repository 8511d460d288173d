"""A streamed ``multipart/form-data`` body for Redox's file upload (the Transferring Files
path): one part named ``file`` carrying the document's own bytes, read in blocks as it is sent.
"""

from __future__ import annotations

import io
import os
import secrets
from typing import BinaryIO


class MultipartBody:
    """A ``multipart/form-data`` body with one part named ``file``, streamed from a file.

    HTTP libraries' form helpers build such a body whole in memory (a second copy of a 30 MB
    document); this one is read in blocks as it is sent, with a known length (so a
    Content-Length, not chunked framing). It carries its own boundary in ``content_type``: the
    Content-Type header and the body must agree on it. Starts from the beginning of ``document`` whatever its position.
    """

    def __init__(self, document: BinaryIO, filename: str):
        self.boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{_safe_filename(filename)}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode("ascii")
        tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        document.seek(0, os.SEEK_END)
        self._length = len(head) + document.tell() + len(tail)
        document.seek(0)
        self._parts = [io.BytesIO(head), document, io.BytesIO(tail)]

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); b"" at the end."""
        out = bytearray()
        while self._parts and (size < 0 or len(out) < size):
            data = self._parts[0].read(-1 if size < 0 else size - len(out))
            if data:
                out += data
            else:
                self._parts.pop(0)
        return bytes(out)

    def __iter__(self):
        return iter(lambda: self.read(64 * 1024), b"")


def _safe_filename(name: str) -> str:
    """The part's filename: printable ASCII without quotes or backslashes, else "document"."""
    clean = "".join(c for c in (name or "") if 32 <= ord(c) < 127 and c not in '"\\')
    return clean.strip()[:100] or "document"
