"""moto's S3 in server mode on 127.0.0.1, for the benchmarks (common.S3Server starts it).

    python scripts/bench/s3server.py [--port 0]

Prints ``s3server listening on http://127.0.0.1:PORT`` once bound and serves (threaded) until
SIGTERM/SIGINT; state lives in this process's memory.

One correction to moto, as in the tests: moto checks a conditional write's precondition
(If-None-Match / If-Match) and then writes, in two steps, so two concurrent conditional PUTs
can both pass the check. S3 decides them atomically (one wins, the others get 412/409), and the
pipeline's claims rely on that: conditional writes (and only they) are serialised here.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server
    logging.getLogger("werkzeug").setLevel(logging.ERROR)      # no access log line per request
    app = atomic_conditional_writes(DomainDispatcherApplication(create_backend_app))
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
