"""Prometheus metrics for the service (the only module that imports prometheus_client).

Served on ``127.0.0.1:<metrics.port>`` (``0`` picks a free port; the address is logged) while
``run`` works as a service: ``/metrics`` in Prometheus' text format and, when a health check is
given, ``/healthz`` (service/health.py) as JSON. The runner and the per-file work report
through a few hooks:

    claimed()                          a file was claimed
    finished(status, reason_kind)      a file ended in done/ or failed/
    observe(kind, status, elapsed)     one SEND or upload answered (status None: no answer)
    retried()                          a retry was scheduled
    gauges(in_flight, waiting_retry, oldest_mtime)   the loop's current picture

Each ``Metrics`` has its own registry, so several can live in one process (tests).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

HealthCheck = Callable[[], tuple[int, dict]]

# SEND latency buckets up to Redox's own 120 s limit and our 130 s timeout
SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 130.0)


class Metrics:
    """The service's counters, gauges and SEND-latency histogram."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.files_claimed = Counter("redox_pipeline_files_claimed", "Files claimed from the inbox",
                                     registry=r)
        self.files_done = Counter("redox_pipeline_files_done", "Files that ended in done/", registry=r)
        self.files_failed = Counter("redox_pipeline_files_failed",
                                    "Files that ended in failed/, by reason class (the sidecar's reason_kind)",
                                    ["reason"], registry=r)
        self.sends = Counter("redox_pipeline_sends", "SEND requests answered, by HTTP status "
                             "(none: no answer, e.g. a timeout)", ["status"], registry=r)
        self.uploads = Counter("redox_pipeline_uploads", "Document uploads answered, by HTTP status",
                               ["status"], registry=r)
        self.retries = Counter("redox_pipeline_retries", "Retries scheduled", registry=r)
        self.in_flight = Gauge("redox_pipeline_files_in_flight", "Files being worked on right now",
                               registry=r)
        self.waiting_retry = Gauge("redox_pipeline_files_waiting_retry",
                                   "Claimed files waiting for a scheduled retry", registry=r)
        self.oldest_waiting = Gauge("redox_pipeline_oldest_waiting_seconds",
                                    "Age of the oldest file not yet finished (in the inbox or claimed)",
                                    registry=r)
        self.send_seconds = Histogram("redox_pipeline_send_seconds", "SEND request latency",
                                      buckets=SEND_BUCKETS, registry=r)
        self._oldest: Optional[float] = None
        self.oldest_waiting.set_function(self._oldest_age)
        self._server: Optional[ThreadingHTTPServer] = None

    # -- hooks ---------------------------------------------------------------------------
    def claimed(self) -> None:
        self.files_claimed.inc()

    def finished(self, status: str, reason_kind: Optional[str]) -> None:
        if status == "done":
            self.files_done.inc()
        else:
            self.files_failed.labels(reason=reason_kind or "unknown").inc()

    def observe(self, kind: str, *, status: Optional[int] = None, elapsed: Optional[float] = None) -> None:
        label = str(status) if status is not None else "none"
        if kind == "send":
            self.sends.labels(status=label).inc()
            if elapsed is not None:
                self.send_seconds.observe(elapsed)
        elif kind == "upload":
            self.uploads.labels(status=label).inc()

    def retried(self) -> None:
        self.retries.inc()

    def gauges(self, *, in_flight: int, waiting_retry: int, oldest_mtime: Optional[float]) -> None:
        self.in_flight.set(in_flight)
        self.waiting_retry.set(waiting_retry)
        self._oldest = oldest_mtime

    def _oldest_age(self) -> float:
        oldest = self._oldest
        return max(0.0, self.clock() - oldest) if oldest is not None else 0.0

    # -- the endpoint --------------------------------------------------------------------
    def serve(self, port: int, addr: str = "127.0.0.1", health: Optional[HealthCheck] = None) -> int:
        """Serve ``/metrics`` (and ``/healthz`` when ``health`` is given) on ``addr:port`` in a
        daemon thread; returns the port bound. OSError when the port is taken."""
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz" and health is not None:
                    status, doc = health()
                    self._reply(status, "application/json", json.dumps(doc).encode())
                elif path in ("/metrics", "/"):
                    self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                else:
                    self._reply(404, "text/plain; charset=utf-8", b"not found\n")

            def _reply(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:   # scrapes are not news
                pass

        family_addr = addr.strip("[]")
        server_class = ThreadingHTTPServer
        if ":" in family_addr:
            import socket

            class V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6
            server_class = V6
        server = server_class((family_addr, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        self._server = server
        return server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
