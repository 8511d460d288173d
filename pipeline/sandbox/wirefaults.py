"""Wire faults: what happens to a reply between the route that made it and the socket.

Each route group (send, upload, token, platform; see faults.GROUPS) has a mode for every reply
(`<group>_wire`), a queue of modes for the next replies (`<group>_wire_next`, taken first), and
a trickle rate (`<group>_trickle_bps`). `shape` applies them to any reply of the group, errors
included, and says what it did so the route can record it. Body-changing modes are made here:

- `huge`: the body padded with spaces after its end to `huge_reply_bytes` (still valid JSON when
  it was JSON), produced chunk by chunk so the sandbox never holds it;
- `gzip_bomb`: `Content-Encoding: gzip` over spaces then the body, `gzip_bomb_bytes` once
  expanded, about a thousandth of that on the wire.

Framing modes (`cut_after_headers`, `cut_mid_body`, `short_body_hang`, `hang`, `no_reply`) are
carried out by transmit.py.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import struct
import zlib

from .wire import CHUNK, BodyStream, Reply

_SPACES = b" " * CHUNK
# The gzip bomb repeats one deflated megabyte of spaces; see _bomb for why that is valid.
_BLOCK = 1024 * 1024
_BLOCKS_PER_WRITE = 64
# ID1 ID2, CM=deflate, no flags, no mtime, XFL=max compression, OS=unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def shape(ctx, group: str, reply: Reply) -> tuple[Reply, dict]:
    """Apply `group`'s wire faults to `reply`; return (reply to send, fields for its record).

    The record fields are `wire` (the mode used) and `trickle_bps`. A reply that is already a
    drop (drop_after_accept_rate) is left alone and consumes nothing from the queue.
    """
    if reply.drop:
        return reply, {"wire": "normal", "trickle_bps": 0.0}
    mode = ctx.state.take_next(f"{group}_wire_next") or ctx.state.fault(f"{group}_wire")
    bps = float(ctx.state.fault(f"{group}_trickle_bps"))
    if mode == "huge":
        reply = padded(reply, ctx.state.fault("huge_reply_bytes"))
    elif mode == "gzip_bomb":
        reply = dataclasses.replace(
            reply, body=b"", stream=gzip_bomb(reply.body, ctx.state.fault("gzip_bomb_bytes")),
            headers=(*reply.headers, ("Content-Encoding", "gzip")))
    reply = dataclasses.replace(reply, wire=mode, trickle_bps=bps,
                                hang_seconds=float(ctx.state.fault("hang_seconds")))
    return reply, {"wire": mode, "trickle_bps": bps}


def padded(reply: Reply, size: int) -> Reply:
    """`reply` with its body followed by spaces up to `size` bytes (never shortened)."""
    body = reply.body
    if size <= len(body):
        return reply

    def chunks():
        yield body
        left = size - len(body)
        while left > 0:
            yield _SPACES[:left] if left < len(_SPACES) else _SPACES
            left -= len(_SPACES)

    return dataclasses.replace(reply, body=b"", stream=BodyStream(size, chunks))


def gzip_bomb(body: bytes, expanded: int) -> BodyStream:
    """One gzip member that inflates to `expanded` bytes: spaces, then `body` (never shortened).

    The spaces come first so their checksum can be cached per size: CRC-32 continues from
    the spaces' CRC over the body, but could not be continued the other way round cheaply.
    """
    pad = max(0, expanded - len(body))
    whole, rest = divmod(pad, _BLOCK)
    block = _deflated_block()
    crc = zlib.crc32(body, _spaces_crc(pad))
    tail = (_deflate(b" " * rest, final=False) + _deflate(body, final=True)
            + struct.pack("<II", crc, (pad + len(body)) & 0xFFFFFFFF))
    length = len(_GZIP_HEADER) + whole * len(block) + len(tail)

    def chunks():
        yield _GZIP_HEADER
        for n in _batches(whole, _BLOCKS_PER_WRITE):
            yield block * n
        yield tail

    return BodyStream(length, chunks)


def _deflate(data: bytes, final: bool) -> bytes:
    """Raw deflate blocks for `data` from a fresh compressor.

    Not final: ends with a sync flush, byte-aligned and without the last-block bit, and every
    back-reference stays inside `data`; so such pieces can be laid one after another and read
    as one stream, which is how the bomb repeats one piece instead of compressing gigabytes.
    """
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return squeeze.compress(data) + squeeze.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


@functools.lru_cache(maxsize=1)
def _deflated_block() -> bytes:
    return _deflate(b" " * _BLOCK, final=False)


@functools.lru_cache(maxsize=8)
def _spaces_crc(count: int) -> int:
    whole, rest = divmod(count, _BLOCK)
    block, crc = b" " * _BLOCK, 0
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(block[:rest], crc)


def _batches(total: int, size: int):
    """Split `total` into runs of at most `size` (fewer, larger writes)."""
    full, rest = divmod(total, size)
    return itertools.chain(itertools.repeat(size, full), [rest] if rest else [])
