"""The one table of what an HTTP status from Redox means.

Every caller (SEND and upload in client.py, delivery status in platform.py, tokens in auth.py)
asks :func:`kind_of` and words the outcome for its own request; none keeps its own list.
"""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    SUCCESS = "success"       # what the caller asked for (the caller still checks the body)
    TRANSIENT = "transient"   # worth retrying; the request was not acted on
    AMBIGUOUS = "ambiguous"   # worth retrying, but Redox may have acted on it
    AUTH = "auth"             # the token was refused (401)
    PERMANENT = "permanent"   # refused; the same request would be refused again


_TRANSIENT = frozenset({408, 425, 429, 500, 503})
# 502: dropped inside Redox, 504: took too long; either may have gone through
_AMBIGUOUS = frozenset({502, 504})


def kind_of(status: int, success: frozenset[int] = frozenset({200})) -> Kind:
    """What ``status`` means for a request whose successful answers are ``success``.

    A 2xx the caller does not expect is AMBIGUOUS (Redox answered "fine" in some way it does
    not document: it may hold the request); 3xx is PERMANENT (Redox does not redirect, so
    something in between answered, and the same URL will get the same answer).
    """
    if status in success:
        return Kind.SUCCESS
    if status == 401:
        return Kind.AUTH
    if status in _AMBIGUOUS or 200 <= status < 300:
        return Kind.AMBIGUOUS
    if status in _TRANSIENT or status >= 500:
        return Kind.TRANSIENT
    return Kind.PERMANENT


def worth_retrying(kind: Kind) -> bool:
    return kind in (Kind.TRANSIENT, Kind.AMBIGUOUS)
