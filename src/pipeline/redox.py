"""The one module that talks HTTP to Redox (the only one that imports requests).

``Transport`` turns every requests exception into a :class:`TransientDelivery` that knows
whether Redox may have seen the request; ``RedoxClient`` adds the token, the shared rate limit,
the one repeat after a 401, and translates every status into the error tree (redox-api.md: SEND,
the status table). ``PlatformClient`` looks up a Log ID's delivery status the same way.
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import BinaryIO, Mapping, Optional
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from pipeline.errors import AuthError, PermanentDelivery, TransientDelivery
from pipeline.values import DELIVERY_STATUSES, LogStatus, Sent

log = logging.getLogger(__name__)

# redox-api.md: 502 = dropped inside Redox, 504 = took too long; either may have gone through.
AMBIGUOUS_STATUSES = frozenset({502, 504})
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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
    """

    def __init__(self, connect_timeout: float, read_timeout: float, verify: bool = True,
                 pool_size: int = 10, session: Optional[requests.Session] = None):
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        # requests re-reads proxy and CA settings from the whole environment on every request
        # (a third of its cost per SEND): read them once per host instead, honouring the same
        # variables (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE).
        self.session.trust_env = False
        self.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                       or True) if verify else False
        self._proxies: dict[str, dict] = {}
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, pool_size), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, url: str, *, headers: Optional[dict] = None, data=None,
                json_body=None, files=None, body=None) -> Reply:
        """``body``: bytes, or a file-like object with a length (streamed as it is sent)."""
        started = time.monotonic()
        try:
            resp = self.session.request(method, url, headers=headers, data=body if body is not None else data,
                                        json=json_body, files=files, timeout=self.timeout,
                                        verify=self.verify, allow_redirects=False,
                                        proxies=self._proxies_for(url))
            content = resp.content
        except requests.ConnectTimeout:
            raise TransientDelivery("could not connect to Redox (timed out)",
                                    elapsed=time.monotonic() - started) from None
        except requests.ReadTimeout:
            raise TransientDelivery("Redox did not answer in time", maybe_seen=True,
                                    elapsed=time.monotonic() - started) from None
        except requests.exceptions.SSLError as exc:
            if "CERTIFICATE_VERIFY_FAILED" not in repr(exc):
                raise TransientDelivery("the TLS connection to Redox failed", maybe_seen=True) from None
            # the handshake failed, so nothing was sent; verification is never switched off
            raise TransientDelivery("TLS certificate verification failed: the server's "
                                    "certificate is not trusted") from None
        except requests.ConnectionError as exc:
            never_sent = _never_connected(exc)
            what = "could not connect to Redox" if never_sent else "the connection to Redox was lost"
            raise TransientDelivery(what, maybe_seen=not never_sent,
                                    elapsed=time.monotonic() - started) from None
        except requests.RequestException as exc:
            raise TransientDelivery(f"HTTP error talking to Redox ({exc.__class__.__name__})",
                                    maybe_seen=True, elapsed=time.monotonic() - started) from None
        return Reply(resp.status_code, resp.headers, content, time.monotonic() - started)

    def _proxies_for(self, url: str) -> dict:
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        if key not in self._proxies:
            self._proxies[key] = requests.utils.get_environ_proxies(url)
        return self._proxies[key]

    def close(self) -> None:
        self.session.close()


def _never_connected(exc: Exception) -> bool:
    """True when the request cannot have reached Redox (refused, DNS, connect failure)."""
    text = repr(exc)
    return any(marker in text for marker in (
        "NewConnectionError", "Failed to establish", "NameResolutionError", "ConnectTimeout",
        "Connection refused"))


class _BearerClient:
    """What every Redox API call shares: a Bearer token, the shared rate limit, a 429's pause,
    and exactly one repeat with a fresh token after a 401 (redox-api.md: Authentication)."""

    transport: Transport

    def __init__(self, transport: Transport, tokens, limiter):
        self.transport, self.tokens, self.limiter = transport, tokens, limiter

    def _authorized(self, method: str, url: str, *, headers: Optional[dict] = None,
                    body_factory=None, **kw) -> Reply:
        """One request with a Bearer token; on 401 a fresh token and exactly one repeat.
        ``body_factory`` makes a fresh streamed body (with its own Content-Type) per try."""
        for attempt in (1, 2):
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


class RedoxClient(_BearerClient):
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

class PlatformClient(_BearerClient):
    """Delivery status from Redox's Platform API (redox-api.md: Delivery status).

    ``log_status(log_id)`` returns a LogStatus, or raises TransientDelivery (5xx, 429, no
    answer: worth retrying), PermanentDelivery (404 and other 4xx, an unreadable reply: this
    Log ID cannot be looked up now) or AuthError (the key is refused, or 403: not allowed to
    read this organization's logs — a credentials problem, not the file's).
    """

    def __init__(self, platform_url: str, organization_id: str, transport: Transport, tokens,
                 limiter):
        super().__init__(transport, tokens, limiter)
        self.logs_url = (f"{platform_url.rstrip('/')}/v1/organizations/"
                         f"{quote(organization_id, safe='')}/logs/")

    def log_status(self, log_id: str) -> LogStatus:
        reply = self._authorized("GET", self.logs_url + quote(log_id, safe=""),
                                 headers={"Accept": "application/json"})
        if reply.status == 200:
            return parse_log_status(log_id, reply.body)
        errors = _platform_errors(reply.body) or [f"HTTP {reply.status} from the Platform API"]
        if reply.status == 403:
            raise AuthError("the Platform API refused access to the organization's logs (HTTP 403): "
                            "check delivery_check.organization_id and the key's permissions")
        if reply.status in TRANSIENT_STATUSES or reply.status >= 500:
            raise TransientDelivery(f"the Platform API answered HTTP {reply.status}",
                                    status=reply.status, errors=errors,
                                    retry_after=retry_after(reply.headers))
        if reply.status == 404:
            errors = ["not found in Redox's logs (not there yet, past retention, or another "
                      "organization's)"]
        raise PermanentDelivery(f"the Platform API answered HTTP {reply.status}",
                                status=reply.status, errors=errors)


def parse_log_status(log_id: str, body: bytes) -> LogStatus:
    """``payload.result.attempts`` → LogStatus; defensive about missing and extra fields.

    A status outside succeeded|failed|filtered|pending is kept as ``pending`` (not final), so
    an unknown answer is checked again rather than taken for an outcome.
    """
    result = _dig(json_object(body), "payload", "result")
    attempts = result.get("attempts") if isinstance(result, dict) else None
    if not isinstance(attempts, dict):
        raise PermanentDelivery("the Platform API's reply has no attempts", status=200,
                                errors=["unreadable Platform API reply (no attempts)"])
    latest = attempts.get("latest") if isinstance(attempts.get("latest"), dict) else {}
    status = str(latest.get("status") or "pending").lower()
    note = None
    if status not in DELIVERY_STATUSES:
        status, note = "pending", f"unrecognised delivery status {str(latest.get('status'))[:40]!r}"
    total = attempts.get("total")
    at = latest.get("attemptAt")
    return LogStatus(log_id=log_id, status=status,
                     total=total if isinstance(total, int) and not isinstance(total, bool) else None,
                     attempt_at=at if isinstance(at, str) else None, note=note)


def _platform_errors(body: bytes) -> list[str]:
    """``errors[].message`` (the Platform API's error shape), else what parse_errors finds."""
    errors = json_object(body).get("errors")
    if isinstance(errors, list):
        texts = [str(e.get("message"))[:300] for e in errors if isinstance(e, dict) and e.get("message")]
        if texts:
            return texts
    return parse_errors(body)


def _dig(doc: dict, *keys):
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


class MultipartBody:
    """A ``multipart/form-data`` body with one part named ``file``, streamed from a file.

    requests builds a ``files=`` body whole in memory (a second copy of a 30 MB document);
    this one is read in blocks as it is sent, with a known length (so a Content-Length, not
    chunked framing). It carries its own boundary in ``content_type``, which is what
    redox-api.md's "let the HTTP library set the Content-Type (boundary)" is about: header and
    body must agree. Starts from the beginning of ``document`` whatever its position.
    """

    def __init__(self, document: BinaryIO, filename: str):
        self.boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{_safe_filename(filename)}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode("ascii")
        tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        document.seek(0, os.SEEK_END)
        self._length = len(head) + document.tell() + len(tail)
        document.seek(0)
        self._parts = [io.BytesIO(head), document, io.BytesIO(tail)]

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); b"" at the end."""
        out = bytearray()
        while self._parts and (size < 0 or len(out) < size):
            data = self._parts[0].read(-1 if size < 0 else size - len(out))
            if data:
                out += data
            else:
                self._parts.pop(0)
        return bytes(out)

    def __iter__(self):
        return iter(lambda: self.read(64 * 1024), b"")


def _safe_filename(name: str) -> str:
    """The part's filename: printable ASCII without quotes or backslashes, else "document"."""
    clean = "".join(c for c in (name or "") if 32 <= ord(c) < 127 and c not in '"\\')
    return clean.strip()[:100] or "document"


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
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
