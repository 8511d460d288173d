"""The one module that talks HTTP to Redox (the only one that imports an HTTP library).

``Transport`` turns every urllib3 exception into a :class:`TransientDelivery` that knows
whether Redox may have seen the request; ``RedoxClient`` adds the token, the shared rate limit,
the one repeat after a 401, and translates every status into the error tree (redox-api.md: SEND,
the status table). platform.py looks up a Log ID's delivery status through the same client.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO, Mapping, Optional

import certifi
import urllib3

from pipeline import __version__
from pipeline.errors import AuthError, PermanentDelivery, TransientDelivery
from pipeline.jsondoc import parse_object
from pipeline.redox.transfer.multipart import MultipartBody
from pipeline.values import Sent

log = logging.getLogger(__name__)

# redox-api.md: 502 = dropped inside Redox, 504 = took too long; either may have gone through.
AMBIGUOUS_STATUSES = frozenset({502, 504})
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = f"redox-pipeline/{__version__}"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float


class Transport:
    """HTTP with keep-alive connection reuse; the seam tests may replace with a fake.

    ``request`` returns a Reply for any HTTP status, and raises TransientDelivery when no
    reply came: ``maybe_seen`` is False only when the connection was never made.

    Built on urllib3 (what requests itself sends with), without requests' per-call layers:
    settings merges, cookie jar, hooks and environment look-ups cost 0.75 ms of CPU per SEND,
    more than the rest of the pipeline's work on a small file (issue 6, scripts/bench).
    Proxy and CA settings come from the same variables requests honours, read once per host.
    """

    def __init__(self, connect_timeout: float, read_timeout: float, verify: bool = True,
                 pool_size: int = 10):
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.verify = verify
        # num_pools: the few origins config names (API, uploads, auth, Platform API) each keep
        # their pool, which _route holds on to
        self._pool_kw = dict(num_pools=16, maxsize=max(4, pool_size), retries=False, timeout=self.timeout,
                             cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE")
        if verify:
            # as requests does: a bundle file or a hashed directory of CAs; an empty
            # CURL_CA_BUNDLE does not switch verification off (docs/security.md)
            ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
            self._pool_kw["ca_cert_dir" if os.path.isdir(ca) else "ca_certs"] = ca
        self._direct = urllib3.PoolManager(**self._pool_kw)
        self._routes: dict[str, object] = {}    # origin -> its connection pool, or its proxy
        self._lock = threading.Lock()

    def request(self, method: str, url: str, *, headers: Optional[dict] = None, data=None,
                json_body=None, body=None) -> Reply:
        """``body``: bytes, or a file-like object with a length (streamed as it is sent);
        ``data``: a form (dict); ``json_body``: a JSON document."""
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        all_headers.update(headers or {})
        if body is not None:
            all_headers["Content-Length"] = str(len(body))
        pool, target = self._route(url)
        started = time.monotonic()
        try:
            resp = pool.urlopen(method, target, body=body, headers=all_headers,
                                redirect=False, retries=False, preload_content=True)
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ProxyError) as exc:
            # NewConnectionError (refused, DNS) is a ConnectTimeoutError too; a proxy that could
            # not be reached or refused the tunnel never passed the request on either
            timed_out = type(exc) is urllib3.exceptions.ConnectTimeoutError
            raise TransientDelivery("could not connect to Redox" + (" (timed out)" if timed_out else ""),
                                    elapsed=time.monotonic() - started) from None
        except urllib3.exceptions.ReadTimeoutError:
            raise TransientDelivery("Redox did not answer in time", maybe_seen=True,
                                    elapsed=time.monotonic() - started) from None
        except urllib3.exceptions.SSLError as exc:
            if "CERTIFICATE_VERIFY_FAILED" not in repr(exc):
                raise TransientDelivery("the TLS connection to Redox failed", maybe_seen=True) from None
            # the handshake failed, so nothing was sent; verification is never switched off
            raise TransientDelivery("TLS certificate verification failed: the server's "
                                    "certificate is not trusted") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # ProtocolError (reset, closed mid-reply), IncompleteRead, a body that failed to read
            never_sent = _never_connected(exc)
            what = "could not connect to Redox" if never_sent else "the connection to Redox was lost"
            raise TransientDelivery(what, maybe_seen=not never_sent,
                                    elapsed=time.monotonic() - started) from None
        return Reply(resp.status, resp.headers, resp.data, time.monotonic() - started)

    def _route(self, url: str):
        """(what to send through, what to ask it for): the connection pool of ``url``'s origin
        and the path, or the proxy the environment names for it (HTTPS_PROXY / HTTP_PROXY /
        ALL_PROXY, NO_PROXY) and the whole URL. Decided once per origin; going straight to the
        pool saves parsing the URL and looking the pool up again on every request."""
        scheme, _, host, *rest = url.split("/", 3)
        origin = f"{scheme}//{host}"
        route = self._routes.get(origin)
        if route is None:
            with self._lock:
                route = self._routes.get(origin)
                if route is None:
                    try:
                        route = self._proxy_manager(url) or self._direct.connection_from_url(url)
                    except (ValueError, urllib3.exceptions.HTTPError) as exc:
                        # a proxy variable or URL that cannot be used: nothing was sent
                        raise TransientDelivery(f"cannot reach {origin} as configured "
                                                f"({exc.__class__.__name__}; check HTTPS_PROXY "
                                                "and the URLs in config.yaml)") from None
                    self._routes[origin] = route
        if isinstance(route, urllib3.PoolManager):
            return route, url
        return route, "/" + (rest[0] if rest else "")

    def _proxy_manager(self, url: str) -> Optional[urllib3.PoolManager]:
        parts = urllib.parse.urlsplit(url)
        if urllib.request.proxy_bypass_environment(parts.hostname or "", urllib.request.getproxies_environment()):
            return None
        proxies = urllib.request.getproxies_environment()
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if not proxy:
            return None
        if "://" not in proxy:
            proxy = "http://" + proxy
        return urllib3.ProxyManager(proxy, **self._pool_kw)

    def close(self) -> None:
        with self._lock:
            for route in self._routes.values():
                if isinstance(route, urllib3.PoolManager):
                    route.clear()
            self._routes.clear()
            self._direct.clear()


def _never_connected(exc: Exception) -> bool:
    """True when the request cannot have reached Redox (refused, DNS, connect failure)."""
    text = repr(exc)
    return any(marker in text for marker in (
        "NewConnectionError", "Failed to establish", "NameResolutionError", "ConnectTimeout",
        "Connection refused"))


class BearerClient:
    """What every Redox API call shares: a Bearer token, the shared rate limit, a 429's pause,
    and exactly one repeat with a fresh token after a 401 (redox-api.md: Authentication)."""

    transport: Transport

    def __init__(self, transport: Transport, tokens, limiter):
        self.transport, self.tokens, self.limiter = transport, tokens, limiter

    def _authorized(self, method: str, url: str, *, headers: Optional[dict] = None,
                    body_factory=None, **kw) -> Reply:
        """One request with a Bearer token; on 401 a fresh token and exactly one repeat.
        ``body_factory`` makes a fresh streamed body (with its own Content-Type) per try."""
        for _try in (1, 2):
            token = self.tokens.token()
            self.limiter.acquire()
            all_headers = dict(headers or {}, Authorization=f"Bearer {token}")
            if body_factory is not None:
                kw["body"] = body_factory()
                all_headers["Content-Type"] = kw["body"].content_type
            reply = self.transport.request(method, url, headers=all_headers, **kw)
            if reply.status == 429:
                wait = retry_after(reply.headers)
                self.limiter.pause_for(wait if wait is not None else 1.0)
            if reply.status != 401:
                return reply
            self.tokens.invalidate(token)
        raise AuthError("Redox answered 401 to a freshly issued token: the credentials are refused")


class RedoxClient(BearerClient):
    """SEND and file upload with auth, rate limit and error translation.

    ``tokens`` is a shared token source (auth.py); ``limiter`` a shared RateLimiter.
    Every method raises TransientDelivery, PermanentDelivery or AuthError on failure.
    """

    def __init__(self, base_url: str, upload_url: str, transport: Transport, tokens, limiter):
        super().__init__(transport, tokens, limiter)
        self.endpoint = base_url.rstrip("/") + "/endpoint"
        self.upload_url = upload_url

    def send(self, body: bytes) -> Sent:
        """POST one message to /endpoint; Sent with the Meta.Logs Redox returned on 200."""
        reply = self._authorized("POST", self.endpoint, body=body,
                                 headers={"Content-Type": "application/json"})
        if reply.status != 200:
            raise_for_status(reply)
        return Sent(status=reply.status, logs=tuple(parse_logs(reply.body)), elapsed=reply.elapsed)

    def upload(self, document: BinaryIO, filename: str) -> tuple[str, int]:
        """Upload one document (its own bytes, not base64) as multipart part ``file``;
        returns (the URI Redox gave it, the HTTP status).

        redox-api.md: Transferring files — 201 {"URI": ...}. The body is streamed from
        ``document`` (see MultipartBody), which must be a seekable binary file: a repeat after
        401 sends it again from the start.
        """
        reply = self._authorized("POST", self.upload_url,
                                 body_factory=lambda: MultipartBody(document, filename))
        if reply.status not in (200, 201):
            raise_for_status(reply, upload=True)
        uri = json_object(reply.body).get("URI")
        if not isinstance(uri, str) or not uri:
            raise TransientDelivery("Redox's upload reply has no URI", status=reply.status, maybe_seen=True)
        return uri, reply.status

def raise_for_status(reply: Reply, upload: bool = False):
    """Translate a non-success reply into the error tree (redox-api.md: the status table).
    ``upload``: the reply is to a file upload, whose 403 and 413 mean other things."""
    errors = parse_errors(reply.body) or [f"HTTP {reply.status} from Redox"]
    status = reply.status
    if status in TRANSIENT_STATUSES or status >= 500:
        raise TransientDelivery(f"Redox answered HTTP {status}", status=status, errors=errors,
                                maybe_seen=status in AMBIGUOUS_STATUSES,
                                retry_after=retry_after(reply.headers), elapsed=reply.elapsed)
    if upload and status == 403:
        # redox-api.md: "A file belongs to the source whose token uploaded it; free accounts
        # in development get 403."
        errors.append("HTTP 403: Redox refused the upload (free development accounts cannot "
                      "upload files; check the source's plan in the Redox dashboard)")
    elif status in (403, 404):
        errors.append(f"HTTP {status}: check the destinations in config.yaml and the source's "
                      "subscriptions in the Redox dashboard (usually a configuration problem)")
    if status == 413:
        errors.append("HTTP 413: the document is over Redox's upload limit" if upload
                      else "HTTP 413: the message is over Redox's size limit")
    raise PermanentDelivery(f"Redox refused the message (HTTP {status})", status=status, errors=errors,
                            elapsed=reply.elapsed)


def parse_logs(body: bytes) -> list[dict]:
    """Meta.Logs[] from a SEND reply, defensively: optional, extra fields tolerated."""
    meta = json_object(body).get("Meta")
    logs = meta.get("Logs") if isinstance(meta, dict) else None
    if not isinstance(logs, list):
        return []
    return [{"ID": entry.get("ID"), "AttemptID": entry.get("AttemptID")}
            for entry in logs if isinstance(entry, dict) and entry.get("ID")]


def parse_errors(body: bytes) -> list[str]:
    """Meta.Errors[].Text from an error reply; a short plain-text body when it is not JSON."""
    doc = json_object(body)
    meta = doc.get("Meta") if doc else None
    errors = meta.get("Errors") if isinstance(meta, dict) else None
    if isinstance(errors, list):
        # kept as Redox sent it, except a lone surrogate (a "\ud800" escape), which no UTF-8
        # journal, sidecar or log line can hold
        texts = [str(e.get("Text")).encode("utf-8", "replace").decode("utf-8")
                 for e in errors if isinstance(e, dict) and e.get("Text")]
        if texts:
            return texts
    if not doc and body.strip():
        text = body[:300].decode("utf-8", "replace").strip()
        if text and "<" not in text[:1]:
            return [text]
    return []


def retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def json_object(body: bytes) -> dict:
    """The reply body as a JSON object, or {} when it is not one (replies are parsed defensively)."""
    return parse_object(body) or {}
