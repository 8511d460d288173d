"""Streaming one embedded document's base64: decoded piece by piece as jsonscan reads it, never
held whole, measured and hashed, and its bytes handed to a sink (the upload) when there is one.
"""

from __future__ import annotations

import binascii
import hashlib
from typing import BinaryIO, Callable, Optional

from pipeline.errors import RejectedFile
from pipeline.redox.transfer import jsonscan
from pipeline.redox.transfer.jsonscan import Span

_WHITESPACE = b" \t\r\n"   # MIME-style line breaks inside base64 are tolerated


def decode(handle: BinaryIO, document: Span, field: str, limit: int,
           write: Optional[Callable[[bytes], object]] = None) -> tuple[int, str]:
    """Stream-decode one document's base64, passing its bytes to ``write`` (None: only
    measure). Returns (decoded size, sha256). Raises RejectedFile: not base64 (invalid), or
    over ``limit`` decoded bytes (too_large; decoding stops there)."""
    digest, size, decoder = hashlib.sha256(), 0, _Base64()
    try:
        for text in jsonscan.read_span(handle, document):
            data = decoder.feed(text)
            size += len(data)
            if size > limit:
                raise RejectedFile(f"the document in {field} is over the upload limit of "
                                   f"{limit} bytes (more than {limit} bytes decoded)", "too_large")
            digest.update(data)
            if write is not None and data:
                write(data)
        tail = decoder.close()
    except (ValueError, binascii.Error) as exc:
        raise RejectedFile(f"{field} is not valid base64 ({exc})", "invalid") from None
    if size + len(tail) > limit:
        raise RejectedFile(f"the document in {field} is over the upload limit of {limit} "
                           f"bytes ({size + len(tail)} bytes decoded)", "too_large")
    digest.update(tail)
    if write is not None and tail:
        write(tail)
    return size + len(tail), digest.hexdigest()


class _Base64:
    """Strict standard base64 fed in pieces: whitespace is skipped, anything else outside the
    alphabet, or data after the padding, is an error; missing final padding is tolerated."""

    def __init__(self) -> None:
        self.pending, self.padded = b"", False

    def feed(self, text: bytes) -> bytes:
        text = text.translate(None, _WHITESPACE)
        if not text:
            return b""
        if self.padded:
            raise ValueError("data after the padding")
        data = self.pending + text
        cut = len(data) - len(data) % 4
        block, self.pending = data[:cut], data[cut:]
        self.padded = block.endswith(b"=")
        return binascii.a2b_base64(block, strict_mode=True) if block else b""

    def close(self) -> bytes:
        if not self.pending:
            return b""
        if self.padded or len(self.pending) == 1:
            raise ValueError("its length is not a whole number of base64 groups")
        return binascii.a2b_base64(self.pending + b"=" * (4 - len(self.pending)), strict_mode=True)
