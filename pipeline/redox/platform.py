"""Delivery status from Redox's Platform API, over the same authorized, rate-limited HTTP as
SEND (transport.py's Transport and client.py's BearerClient).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pipeline.errors import AuthError, PermanentDelivery, TransientDelivery
from pipeline.redox.client import DEFAULT_RETRY_CAP, BearerClient
from pipeline.redox.ratelimit import RateLimiter
from pipeline.redox.replies import json_object, parse_errors, retry_after, storable
from pipeline.redox.statuses import Kind, kind_of, worth_retrying
from pipeline.redox.transport import Transport
from pipeline.values import DELIVERY_STATUSES, LogStatus

_WORD = re.compile(r"[a-z_-]{1,40}")


class PlatformClient(BearerClient):
    """Delivery status from Redox's Platform API.

    ``log_status(log_id)`` returns a LogStatus, or raises TransientDelivery (5xx, 429, no
    answer: worth retrying), PermanentDelivery (404 and other 4xx, an unreadable reply: this
    Log ID cannot be looked up now) or AuthError (the key is refused, or 403: not allowed to
    read this organization's logs — a credentials problem, not the file's).
    """

    def __init__(self, platform_url: str, organization_id: str, transport: Transport, tokens,
                 limiter: RateLimiter, retry_cap: float = DEFAULT_RETRY_CAP):
        super().__init__(transport, tokens, limiter, retry_cap)
        self.logs_url = (f"{platform_url.rstrip('/')}/v1/organizations/"
                         f"{quote(organization_id, safe='')}/logs/")

    def log_status(self, log_id: str) -> LogStatus:
        reply = self._authorized("GET", self.logs_url + quote(log_id, safe=""),
                                 headers={"Accept": "application/json"})
        kind = kind_of(reply.status)
        if kind is Kind.SUCCESS:
            return parse_log_status(log_id, reply.body)
        errors = _platform_errors(reply.body) or [f"HTTP {reply.status} from the Platform API"]
        if reply.status == 403:
            raise AuthError("the Platform API refused access to the organization's logs (HTTP 403): "
                            "check delivery_check.organization_id and the key's permissions")
        if worth_retrying(kind):     # a lookup changes nothing: "ambiguous" is just "again later"
            raise TransientDelivery(f"the Platform API answered HTTP {reply.status}",
                                    status=reply.status, errors=errors,
                                    retry_after=retry_after(reply.headers, self.retry_cap))
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
    latest = attempts.get("latest")
    if not isinstance(latest, dict):
        latest = {}
    status = str(latest.get("status") or "pending").lower()
    note = None
    if status not in DELIVERY_STATUSES:
        # named only when it is a word: a reply's text may be anything
        named = f" {status!r}" if _WORD.fullmatch(status) else ""
        status, note = "pending", f"unrecognised delivery status{named}"
    total = attempts.get("total")
    at = latest.get("attemptAt")
    return LogStatus(log_id=log_id, status=status,
                     total=total if isinstance(total, int) and not isinstance(total, bool) else None,
                     attempt_at=at if isinstance(at, str) else None, note=note)


def _platform_errors(body: bytes) -> list[str]:
    """``errors[].message`` (the Platform API's error shape), else what parse_errors finds."""
    errors: Any = json_object(body).get("errors")
    if isinstance(errors, list):
        texts = [storable(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
        if texts:
            return texts
    return parse_errors(body)


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc
