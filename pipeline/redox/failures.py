"""Why no reply came, and whether Redox may have seen the request anyway.

Redox documents no idempotency key for SEND: a SEND that may have arrived and is sent again is a
possible duplicate, so the line is drawn conservatively. ``maybe_seen`` is False only when the
request cannot have left this machine: the connection was refused or timed out, the name did
not resolve, the TLS handshake or the certificate failed, a proxy could not be used or reached.
Anything after the request may have been written (a read timeout, a reset, a reply cut short,
the total deadline) is ``maybe_seen=True``.

The decision is made on exception types: requests' own, and where requests files several
causes under one class (ConnectionError, SSLError, ReadTimeout), the builtin exceptions in the
cause chain and whether the request had been written out whole (``Exchange.sent``, set when
its reply began to be awaited): a request never written whole cannot have been acted on (a
TLS handshake that timed out surfaces as a read timeout, for one).
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Iterator

import requests.exceptions as rex

from pipeline.errors import TransientDelivery
from pipeline.redox.deadline import Exchange

# never left: the URL or a proxy setting could not be used, or no connection was made
_NOT_SENT = (rex.ConnectTimeout, rex.ProxyError, rex.InvalidURL, rex.InvalidSchema,
             rex.MissingSchema, rex.InvalidHeader)
_UNCONFIGURED = (rex.InvalidURL, rex.InvalidSchema, rex.MissingSchema)
_NO_ROUTE = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH,
                       errno.EADDRNOTAVAIL})


def failure(exc: BaseException, exchange: Exchange, origin: str, elapsed: float,
            deadline_seconds: float) -> TransientDelivery:
    """The TransientDelivery for an exchange that ended in ``exc`` (a requests exception, or
    an OSError raised on the way to one). Every connection reports its reply wait (the
    adapter installs that on each pool before the pool makes its first connection), so
    ``exchange.sent`` False means the request was never written out whole."""
    if exchange.expired:
        return TransientDelivery(f"Redox did not answer in time (its reply was not over within "
                                 f"{deadline_seconds:g} s)", maybe_seen=True, elapsed=elapsed)
    if isinstance(exc, _UNCONFIGURED):
        return TransientDelivery(f"cannot reach {origin} as configured ({type(exc).__name__}; "
                                 "check HTTPS_PROXY and the URLs in config.yaml)", elapsed=elapsed)
    if isinstance(exc, rex.SSLError):
        return _tls_failure(exc, exchange, elapsed)
    timed_out = isinstance(exc, rex.Timeout) or any(isinstance(e, TimeoutError) for e in causes(exc))
    if not may_have_been_seen(exc) or not exchange.sent:
        return TransientDelivery("could not connect to Redox" + (" (timed out)" if timed_out else ""),
                                 elapsed=elapsed)
    if timed_out:
        return TransientDelivery("Redox did not answer in time", maybe_seen=True, elapsed=elapsed)
    return TransientDelivery("the connection to Redox was lost", maybe_seen=True, elapsed=elapsed)


def may_have_been_seen(exc: BaseException) -> bool:
    """False only when the exception's type shows the request cannot have left."""
    if isinstance(exc, _NOT_SENT):
        return False
    for cause in causes(exc):
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
            return False
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError) and cause.errno in _NO_ROUTE:
            return False
    return True


def _tls_failure(exc: rex.SSLError, exchange: Exchange, elapsed: float) -> TransientDelivery:
    """A certificate refused, or the handshake failed: nothing was sent. A TLS error after the
    request was written (``exchange.sent``) may have followed its arrival."""
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in causes(exc)):
        return TransientDelivery("TLS certificate verification failed: the server's certificate "
                                 "is not trusted", elapsed=elapsed)
    if not exchange.sent:
        return TransientDelivery("the TLS handshake with Redox failed", elapsed=elapsed)
    return TransientDelivery("the TLS connection to Redox failed", maybe_seen=True, elapsed=elapsed)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it was raised from or during, and the exceptions requests and
    urllib3 keep as arguments (``MaxRetryError.reason``, ``ProtocolError(msg, cause)``)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        stack.extend(e for e in linked if isinstance(e, BaseException))
