"""HTTP to Redox: one requests Session per transport, settings resolved once, replies bounded.

Every request is a prepared request handed to ``Session.send``: proxies and the CA bundle come
from requests' own environment handling (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY,
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), merged once per origin rather than on every call; no
redirect is followed, no cookie kept. A reply is read as a stream, at most ``limit`` bytes, and
must be over within ``read_timeout`` of the request being written (deadline.py), however slowly
it trickles. Every way a request can fail without an HTTP reply becomes a TransientDelivery
that says whether Redox may have seen it (failures.py).

``before_write`` (the rate limiter, and the journal's record of the attempt) runs once the
connection is established and just before the request is written: the moment it *departs*.
A new connection's handshake therefore never sits between the limiter and Redox, and a reply's
``elapsed`` is counted from the departure (what Redox's latency is, without the wait for the
limiter or a handshake).

Where connect() returns before the path to Redox is open (a sidecar or egress proxy on this
host that accepts at once and opens its own connection onward only when the first bytes come,
as the benchmarks' latency proxy does), the handshake is paid by the first request instead,
after it left the limiter. So the first request on a new connection departs no sooner than one
round trip (the quickest exchange seen lately) after connect(): it costs that round trip once
per connection, and keeps its arrival where the limiter counted it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Union

import requests

from pipeline import __version__
from pipeline.errors import TransientDelivery
from pipeline.redox.adapter import NoCookies, WatchedAdapter, origin_of
from pipeline.redox.deadline import Exchange, Watchdog
from pipeline.redox.failures import failure
from pipeline.redox.replies import media_type

USER_AGENT = f"redox-pipeline/{__version__}"
# enough for any real SEND, token, upload or Platform API reply; more is not one of them
MAX_REPLY_BYTES = 1 << 20
READ_CHUNK = 64 * 1024
MAX_OPENING_WAIT = 5.0     # seconds a new connection's first request waits at most (see above)
# identity: a compressed reply could expand to gigabytes from a few kilobytes; one that comes
# compressed anyway is not read (replies.py treats it as unreadable)
_BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json",
                 "Accept-Encoding": "identity"}
_LENGTH = re.compile(r"[0-9]{1,19}")
_NO_COOKIES = NoCookies()


@dataclass(frozen=True)
class Reply:
    """An HTTP reply. ``body`` is b"" when it was not read, and ``unread`` then says why."""
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float
    unread: str = ""

    def describe(self) -> str:
        """What the reply was, without a word of what it said: ``text/html, 1234 bytes``."""
        declared = self.headers.get("Content-Length", "") if self.headers else ""
        size = (f"{declared} bytes" if _LENGTH.fullmatch(declared.strip()) else "unknown size") \
            if self.unread else f"{len(self.body)} bytes"
        return f"{media_type(self.headers)}, {size}" + (f", {self.unread}" if self.unread else "")


class _Held(Exception):
    """Carries what ``before_write`` raised through requests and urllib3 untouched (they
    would take an OSError for a connection failure)."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


@dataclass(frozen=True)
class _Route:
    verify: Union[bool, str]
    proxies: dict = field(default_factory=dict)


class Transport:
    """HTTP with keep-alive connection reuse; the seam tests may replace with a fake.

    ``request`` returns a Reply for any HTTP status, and raises TransientDelivery when no
    usable reply came (``maybe_seen`` False only when the request cannot have left).
    ``verify``: False only for the loopback sandbox opt-out; the environment can name a CA
    bundle but never switch verification off. Thread-safe: workers share one transport.
    """

    def __init__(self, connect_timeout: float, read_timeout: float, verify: bool = True,
                 pool_size: int = 10):
        self.timeout = (connect_timeout, read_timeout)
        self.read_timeout = read_timeout
        self.verify = verify
        self._watchdog = Watchdog(read_timeout)
        self._local = threading.local()
        self._routes: dict[str, _Route] = {}
        self._round_trip = 0.0          # the quickest exchange lately (0: none seen yet)
        # urllib3 logs the unparsed part of a malformed reply head at WARNING: reply content
        # (which may echo a patient's name) is kept out of log lines
        logging.getLogger("urllib3.connection").setLevel(logging.ERROR)
        self.session = requests.Session()
        self.session.cookies = NoCookies()
        adapter = WatchedAdapter(self._reply_awaited, pool_maxsize=max(4, pool_size),
                                 on_write=self._writing)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    departs = True       # request() takes before_write (a test's fake transport may not)

    def request(self, method: str, url: str, *, headers: Optional[dict] = None, data=None,
                json_body=None, body=None, limit: int = MAX_REPLY_BYTES,
                before_write: Optional[Callable[[], None]] = None) -> Reply:
        """One exchange. ``body``: bytes, or a file-like object with a length (streamed, with
        that Content-Length); ``data``: a form (dict); ``json_body``: a JSON document.
        A reply body over ``limit`` bytes, or compressed, is not read (``Reply.unread``).
        ``before_write``: called once, connected, just before the request is written; what it
        raises ends the request unsent and is raised here as it was."""
        exchange = Exchange()
        self._local.exchange = exchange
        self._local.before_write = before_write
        self._local.departed = None
        started = time.monotonic()
        try:
            prepared = _prepare(method, url, headers, data, json_body, body)
            route = self._route(url)
            response = self.session.send(prepared, stream=True, timeout=self.timeout,
                                         verify=route.verify, proxies=route.proxies, cert=None,
                                         allow_redirects=False)
            try:
                content, unread = _read(response, limit, exchange)
            finally:
                response.close()
            if exchange.expired:
                # cut short by the deadline: http.client takes a head cut off mid-line for a
                # whole one, so what was read proves nothing
                raise requests.exceptions.Timeout("the reply's deadline passed")
        except _Held as held:
            raise held.original from None
        except (requests.RequestException, OSError) as exc:
            raise failure(exc, exchange, origin_of(url), time.monotonic() - self._since(started),
                          self.read_timeout) from None
        finally:
            self._watchdog.disarm(exchange)
            self._local.exchange = None
            self._local.before_write = None
        elapsed = time.monotonic() - self._since(started)
        quickest = self._round_trip
        # the quickest lately: drifts up slowly when every exchange is slower
        self._round_trip = elapsed if not quickest else min(elapsed, quickest + 0.05 * (elapsed - quickest))
        return Reply(response.status_code, response.headers, content, elapsed, unread)

    def _since(self, started: float) -> float:
        """When the exchange began: its departure, else when it was asked for."""
        departed = getattr(self._local, "departed", None)
        self._local.departed = None
        return departed if departed is not None else started

    def _writing(self, conn) -> None:
        """The connection is about to write a request: connect first if it is new, then
        let the request depart (``before_write``, once per request)."""
        hook = getattr(self._local, "before_write", None)
        if hook is None:
            return
        self._local.before_write = None
        if conn.sock is None:
            conn.connect()
            time.sleep(min(self._round_trip, MAX_OPENING_WAIT))
        try:
            hook()
        except BaseException as exc:
            raise _Held(exc) from None
        self._local.departed = time.monotonic()

    def _reply_awaited(self, sock) -> None:
        """The request is written: from now on its reply has ``read_timeout`` to finish."""
        exchange = getattr(self._local, "exchange", None)
        if exchange is not None and not exchange.sent:
            self._watchdog.arm(exchange, sock, self.read_timeout)

    def _route(self, url: str) -> _Route:
        """Proxies and CA bundle for ``url``'s origin, from the environment, looked up once."""
        origin = origin_of(url)
        route = self._routes.get(origin)
        if route is None:
            try:
                merged = self.session.merge_environment_settings(url, {}, None, self.verify, None)
            except ValueError:
                raise requests.exceptions.InvalidURL("unusable proxy settings") from None
            verify: Union[bool, str] = False
            if self.verify:
                # a bundle named by the environment, else requests' own; an empty variable
                # (CURL_CA_BUNDLE="") does not switch verification off
                verify = merged["verify"] or True
            if isinstance(verify, str) and not os.path.exists(verify):
                raise TransientDelivery("the CA bundle named by REQUESTS_CA_BUNDLE or "
                                        "CURL_CA_BUNDLE does not exist")
            route = self._routes[origin] = _Route(verify, dict(merged["proxies"] or {}))
        return route

    def close(self) -> None:
        self._watchdog.close()
        self.session.close()
        self._routes.clear()


def _prepare(method: str, url: str, headers: Optional[dict], data, json_body,
             body) -> requests.PreparedRequest:
    """A prepared request: the URL prepared once per URL, headers validated (a CR or LF in a
    value raises InvalidHeader here, before anything is sent), a sized body never chunked."""
    all_headers = dict(_BASE_HEADERS)
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    elif data is not None:
        body = urllib.parse.urlencode(data).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    all_headers.update(headers or {})
    prepared = requests.PreparedRequest()
    prepared.prepare_method(method)
    prepared.url = _prepared_url(url)
    prepared.prepare_headers(all_headers)
    prepared.prepare_body(body, None)
    prepared.prepare_cookies(_NO_COOKIES)    # none; requests looks at them even for a 3xx
    if "Transfer-Encoding" in prepared.headers:
        raise ValueError("a streamed request body must have a length")   # a bug, not a failure
    return prepared


@functools.lru_cache(maxsize=64)
def _prepared_url(url: str) -> str:
    """requests' normalised form of ``url`` (the same for every request to it)."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.url or url


def _read(response: requests.Response, limit: int, exchange: Exchange) -> tuple[bytes, str]:
    """The body, read in chunks: (bytes, "") or (b"", why it was not read)."""
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        return b"", "compressed (Content-Encoding), not read"
    declared = (response.headers.get("Content-Length") or "").strip()
    if _LENGTH.fullmatch(declared) and int(declared) > limit:
        return b"", f"over the {limit}-byte reply limit, not read"
    chunks, size = [], 0
    for chunk in response.iter_content(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return b"", f"over the {limit}-byte reply limit, not read"
        if exchange.past_deadline():
            exchange.expired = True
            raise requests.exceptions.Timeout("the reply's deadline passed")
        chunks.append(chunk)
    return b"".join(chunks), ""
