"""SEND and file upload: what Redox's answer means for the message or document.

``BearerClient`` adds the token, the shared rate limit and the one repeat after a 401 to the
transport (transport.py); ``RedoxClient`` turns every reply into a Sent, an upload URI or an
exception of the error tree. A delivery is only ever reported for a reply that proves it.
platform.py looks up a Log ID's delivery status through the same BearerClient.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import BinaryIO, Callable, Optional

from pipeline.errors import AuthError, PermanentDelivery, TransientDelivery
from pipeline.redox.ratelimit import RateLimiter
from pipeline.redox.replies import error_texts, json_object, log_entries, parse_errors, retry_after
from pipeline.redox.statuses import Kind, kind_of, worth_retrying
from pipeline.redox.transfer.multipart import MultipartBody
from pipeline.redox.transport import Reply, Transport  # noqa: F401  (Transport: re-exported)
from pipeline.values import Sent

DEFAULT_RETRY_CAP = 300.0
# the longest shared pause (a 429's Retry-After) a request sits out in its worker; a longer one
# sends nothing and comes back as a retry due when the pause ends (a retry is scheduled, not slept)
PAUSE_PATIENCE = 2.0
UPLOAD_OK = frozenset({200, 201})
# what Redox hands back for an uploaded file: an absolute http(s) URL, nothing else
_URI = re.compile(r"https?://[\x21-\x7e]{1,2040}")


_spent = threading.local()


def request_seconds() -> float:
    """Seconds this thread has spent in Redox requests (the token, the wait for the rate
    limit, the exchange) since it last asked; the runner takes them out of a step's duration
    to learn how long the storage holds a file."""
    seconds = getattr(_spent, "seconds", 0.0)
    _spent.seconds = 0.0
    return seconds


class BearerClient:
    """What every Redox API call shares: a Bearer token, the shared rate limit, a 429's pause
    (Retry-After, at most ``retry_cap`` seconds), and exactly one repeat with a fresh token
    after a 401. A request that meets a pause longer than PAUSE_PATIENCE is not sent: it
    raises TransientDelivery (status 429, not seen, ``retry_after`` the pause left).

    The limiter is waited for once the request's connection is established, just before it is
    written (transport.py's ``before_write``), so a departure is counted when the request
    leaves and not a handshake earlier; ``departing`` (once per call, after the limiter) is
    where the caller records that it left."""

    transport: Transport

    def __init__(self, transport: Transport, tokens, limiter: RateLimiter,
                 retry_cap: float = DEFAULT_RETRY_CAP):
        self.transport, self.tokens, self.limiter = transport, tokens, limiter
        self.retry_cap = retry_cap

    def _authorized(self, method: str, url: str, *, headers: Optional[dict] = None,
                    body_factory=None, departing: Optional[Callable[[], None]] = None,
                    **kw) -> Reply:
        """One request with a Bearer token; on 401 a fresh token and exactly one repeat.
        ``body_factory`` makes a fresh streamed body (with its own Content-Type) per try."""
        started = time.monotonic()
        try:
            return self._authorized_tries(method, url, headers, body_factory, departing, kw)
        finally:
            _spent.seconds = getattr(_spent, "seconds", 0.0) + time.monotonic() - started

    def _authorized_tries(self, method: str, url: str, headers: Optional[dict], body_factory,
                          departing: Optional[Callable[[], None]], kw: dict) -> Reply:
        left: list[bool] = []

        def depart() -> None:
            self._wait_for_limit()
            if departing is not None and not left:
                began = time.monotonic()
                departing()
                self.limiter.departed(self._late_by(time.monotonic() - began))
            left.append(True)

        for _try in (1, 2):
            token = self._token()
            all_headers = dict(headers or {}, Authorization=f"Bearer {token}")
            if body_factory is not None:
                kw["body"] = body_factory()
                all_headers["Content-Type"] = kw["body"].content_type
            if getattr(self.transport, "departs", False):
                reply = self.transport.request(method, url, headers=all_headers,
                                               before_write=depart, **kw)
            else:                      # a transport without the hook: wait here
                depart()
                reply = self.transport.request(method, url, headers=all_headers, **kw)
            self.limiter.heard(reply.status, reply.headers, self.retry_cap)
            if reply.status != 401:
                return reply
            self.tokens.invalidate(token)
        raise AuthError("Redox answered 401 to a freshly issued token: the credentials are refused")

    def _late_by(self, took: float) -> float:
        """How much later than usual a departure is for ``took`` seconds of ``departing``:
        beyond the quickest lately (a delay every request has shifts all arrivals alike)."""
        quickest = getattr(self, "_quickest", None)
        self._quickest = took if quickest is None else min(took, quickest + 0.05 * (took - quickest))
        return max(0.0, took - (quickest if quickest is not None else took))

    def _wait_for_limit(self) -> None:
        """The shared rate limit; a pause longer than PAUSE_PATIENCE is not sat out."""
        self.limiter.wait_turn(PAUSE_PATIENCE)

    def _token(self) -> str:
        """The token for a request about to be made. A token request that failed on the way
        (its own timeout, a cut reply, a 5xx) says nothing about this request, which was never
        written: whatever the token request's ``maybe_seen``, this one's is False, and the
        auth endpoint's status is not passed off as the request's."""
        try:
            return self.tokens.token()
        except TransientDelivery as exc:
            raise TransientDelivery(
                "not sent: no token", elapsed=exc.elapsed,
                errors=[f"not sent: the token request failed ({'; '.join(exc.errors)})"]) from None


class RedoxClient(BearerClient):
    """SEND and file upload with auth, rate limit and error translation.

    ``tokens`` is a shared token source (auth.py); ``limiter`` a shared RateLimiter.
    Every method raises TransientDelivery, PermanentDelivery or AuthError on failure.
    """

    def __init__(self, base_url: str, upload_url: str, transport: Transport, tokens,
                 limiter: RateLimiter, retry_cap: float = DEFAULT_RETRY_CAP):
        super().__init__(transport, tokens, limiter, retry_cap)
        self.endpoint = base_url.rstrip("/") + "/endpoint"
        self.upload_url = upload_url

    def send(self, body: bytes, departing: Optional[Callable[[], None]] = None,
             destinations: int = 0) -> Sent:
        """POST one message to /endpoint. Sent with its Meta.Logs only when Redox answered
        200 with a Log ID for each of the body's Meta.Destinations; any other 200 is
        ambiguous (TransientDelivery, maybe_seen=True: retried and flagged). ``departing()`` is
        called once the request has its turn at the rate limit and its connection, just before
        it is written (what it raises ends the SEND unsent). ``destinations``: how many the
        body names, when the caller knows (else the body is parsed to count them)."""
        reply = self._authorized("POST", self.endpoint, body=body, departing=departing,
                                 headers={"Content-Type": "application/json"})
        if kind_of(reply.status) is not Kind.SUCCESS:
            raise_for_status(reply, self.retry_cap)
        logs = accepted_logs(reply, destinations or destination_count(body))
        return Sent(status=reply.status, logs=tuple(logs), elapsed=reply.elapsed)

    def upload(self, document: BinaryIO, filename: str) -> tuple[str, int]:
        """Upload one document (its own bytes, not base64) as multipart part ``file``;
        returns (the URI Redox gave it, the HTTP status).

        Redox answers 201 {"URI": ...}; a 200 or 201 without a usable URI is ambiguous (the
        document may be stored). The body is streamed from ``document`` (see MultipartBody),
        which must be a seekable binary file: a repeat after 401 sends it again from the start.
        """
        reply = self._authorized("POST", self.upload_url,
                                 body_factory=lambda: MultipartBody(document, filename))
        if kind_of(reply.status, UPLOAD_OK) is not Kind.SUCCESS:
            raise_for_status(reply, self.retry_cap, upload=True)
        uri = json_object(reply.body).get("URI")
        if not isinstance(uri, str) or not _URI.fullmatch(uri):
            raise TransientDelivery(
                f"Redox answered the upload with HTTP {reply.status} but no usable URI "
                f"({reply.describe()}): it may or may not hold the document",
                status=reply.status, maybe_seen=True, elapsed=reply.elapsed)
        return uri, reply.status


def accepted_logs(reply: Reply, expected: int) -> list[dict]:
    """The Meta.Logs of a 200 SEND reply that proves acceptance: readable JSON, no
    Meta.Errors, and a usable Log ID for each of the ``expected`` destinations. Anything else
    raises TransientDelivery(maybe_seen=True), worded without quoting the reply."""
    doc = json_object(reply.body)
    logs, errors = log_entries(doc), error_texts(doc)
    if len(logs) >= max(1, expected) and not errors:
        return logs
    if reply.unread or not doc:
        problem = f"a {reply.status} reply without Log IDs ({reply.describe()})"
    elif errors:
        problem = f"a {reply.status} reply with Meta.Errors ({len(logs)} Log IDs)"
    else:
        problem = (f"a {reply.status} reply with {len(logs)} Log IDs for {expected} "
                   f"destination{'s' if expected != 1 else ''}")
    raise TransientDelivery(f"Redox answered {problem}: it may or may not hold the message",
                            status=reply.status, maybe_seen=True, elapsed=reply.elapsed,
                            errors=[f"Redox answered {problem}; it may or may not hold the message",
                                    *errors])


def destination_count(body: bytes) -> int:
    """How many Meta.Destinations the SEND body names (at least 1: Redox needs one)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return 1
    meta = doc.get("Meta") if isinstance(doc, dict) else None
    destinations = meta.get("Destinations") if isinstance(meta, dict) else None
    return max(1, len(destinations)) if isinstance(destinations, list) else 1


def raise_for_status(reply: Reply, retry_cap: float = DEFAULT_RETRY_CAP, upload: bool = False):
    """Translate a reply that is not a success into the error tree (statuses.py decides what
    kind of failure it is; the wording here is SEND's and upload's). ``upload``: the reply is
    to a file upload, whose 403 and 413 mean other things."""
    status = reply.status
    errors = parse_errors(reply.body) or [f"HTTP {status} from Redox"]
    kind = kind_of(status, UPLOAD_OK if upload else frozenset({200}))
    if worth_retrying(kind):
        raise TransientDelivery(f"Redox answered HTTP {status}", status=status, errors=errors,
                                maybe_seen=kind is Kind.AMBIGUOUS,
                                retry_after=retry_after(reply.headers, retry_cap),
                                elapsed=reply.elapsed)
    if upload and status == 403:
        # a file belongs to the source whose token uploaded it; free development accounts
        # are refused uploads altogether
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
