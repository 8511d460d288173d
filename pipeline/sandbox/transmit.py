"""Putting one `Reply` on the socket, including the wire faults that break HTTP framing.

Normal replies leave in one write (status line, headers and body together: one syscall, one
TCP segment for small replies). Streamed bodies (`Reply.stream`) are written chunk by chunk.
With `trickle_bps` every byte, status line included, is written alone and followed by a pause
of 1/bps seconds: a client whose timeout applies per read never times out, however long the
whole reply takes. The framing modes (faults.WIRE_MODES):

- `no_reply`: the connection is shut down without a byte;
- `hang`: nothing is sent until the client closes, sends more, or `hang_seconds` pass;
- `cut_after_headers`: the head is sent, then the connection is closed;
- `cut_mid_body`: the head and the first half of the body, then the connection is closed;
- `short_body_hang`: Content-Length claims 1,000 bytes more than are sent; after the body the
  connection hangs as in `hang`, then closes.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Iterator

from .wire import Reply

CLAIMED_EXTRA = 1000
# Modes after which the connection cannot carry another request.
CLOSING_MODES = frozenset({"no_reply", "hang", "cut_after_headers", "cut_mid_body",
                           "short_body_hang"})


def content_length(reply: Reply) -> int:
    """The Content-Length the head announces (more than is sent for `short_body_hang`)."""
    return reply.length + (CLAIMED_EXTRA if reply.wire == "short_body_hang" else 0)


def keeps_alive(reply: Reply) -> bool:
    """False when the reply ends the connection (a drop, `close`, or a closing wire mode)."""
    return not (reply.close or reply.drop or reply.wire in CLOSING_MODES)


def transmit(conn: socket.socket, wfile, head: bytes, reply: Reply) -> None:
    """Write `head` (status line and headers, with the blank line) and the body of `reply`
    to the connection, as its wire mode and trickle rate say. OSError means the client left.
    """
    if reply.drop or reply.wire == "no_reply":
        _shut(conn)
        return
    if reply.wire == "hang":
        wait_for_client(conn, reply.hang_seconds)
        return
    write = _trickle(wfile, reply.trickle_bps) if reply.trickle_bps else wfile.write
    if reply.wire == "cut_after_headers":
        write(head)
        return
    chunks = _body(reply)
    if reply.wire == "cut_mid_body":
        write(head)
        for chunk in _first(chunks, reply.length // 2):
            write(chunk)
        return
    if reply.stream is None and not reply.trickle_bps:
        write(head + reply.body)
    else:
        write(head)
        for chunk in chunks:
            write(chunk)
    if reply.wire == "short_body_hang":
        wait_for_client(conn, reply.hang_seconds)


def wait_for_client(conn: socket.socket, seconds: float) -> None:
    """Block until the socket is readable (the client closed or sent more; a sandbox stop
    shuts every connection down, which counts) or `seconds` pass."""
    try:
        select.select([conn], [], [], seconds)
    except (OSError, ValueError):
        pass  # already closed


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _body(reply: Reply) -> Iterator[bytes]:
    if reply.stream is not None:
        return reply.stream.chunks()
    return iter([reply.body])


def _first(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    """The first `count` bytes of `chunks`."""
    for chunk in chunks:
        if count <= 0:
            return
        yield chunk[:count]
        count -= len(chunk)


def _trickle(wfile, bps: float):
    gap = 1.0 / bps

    def write(data: bytes) -> None:
        for i in range(len(data)):
            wfile.write(data[i:i + 1])
            time.sleep(gap)
    return write
