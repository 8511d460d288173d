"""Issued access tokens, legacy refresh tokens and spent JWT ids, thread-safe.

Kept apart from `State` because tokens deliberately survive `/_sandbox/reset` (a reset clears
what was seen, not who is logged in) and are cleared by `/_sandbox/expire-tokens` instead.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time

# Expired entries are swept every this many issues, bounding memory under long benchmarks.
_SWEEP_EVERY = 1000


@dataclasses.dataclass(frozen=True)
class Token:
    """Who an access token speaks for: `source` (client id or api key) and `kind`."""

    source: str
    kind: str  # "oauth" | "legacy"
    expires_at: float


class TokenStore:
    """Access tokens, refresh tokens and the single-use `jti` register."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._refresh: dict[str, str] = {}
        self._jtis: dict[str, float] = {}
        self._issued = 0

    def issue(self, source: str, kind: str, ttl: float,
              value: str | None = None) -> tuple[str, float]:
        """Create an access token for `source` living `ttl` seconds; return (token, expires_at).

        `value` forces the token's text (the `access_token_value` fault); issuing it again
        replaces the earlier holder. By default the text is random.
        """
        value = secrets.token_urlsafe(24) if value is None else value
        expires_at = self._clock() + ttl
        with self._lock:
            self._tokens[value] = Token(source, kind, expires_at)
            self._issued += 1
            if self._issued % _SWEEP_EVERY == 0:
                self._sweep()
        return value, expires_at

    def lookup(self, value: str) -> Token | None:
        """Return the live token for `value`, or None when unknown, expired or revoked."""
        with self._lock:
            token = self._tokens.get(value)
        if token is None or token.expires_at <= self._clock():
            return None
        return token

    def expire_all(self) -> None:
        """Invalidate every access token issued so far (refresh tokens stay usable)."""
        with self._lock:
            self._tokens.clear()

    def issue_refresh(self, api_key: str) -> str:
        """Create a legacy refresh token for `api_key`."""
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[value] = api_key
        return value

    def refresh_owner(self, value: str) -> str | None:
        """Return the api key a refresh token was issued to, or None."""
        with self._lock:
            return self._refresh.get(value)

    def spend_jti(self, jti: str, expires_at: float) -> bool:
        """Mark an assertion id as used; False if it was used before (a replay).

        An id is remembered until its assertion expires; after that the assertion itself is
        refused as expired, so forgetting the id is safe.
        """
        with self._lock:
            if jti in self._jtis:
                return False
            self._jtis[jti] = expires_at
            return True

    def _sweep(self) -> None:
        # Caller holds the lock.
        now = self._clock()
        self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
        # 10 s of skew is allowed on exp, so keep ids a little past it.
        self._jtis = {k: e for k, e in self._jtis.items() if e + 60 > now}
