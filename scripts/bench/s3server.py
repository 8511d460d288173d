"""moto's S3 in server mode on 127.0.0.1, for the benchmarks (common.S3Server starts it).

    python scripts/bench/s3server.py [--port 0]

Prints ``s3server listening on http://127.0.0.1:PORT`` once bound and serves (threaded) until
SIGTERM/SIGINT; state lives in this process's memory.

One correction to moto, as in the tests: moto checks a conditional write's precondition
(If-None-Match / If-Match) and then writes, in two steps, so two concurrent conditional PUTs
can both pass the check. S3 decides them atomically (one wins, the others get 412/409), and the
pipeline's claims rely on that: conditional writes (and only they) are serialised here.

It also counts the requests it serves by kind (LIST, HEAD, GET, PUT, COPY, DELETE): ``GET
/__counts`` answers them as JSON and ``DELETE /__counts`` starts again from zero, so a benchmark
can tell how many S3 requests a file cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any, Callable, Iterable


def atomic_conditional_writes(app: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """The WSGI ``app`` with conditional writes decided one at a time."""
    lock = threading.Lock()

    def wrapped(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        conditional = environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE") and (
            "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ)
        if not conditional:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))
    return wrapped


def counting(app: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """The WSGI ``app``, counting what it serves; ``/__counts`` reads (GET) or resets (DELETE)."""
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def kind(environ: dict) -> str:
        method = environ.get("REQUEST_METHOD", "")
        query = environ.get("QUERY_STRING", "")
        if method == "GET" and environ.get("PATH_INFO", "").count("/") <= 1 and (
                "list-type" in query or "prefix" in query):
            return "LIST"
        if method == "PUT" and "HTTP_X_AMZ_COPY_SOURCE" in environ:
            return "COPY"
        return method

    def wrapped(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/__counts":
            with lock:
                body = json.dumps(counts).encode()
                if environ.get("REQUEST_METHOD") == "DELETE":
                    counts.clear()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        what = kind(environ)
        with lock:
            counts[what] = counts.get(what, 0) + 1
        return app(environ, start_response)
    return wrapped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server
    logging.getLogger("werkzeug").setLevel(logging.ERROR)      # no access log line per request
    app = counting(atomic_conditional_writes(DomainDispatcherApplication(create_backend_app)))
    server = make_server("127.0.0.1", args.port, app, threaded=True,
                         request_handler=MotoRequestHandler)
    # Many clients at once (the fill's threads, workers, the proxy's connections).
    server.socket.listen(1024)

    def shutdown(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"s3server listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
