"""The sandbox HTTP server: routing, keep-alive connection handling, and the `Sandbox` handle.

Stdlib `ThreadingHTTPServer` speaking HTTP/1.1 (keep-alive), one daemon thread per connection.
Routes are plain functions in the sibling modules; this module owns the sockets, frames the
replies and makes sure a request body is fully consumed (or the connection closed) before the
next request is read. It never logs bodies: with `verbose`, one line per request to stderr.
"""

from __future__ import annotations

import dataclasses
import http.server
import ipaddress
import re
import socket
import sys
import threading
import time
import traceback

from . import auth, control, logs, send, uploads
from .context import Context
from .state import State
from .tokens import TokenStore
from .transmit import content_length, keeps_alive, transmit
from .wire import DRAIN_CAP, BadRequest, BodyReader, Reply, Request, json_reply, phrase

EXACT_ROUTES = {
    ("POST", "/v2/auth/token"): auth.oauth_token,
    ("POST", "/auth/authenticate"): auth.legacy_authenticate,
    ("POST", "/auth/refreshToken"): auth.legacy_refresh,
    ("POST", "/endpoint"): send.handle_send,
    ("POST", "/upload"): uploads.handle_upload,
    ("GET", "/_sandbox/faults"): control.get_faults,
    ("POST", "/_sandbox/faults"): control.set_faults,
    ("POST", "/_sandbox/reset"): control.reset,
    ("POST", "/_sandbox/expire-tokens"): control.expire_tokens,
    ("GET", "/_sandbox/records"): control.records,
}
PATTERN_ROUTES = [
    ("GET", re.compile(r"^/blob/([0-9a-fA-F-]{36})$"), uploads.handle_blob),
    ("GET", re.compile(r"^/platform/v1/organizations/([^/]+)/logs/([^/]+)$"),
     logs.handle_log_lookup),
]


def find_route(method: str, path: str):
    """Return (route, params) for a request, or (None, ()) when nothing matches."""
    route = EXACT_ROUTES.get((method, path))
    if route is not None:
        return route, ()
    for route_method, pattern, handler in PATTERN_ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return handler, match.groups()
    return None, ()


class Handler(http.server.BaseHTTPRequestHandler):
    """One connection; answers requests on it until the client or the server closes it."""

    protocol_version = "HTTP/1.1"
    server_version = "RedoxSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    # Only SandboxHTTPServer builds Handlers: routes need its context, setup/finish its track().
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        # Without this, a small reply written as headers + body can wait on delayed ACKs.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        try:
            super().finish()
        except OSError:
            pass  # the client went away first; nothing to flush to

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        received_at = time.time()
        path, _, query = self.path.partition("?")
        try:
            body = self._body_reader()
            req = Request(method, path, query, self.headers, body, received_at=received_at)
            reply = self._route(req)
            # The next request on this connection starts where this body ends: read it all,
            # or close the connection when that would take too long.
            if not reply.drop and not body.drain(DRAIN_CAP):
                reply = dataclasses.replace(reply, close=True)
        except BadRequest as exc:
            reply = dataclasses.replace(json_reply(400, {"error": str(exc)}), close=True)
        self._send(reply)

    def _body_reader(self) -> BodyReader:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return BodyReader(self.rfile, None, chunked=True)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length < 0:
            raise BadRequest("bad Content-Length")
        return BodyReader(self.rfile, length, chunked=False)

    def _route(self, req: Request) -> Reply:
        route, params = find_route(req.method, req.path)
        if route is None:
            known = any(req.path == p for _, p in EXACT_ROUTES) or any(
                pattern.match(req.path) for _, pattern, _ in PATTERN_ROUTES)
            return json_reply(405 if known else 404,
                              {"error": "method not allowed" if known else "not found"})
        req.params = params
        try:
            return route(self.server.context, req)
        except (BadRequest, OSError):
            raise
        except Exception as exc:  # a sandbox bug must not kill the connection thread silently
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            # Type and location only: exception messages may quote message contents.
            print(f"sandbox: internal error {type(exc).__name__} at "
                  f"{frame.filename}:{frame.lineno}", file=sys.stderr, flush=True)
            return json_reply(500, {"error": "internal sandbox error"})

    def _send(self, reply: Reply) -> None:
        self.close_connection = self.close_connection or not keeps_alive(reply)
        if reply.drop:
            # Accepted and recorded, but the client never hears back: an ambiguous failure.
            self._log_line("dropped")
        head = [f"{self.protocol_version} {reply.status} {phrase(reply.status)}",
                f"Server: {self.server_version}", f"Date: {self.date_time_string()}",
                f"Content-Type: {reply.content_type}",
                f"Content-Length: {content_length(reply)}",
                *(f"{name}: {value}" for name, value in reply.headers)]
        if reply.close:
            head.append("Connection: close")
        transmit(self.connection, self.wfile,
                 ("\r\n".join(head) + "\r\n\r\n").encode("latin-1"), reply)
        if not reply.drop:
            self._log_line(reply.status if reply.wire == "normal"
                           else f"{reply.status} ({reply.wire})")

    def log_request(self, code="-", size="-") -> None:
        self._log_line(code)

    def log_message(self, format, *args) -> None:
        if self.server.context.verbose:
            sys.stderr.write(f"sandbox: {format % args}\n")

    def _log_line(self, outcome) -> None:
        if self.server.context.verbose:
            path = self.path.partition("?")[0]
            sys.stderr.write(f"sandbox: {self.command} {path} {outcome}\n")


class SandboxHTTPServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so stop() can close them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, context_factory, ipv6: bool) -> None:
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        super().__init__(address, Handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.context: Context = context_factory(self.server_address[1])

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._open_lock:
            (self._open.add if add else self._open.discard)(conn)

    def close_connections(self) -> None:
        """Shut down every open connection (idle keep-alive ones included)."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError) and self.context.verbose:
            print(f"sandbox: connection error {type(exc).__name__}", file=sys.stderr)


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sandbox:
    """A Redox-compatible sandbox server, started in-process on a background thread.

    `Sandbox(port=0, latency_ms=20).start()` binds 127.0.0.1 on a free port; `.url` is then the
    base URL. Keyword arguments other than those below are faults (see faults.py); unknown
    names raise ValueError. `public_keys` are extra `auth.ClientKey`s (the packaged dev key is
    always registered), `legacy_credentials` maps extra api keys to secrets, `destinations`
    (when given) is the only set of destination IDs accepted. Non-loopback hosts raise
    ValueError unless `allow_remote`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, public_keys=(),
                 legacy_credentials=None, destinations=None, verbose: bool = False,
                 allow_remote: bool = False, **faults) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"refusing to bind non-loopback host {host} without allow_remote")
        self.host, self.port = host, port
        self.state = State(faults)
        self.tokens = TokenStore()
        keys = [auth.default_key(), *public_keys]
        self._keys = {key.kid: key for key in keys}
        self._legacy = {**auth.DEFAULT_LEGACY, **dict(legacy_credentials or {})}
        self._destinations = (None if destinations is None
                              else frozenset(d.lower() for d in destinations))
        self._verbose = verbose
        self._server: SandboxHTTPServer | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None

    def _context(self, port: int) -> Context:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{port}"
        bases = tuple(dict.fromkeys(
            [base, f"http://127.0.0.1:{port}", f"http://localhost:{port}"]))
        return Context(self.state, self.tokens, self._keys, self._legacy, self._destinations,
                       base, bases, self._verbose)

    def start(self) -> "Sandbox":
        """Bind and serve on a daemon thread; returns self. Raises OSError if binding fails."""
        self._server = SandboxHTTPServer((self.host, self.port), self._context,
                                         ipv6=":" in self.host)
        self.port = self._server.server_address[1]
        self._url = self._server.context.base_url
        # A short poll interval makes stop() (shutdown) return promptly.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:8787` (valid after start())."""
        if self._url is None:
            raise RuntimeError("sandbox not started")
        return self._url

    def faults(self, **updates) -> dict:
        """Merge fault updates (as `POST /_sandbox/faults`); returns the full fault set."""
        return self.state.update_faults(updates)

    def reset(self) -> None:
        """As `POST /_sandbox/reset`."""
        self.state.reset()

    def records(self, bodies: bool = False) -> dict:
        """As `GET /_sandbox/records`."""
        return self.state.records(bodies)

    def stop(self) -> None:
        """Stop serving and close the listening socket and every open connection."""
        if self._server is None:
            return
        if self._thread is None:
            raise RuntimeError("sandbox server exists but its serving thread was never made")
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
