"""jsonscan: one streaming pass over a large JSON file that sets chosen strings aside.

A file over the send limit is mostly one or two huge base64 strings. Parsing it whole would
hold the text, the Python string and then the decoded bytes at once (bounded memory).
:func:`scan` instead reads the file in chunks and copies everything *except* the strings the
caller wants set aside into a small *skeleton*: each of those strings becomes a placeholder
and a :class:`Span` (its byte offsets in the file). The skeleton is then parsed strictly like
any message (message.parse), and each span is read again on demand, in chunks, with
:func:`read_span` (JSON escapes undone) or :func:`span_text` (a small string, whole).

The scanner only tracks structure (objects, arrays, keys, string boundaries); grammar errors
outside the set-aside strings are left for the strict parse of the skeleton to report.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Optional

from pipeline.errors import RejectedFile
from pipeline.message import MAX_DEPTH

CHUNK = 1 << 20
# The body of a JSON string up to its closing quote, in the "unrolled loop" form (linear time,
# no backtracking). It stops at a quote, or at the end of the buffer (possibly just before a
# lone trailing backslash whose escaped byte has not been read yet).
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_SPACE = re.compile(rb"[ \t\r\n]*")
_LITERAL = re.compile(rb'[^ \t\r\n{}\[\],:"]*')
_ESCAPE = re.compile(rb"\\(?:u[0-9a-fA-F]{4}|[^u])", re.DOTALL)
_SIMPLE = {b"/": b"/", b"\\": b"\\", b'"': b'"', b"b": b"\b", b"f": b"\f", b"n": b"\n",
           b"r": b"\r", b"t": b"\t"}
KEY_CAP = 64 * 1024   # longer keys are not any field we look for; they are copied, not decoded

Path = tuple  # keys (str) and array indexes (int) from the top of the document


@dataclass(frozen=True)
class Span:
    """A string set aside: ``path`` to it, its content's offsets in the file (``start`` is the
    byte after the opening quote, ``end`` the closing quote), and its placeholder's value."""
    path: Path
    start: int
    end: int
    placeholder: str

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class Skeleton:
    """The file with its set-aside strings replaced by placeholders.

    ``text`` is None when the skeleton grew over the cap (it was then only measured);
    ``size`` is its full length either way.
    """
    text: Optional[bytes]
    size: int
    spans: list[Span] = field(default_factory=list)


def scan(handle: BinaryIO, set_aside: Callable[[Path], bool], cap: int,
         chunk: int = CHUNK) -> Skeleton:
    """Read ``handle`` to its end; every string value whose path ``set_aside`` accepts becomes
    a Span. Memory: one chunk plus the skeleton, which is kept only up to ``cap`` bytes.

    Raises RejectedFile for a file that ends inside a string or nests deeper than MAX_DEPTH.
    """
    return _Scanner(handle, set_aside, cap, chunk).run()


class _Scanner:
    def __init__(self, handle: BinaryIO, set_aside: Callable[[Path], bool], cap: int, chunk: int):
        self.handle, self.set_aside, self.cap, self.chunk = handle, set_aside, cap, chunk
        self.buf, self.pos, self.base, self.eof = b"", 0, 0, False
        self.out: Optional[bytearray] = bytearray()
        self.size = 0
        self.spans: list[Span] = []
        # one frame per open container: [is_object, key or index, expecting a key]
        self.frames: list[list] = []
        self.nonce = secrets.token_hex(8)

    def run(self) -> Skeleton:
        while True:
            space = _match_end(_SPACE, self.buf, self.pos)
            if space > self.pos:
                # only the line breaks are kept: a strict-parse error then names the file's line
                self._emit(b"\n" * self.buf.count(b"\n", self.pos, space))
                self.pos = space
            if self.pos >= len(self.buf):
                if not self._fill():
                    break
                continue
            char = self.buf[self.pos:self.pos + 1]
            if char == b'"':
                self._string()
            elif char in b"{[":
                if len(self.frames) >= MAX_DEPTH:
                    raise RejectedFile(f"JSON nested deeper than {MAX_DEPTH} levels", "invalid")
                self.frames.append([char == b"{", 0, char == b"{"])
                self._take(1)
            elif char in b"}]":
                if self.frames:
                    self.frames.pop()
                self._take(1)
            elif char in b",:":
                self._separator(char)
                self._take(1)
            else:
                self._literal()
        text = bytes(self.out) if self.out is not None else None
        return Skeleton(text, self.size, self.spans)

    # -- input ---------------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Drop what was consumed and read one more chunk; False at the end of the file."""
        data = self.handle.read(self.chunk) if not self.eof else b""
        self.buf, self.base, self.pos = self.buf[self.pos:] + data, self.base + self.pos, 0
        self.eof = not data
        return bool(data)

    def _take(self, n: int) -> None:
        self._emit(self.buf[self.pos:self.pos + n])
        self.pos += n

    def _emit(self, data: bytes) -> None:
        self.size += len(data)
        if self.out is not None:
            self.out += data
            if len(self.out) > self.cap:
                self.out = None      # over the cap: from now on only measured

    # -- tokens --------------------------------------------------------------------------------
    def _separator(self, char: bytes) -> None:
        if not self.frames:
            return
        frame = self.frames[-1]
        if char == b":":
            frame[2] = False
        elif frame[0]:
            frame[2] = True
        else:
            frame[1] += 1

    def _literal(self) -> None:
        while True:
            end = _match_end(_LITERAL, self.buf, self.pos)
            if end < len(self.buf) or self.eof or not self._fill():
                break
        end = _match_end(_LITERAL, self.buf, self.pos)
        self._take(max(1, end - self.pos))   # a stray byte is copied; the strict parse names it

    def _string(self) -> None:
        frame = self.frames[-1] if self.frames else None
        is_key = frame is not None and frame[0] and frame[2]
        path = () if is_key else tuple(f[1] for f in self.frames)
        aside = not is_key and self.set_aside(path)
        if aside:
            self.pos += 1                     # the opening quote goes with the placeholder
        else:
            self._take(1)
        start = self.base + self.pos
        key = bytearray() if is_key else None
        while True:
            end = _match_end(_STRING_BODY, self.buf, self.pos)
            piece = self.buf[self.pos:end]
            if not aside:
                self._emit(piece)
            if key is not None and len(key) <= KEY_CAP:
                key += piece
            self.pos = end
            if end < len(self.buf) and self.buf[end:end + 1] == b'"':
                break
            if not self._fill():
                raise RejectedFile("truncated JSON (the file ends inside a string)", "invalid")
        stop = self.base + self.pos
        self.pos += 1                         # the closing quote
        if aside:
            placeholder = f"\x00pipeline-span-{self.nonce}-{len(self.spans)}"
            self.spans.append(Span(path, start, stop, placeholder))
            self._emit(json.dumps(placeholder).encode("ascii"))
        else:
            self._emit(b'"')
        if is_key:
            if frame is None or key is None:     # is_key implies both were set above
                raise RuntimeError("jsonscan: an object key was read without its object or buffer")
            frame[1] = _key(bytes(key)) if len(key) <= KEY_CAP else None


def _match_end(pattern: re.Pattern[bytes], buf: bytes, pos: int) -> int:
    """Where ``pattern`` stops matching at ``pos``. The patterns used here all match the empty
    string, so they never fail; a failure is a broken pattern, not bad input."""
    found = pattern.match(buf, pos)
    if found is None:
        raise RuntimeError(f"jsonscan: pattern {pattern.pattern!r} failed to match")
    return found.end()


def _key(raw: bytes):
    try:
        return json.loads(b'"' + raw + b'"')
    except ValueError:
        return None                           # the strict parse of the skeleton reports it


def read_span(handle: BinaryIO, span: Span, chunk: int = CHUNK) -> Iterator[bytes]:
    """The span's content with JSON escapes undone, in pieces of about ``chunk`` bytes.

    ``\\uXXXX`` escapes come out as UTF-8. Raises ValueError for a malformed escape.
    """
    handle.seek(span.start)
    left, carry = span.length, b""
    while left > 0 or carry:
        data = handle.read(min(chunk, left)) if left > 0 else b""
        if left > 0 and not data:
            raise ValueError("the file is shorter than when it was scanned")
        left -= len(data)
        piece = carry + data
        if b"\\" not in piece:
            carry = b""
            yield piece
            continue
        text, carry = _unescape(piece)
        if carry and (left <= 0 or len(carry) > 6):
            raise ValueError("malformed escape sequence in a JSON string")
        yield text


def _unescape(piece: bytes) -> tuple[bytes, bytes]:
    """Undo every complete escape in ``piece``; an incomplete one at its end is carried over."""
    out, last = [], 0
    for match in _ESCAPE.finditer(piece):
        out.append(piece[last:match.start()])
        out.append(_unescape_one(match.group()))
        last = match.end()
    rest = piece[last:]
    cut = rest.find(b"\\")
    if cut < 0:
        return b"".join(out) + rest, b""
    out.append(rest[:cut])
    return b"".join(out), rest[cut:]


def _unescape_one(escape: bytes) -> bytes:
    if escape[1:2] == b"u":
        return chr(int(escape[2:], 16)).encode("utf-8", "surrogatepass")
    simple = _SIMPLE.get(escape[1:2])
    if simple is None:
        raise ValueError("invalid escape sequence in a JSON string")
    return simple


def span_text(handle: BinaryIO, span: Span) -> str:
    """The span's content as a Python string (strict JSON rules). For small spans only.

    Raises ValueError when it is not a valid JSON string.
    """
    handle.seek(span.start)
    raw = handle.read(span.length)
    value = json.loads(b'"' + raw + b'"')
    value.encode("utf-8")                  # a lone surrogate escape is not text
    return value
