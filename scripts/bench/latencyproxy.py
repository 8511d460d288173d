"""A TCP proxy on 127.0.0.1 that puts a network's distance between a client and a server.

    python scripts/bench/latencyproxy.py --target 127.0.0.1:8787 --rtt-ms 250 [--port 0]

Prints ``latencyproxy listening on http://127.0.0.1:PORT`` once bound, then forwards every
connection to ``--target`` until SIGTERM/SIGINT. The benchmarks put it in front of the Redox
sandbox (250 ms, 1 s) and of moto's S3 (30 ms), so both look as far away as they are in
production, whatever protocol runs over them.

What it models: a path with a one-way delay of RTT/2 in each direction and no bandwidth limit
or loss. Each direction is a delay line: every chunk read from one side is written to the other
RTT/2 after it was read, in order, whatever was sent before it. So:

- an HTTP/1.1 request and its response on a kept-alive connection take one RTT more than
  without the proxy, however many packets either is made of (a large body is not delayed
  per chunk: the chunks travel together, RTT/2 behind);
- a new connection costs one RTT more before its first byte is forwarded (the TCP handshake);
  a TLS handshake's further round trips are not modelled: the benchmarks speak plain HTTP;
- a client's connect() still returns at once: the handshake's RTT is paid when its first
  request is held back instead, which gives the same time to the first response.

The sandbox's own ``latency_ms`` fault differs: it is server time (a worker thread sleeps
before answering), only on the SEND and upload endpoints, and only for the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys

CHUNK = 256 * 1024
# Bounded so a fast sender against a slow reader is held back (backpressure) instead of
# buffering without limit; 64 chunks is far more than a round trip's worth at loopback speed.
QUEUE_CHUNKS = 64


async def delay_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     one_way: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``one_way`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def take() -> None:
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            await line.put((loop.time() + one_way, data))
            if not data:
                return

    async def give() -> None:
        while True:
            due, data = await line.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:                       # the sender finished: pass the half-close on
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return                         # the receiver went away: nothing to deliver to

    taker = asyncio.create_task(take())
    try:
        await give()
    finally:
        taker.cancel()


def no_delay(writer: asyncio.StreamWriter) -> None:
    """Small chunks leave as soon as they are due: Nagle would add its own delay on top."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                 host: str, port: int, rtt: float) -> None:
    """One client connection: the handshake's round trip, then two delay lines."""
    no_delay(client_w)
    server_w = None
    try:
        await asyncio.sleep(rtt)              # SYN, SYN-ACK: one round trip before data flows
        server_r, server_w = await asyncio.open_connection(host, port)
        no_delay(server_w)
        # Both directions run until both have finished; a reset on either side ends both.
        await asyncio.gather(delay_line(client_r, server_w, rtt / 2),
                             delay_line(server_r, client_w, rtt / 2))
    except (ConnectionError, OSError):
        pass
    finally:
        for w in (client_w, server_w):
            if w is not None:
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def serve(listen_port: int, host: str, port: int, rtt: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, host, port, rtt),
                                        "127.0.0.1", listen_port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"latencyproxy listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, required=True,
                        help="round-trip time added: half on the way there, half back")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--target must be on loopback (this is a benchmark tool)")
    asyncio.run(serve(args.port, host, int(port), args.rtt_ms / 1000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
