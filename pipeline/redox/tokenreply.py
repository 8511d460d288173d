"""What a token reply must hold before its token is used.

A token goes into an ``Authorization`` header of every request: one with a CR or LF could add
headers of its own, and one with other control or non-Latin-1 characters makes the HTTP library
raise mid-request. Its lifetime decides when it is renewed: a lifetime that is not a number, or
is negative, infinite or absurd, would renew it on every request or never. Either way the reply
is unusable, which is Redox's (or something in between's) fault, not the files' and not the
credentials': UnusableTokenReply (an AuthError: the run stops all the same), whose message names
the field and what is wrong with it, never its value.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Mapping

from pipeline.errors import AuthError

MIN_LIFETIME = 1.0
MAX_LIFETIME = 24 * 3600.0          # renewed at least daily, whatever Redox says
OAUTH_DEFAULT_LIFETIME = 300.0      # expires_in is optional in OAuth
LEGACY_DEFAULT_LIFETIME = 3600.0
# beyond this a lifetime is not a slip but nonsense (and would overflow a clock)
ABSURD_LIFETIME = 10 * 365 * 24 * 3600.0
# what an HTTP header value can carry safely: visible ASCII, no spaces (RFC 6750 b64token
# and every JWT fit); 16 KiB is far beyond any real token
_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")


class UnusableTokenReply(AuthError):
    """The token endpoint answered, but not with a token and lifetime that can be used: the
    credentials were not refused (rotating them would not help), the reply is at fault."""


def unusable(what: str) -> UnusableTokenReply:
    return UnusableTokenReply(f"Redox's token reply is unusable: {what}")


def token_field(doc: Mapping, name: str) -> str:
    """``doc[name]`` as a token that can go into a header; AuthError otherwise."""
    value = doc.get(name)
    if value is None:
        raise unusable(f"{name} is missing")
    if not isinstance(value, str):
        raise unusable(f"{name} is not a string")
    if not value:
        raise unusable(f"{name} is empty")
    if not _TOKEN.fullmatch(value):
        raise unusable(f"{name} is over 16 KiB or has characters a token cannot have "
                       "(spaces, control characters, non-ASCII)")
    return value


def oauth_lifetime(doc: Mapping) -> float:
    """``expires_in`` as seconds in [1 s, 24 h]; absent: 300 s. AuthError when present but
    not a positive, finite, sane number (a string, a list, null, NaN, negative, absurd)."""
    if "expires_in" not in doc:
        return OAUTH_DEFAULT_LIFETIME
    value = doc["expires_in"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise unusable("expires_in is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or not 0 < seconds <= ABSURD_LIFETIME:
        raise unusable("expires_in is not a positive number of seconds up to ten years")
    return min(MAX_LIFETIME, max(MIN_LIFETIME, seconds))


def legacy_lifetime(doc: Mapping, now: float) -> float:
    """Seconds until the legacy ``expires`` timestamp (ISO 8601), in [1 s, 24 h]; absent:
    an hour. AuthError when present but not a timestamp, already past, or absurdly far."""
    if "expires" not in doc:
        return LEGACY_DEFAULT_LIFETIME
    value = doc["expires"]
    if not isinstance(value, str) or len(value) > 64:
        raise unusable("expires is not a timestamp")
    try:
        seconds = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - now
    except (ValueError, OverflowError, OSError):
        raise unusable("expires is not a timestamp") from None
    if not 0 < seconds <= ABSURD_LIFETIME:
        raise unusable("expires is in the past or absurdly far ahead")
    return min(MAX_LIFETIME, max(MIN_LIFETIME, seconds))


def optional_token(doc: Mapping, name: str):
    """``doc[name]`` when it is a usable token, else None (a refresh token is optional)."""
    value = doc.get(name)
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None
