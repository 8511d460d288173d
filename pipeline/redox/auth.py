"""Bearer tokens for Redox, cached and shared by every worker (redox-api.md: Authentication).

Two sources with one contract: ``token()`` returns a valid access token, renewing it before it
expires; ``invalidate(token)`` drops a token Redox answered 401 to. Refused credentials raise
AuthError; an auth endpoint that cannot be reached raises TransientDelivery (the run decides
whether that means exit 3). No secret is ever put into an error message or a log line.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
import uuid
from datetime import datetime
from typing import Callable, Optional

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pipeline.config import AuthSettings
from pipeline.errors import AuthError, ConfigError, TransientDelivery
from pipeline.redox.client import json_object

log = logging.getLogger(__name__)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def load_private_key(path: str, where: str = "redox.auth.private_key_file"):
    """Load a PEM private key (RSA → RS384, EC → ES384). ConfigError names the key path.

    A key file that group or others can read gets a warning: it signs for a system that
    holds patient data.
    """
    try:
        info = os.stat(path)
        data = open(path, "rb").read()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({exc.strerror})") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("private key file is readable by group or others; chmod 600 it",
                     extra={"path": path})
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: {path} is not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key, "ES384"
    raise ConfigError(f"{where}: {path} is neither an RSA nor an EC key")


class _CachedToken:
    """Thread-safe cache: one fetch at a time, renewed when less than a fifth of its life is left."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._renew_at = 0.0
        self.fetches = 0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                token, lifetime = self._fetch()
                self.fetches += 1
                self._token = token
                self._renew_at = self.clock() + max(1.0, lifetime - max(10.0, lifetime / 5))
            return self._token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> tuple[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError


class OAuthTokens(_CachedToken):
    """OAuth client credentials with a signed JWT client assertion (Redox's recommended keys)."""

    def __init__(self, auth: AuthSettings, token_url: str, transport, clock=time.time):
        super().__init__(clock)
        self.auth, self.token_url, self.transport = auth, token_url, transport
        self._key, self.algorithm = load_private_key(auth.private_key_file)

    def assertion(self) -> str:
        """A fresh single-use assertion: iss = sub = client id, aud = the token URL posted to."""
        now = int(self.clock())
        claims = {"iss": self.auth.client_id, "sub": self.auth.client_id, "aud": self.token_url,
                  "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._key, algorithm=self.algorithm,
                          headers={"kid": self.auth.key_id, "typ": "JWT"})

    def _fetch(self) -> tuple[str, float]:
        reply = self.transport.request("POST", self.token_url, data={
            "grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion()})
        body = json_object(reply.body)
        if reply.status == 200 and isinstance(body.get("access_token"), str):
            return body["access_token"], float(body.get("expires_in") or 300)
        _raise_refused(reply, body.get("error_description") or body.get("error"))


class LegacyTokens(_CachedToken):
    """The deprecated apiKey + secret flow: 24 h tokens renewed with the refresh token."""

    def __init__(self, auth: AuthSettings, base_url: str, transport, clock=time.time):
        super().__init__(clock)
        self.auth, self.transport = auth, transport
        self.base = base_url.rstrip("/")
        self.authenticate_url = auth.token_url or self.base + "/auth/authenticate"
        self._refresh_token: Optional[str] = None

    def _fetch(self) -> tuple[str, float]:
        api_key = self.auth.api_key.get_secret_value()
        if self._refresh_token:
            reply = self.transport.request("POST", self.base + "/auth/refreshToken", json_body={
                "apiKey": api_key, "refreshToken": self._refresh_token})
            if reply.status == 200:
                return self._accept(reply)
            self._refresh_token = None   # refused: authenticate afresh below
        reply = self.transport.request("POST", self.authenticate_url, json_body={
            "apiKey": api_key, "secret": self.auth.secret.get_secret_value()})
        if reply.status == 200:
            return self._accept(reply)
        _raise_refused(reply, None)

    def _accept(self, reply) -> tuple[str, float]:
        body = json_object(reply.body)
        token = body.get("accessToken")
        if not isinstance(token, str):
            raise AuthError("Redox's authenticate reply has no accessToken")
        self._refresh_token = body.get("refreshToken")
        return token, _seconds_until(body.get("expires"), self.clock())


def make_tokens(auth: AuthSettings, token_url: str, base_url: str, transport):
    """The token source for ``auth.method``."""
    if auth.method == "oauth":
        return OAuthTokens(auth, token_url, transport)
    return LegacyTokens(auth, base_url, transport)


def _raise_refused(reply, description: Optional[str]):
    if reply.status >= 500 or reply.status == 429:
        raise TransientDelivery(f"Redox auth answered HTTP {reply.status}", status=reply.status)
    # Legacy 401 bodies are plain text (redox-api.md); keep a short, printable piece of it.
    detail = description or reply.body[:200].decode("utf-8", "replace").strip()
    raise AuthError(f"Redox refused the credentials (HTTP {reply.status}): {detail}".rstrip(": "))


def _seconds_until(iso: Optional[str], now: float) -> float:
    try:
        return max(1.0, datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() - now)
    except ValueError:
        return 3600.0
