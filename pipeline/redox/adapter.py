"""requests' HTTPAdapter, extended at the points it offers for subclassing.

- The connection pool of each origin is looked up once, not rebuilt from the URL, the TLS
  settings and the proxy on every request (requests' per-call pool-key work was the biggest
  part of its CPU cost per SEND).
- Each pool's connections tell the transport when a request has been written and its reply is
  awaited (``on_reply_wait(sock)``): the moment from which the reply's total deadline runs
  (deadline.py), and the line between "cannot have reached Redox" and "may have".
- And, once connected, just before a request is written (``on_write(conn)``): where the rate
  limiter is waited for, so that a request on a new connection is counted when it leaves, not
  a round trip (the TCP, and TLS, handshakes) before it reaches Redox.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import requests
import requests.adapters
import requests.cookies

ReplyWait = Callable[[object], None]
BeforeWrite = Callable[[object], None]


class NoCookies(requests.cookies.RequestsCookieJar):
    """Redox's API is stateless: a cookie jar that keeps nothing (so it never grows, and no
    reply's Set-Cookie is ever parsed or sent back)."""

    def extract_cookies(self, response, request) -> None:
        return None

    def set_cookie(self, cookie, *args, **kwargs) -> None:
        return None


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose pools are cached per (origin, verify) and whose connections call
    ``on_reply_wait`` with their socket before waiting for each reply."""

    def __init__(self, on_reply_wait: ReplyWait, pool_maxsize: int,
                 on_write: Optional[BeforeWrite] = None):
        self._on_reply_wait = on_reply_wait
        self._on_write = on_write
        self._pools: dict[tuple[str, object], object] = {}
        self._full_url: dict[str, bool] = {}
        self._watched: dict[type, type] = {}
        self._lock = threading.Lock()
        # pool_connections: the few origins one transport talks to (API, uploads, auth,
        # Platform API) keep their pools; max_retries 0: a SEND is never repeated here
        super().__init__(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=0)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """The origin's pool, found once (the transport resolves proxies once per origin)."""
        key = (origin_of(request.url), verify)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
                self._watch(pool)
                self._pools[key] = pool
        return pool

    def request_url(self, request, proxies) -> str:
        """The path, or the whole URL for a plain-HTTP proxy: decided once per origin."""
        origin = origin_of(request.url)
        full = self._full_url.get(origin)
        if full is None:
            full = self._full_url[origin] = super().request_url(request, proxies) != request.path_url
        return super().request_url(request, proxies) if full else request.path_url

    def close(self) -> None:
        with self._lock:
            self._pools.clear()
        super().close()

    def _watch(self, pool) -> None:
        """Make ``pool`` create connections that report their reply waits. The pool's
        connection class is the one hook between a request being written and its reply being
        read; requests offers none of its own."""
        base = pool.ConnectionCls
        if getattr(base, "reports_reply_wait", False):
            return
        watched = self._watched.get(base)
        if watched is None:
            watched = self._watched[base] = _reporting(base, self._on_reply_wait, self._on_write)
        pool.ConnectionCls = watched


def _reporting(base: Any, on_reply_wait: ReplyWait, on_write: Optional[BeforeWrite]) -> type:
    """A subclass of the connection class ``base`` that calls ``on_write(conn)`` once it is
    connected, just before a request is written, and ``on_reply_wait(sock)`` once the request
    is written, just before it waits for the reply."""

    class Reporting(base):
        reports_reply_wait = True

        def request(self, *args, **kwargs):
            if on_write is not None:
                on_write(self)
            return super().request(*args, **kwargs)

        def getresponse(self, *args, **kwargs):
            on_reply_wait(self.sock)
            return super().getresponse(*args, **kwargs)

    Reporting.__name__ = Reporting.__qualname__ = f"Reporting{base.__name__}"
    return Reporting


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL (what the pool is chosen by)."""
    scheme, _, rest = url.partition("://")
    return scheme.lower() + "://" + rest.split("/", 1)[0].split("?", 1)[0].lower()
