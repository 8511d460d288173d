"""Bearer tokens for Redox, cached and shared by every worker.

Two sources with one contract: ``token()`` returns a valid access token, renewing it before it
expires; ``invalidate(token)`` drops a token Redox answered 401 to. Refused credentials raise
AuthError; an auth endpoint that cannot be reached raises TransientDelivery (the run decides
whether that means exit 3); a reply whose token or lifetime cannot be used raises AuthError
(tokenreply.py). No secret, and nothing the auth endpoint wrote, is ever put into an error
message or a log line.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
import threading
import time
import uuid
from typing import Callable, NoReturn, Optional, TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pipeline.config import AuthSettings
from pipeline.errors import AuthError, ConfigError, TransientDelivery
from pipeline.redox.replies import json_object, storable
from pipeline.redox.statuses import Kind, kind_of, worth_retrying
from pipeline.redox.tokenreply import (
    legacy_lifetime,
    oauth_lifetime,
    optional_token,
    token_field,
    unusable,
)
from pipeline.redox.transport import Reply

log = logging.getLogger(__name__)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# OAuth's error codes (invalid_client, invalid_grant, ...): a fixed vocabulary, safe to show
_OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")
T = TypeVar("T")


# SHA-256 of the public half (DER SubjectPublicKeyInfo) of examples/sandbox-client-key.pem,
# the development key the local sandbox trusts (pipeline/sandbox/dev_client_public.pem)
SANDBOX_KEY_FINGERPRINT = "04654f801e2a725acaa3e552487d9c2a07cf33acbe450e6beab3a496ea90a230"
MAX_KEY_BYTES = 1 << 20
_noted: set[tuple[str, str]] = set()        # (what, path): said once per process
_noted_lock = threading.Lock()


def load_private_key(path: str, where: str = "redox.auth.private_key_file"):
    """Load a PEM private key (RSA → RS384, EC → ES384). ConfigError names the key path.

    A key file that group or others can read gets a warning (once per process, however many
    times the key is loaded): it signs for a system that holds patient data. The public
    sandbox development key is recognised by its public key, wherever it lies: a fresh clone
    leaves it world-readable, and no permission protects a key that is published; it is said,
    once, that it is in use. Only a regular file is opened (a FIFO would block).
    """
    try:
        info, data = _read_key_file(path)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConfigError(f"{where}: {path} is neither an RSA nor an EC key")
    if fingerprint(key) == SANDBOX_KEY_FINGERPRINT:
        _once(logging.INFO, "the sandbox development key is in use: it is public and trusted only "
                            "by the local sandbox, useless against Redox", path)
    elif info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        _once(logging.WARNING, "private key file is readable by group or others; chmod 600 it", path)
    return key, ("RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384")


def fingerprint(key) -> str:
    """SHA-256 (hex) of a private key's public half, as DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _read_key_file(path: str) -> tuple[os.stat_result, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as handle:
            return info, handle.read(MAX_KEY_BYTES)
    finally:
        os.close(fd)


def _once(level: int, message: str, path: str) -> None:
    with _noted_lock:
        if (message, path) in _noted:
            return
        _noted.add((message, path))
    log.log(level, message, extra={"path": path})


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
        self._key, self.algorithm = load_private_key(_required(auth.private_key_file,
                                                               "private_key_file"))

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
        if kind_of(reply.status) is not Kind.SUCCESS:
            _raise_refused(reply)
        doc = _token_doc(reply)
        return token_field(doc, "access_token"), oauth_lifetime(doc)


class LegacyTokens(_CachedToken):
    """The deprecated apiKey + secret flow: 24 h tokens renewed with the refresh token."""

    def __init__(self, auth: AuthSettings, base_url: str, transport, clock=time.time):
        super().__init__(clock)
        self.auth, self.transport = auth, transport
        self.base = base_url.rstrip("/")
        self.authenticate_url = auth.token_url or self.base + "/auth/authenticate"
        self._refresh_token: Optional[str] = None

    def _fetch(self) -> tuple[str, float]:
        api_key = _required(self.auth.api_key, "api_key").get_secret_value()
        if self._refresh_token:
            reply = self.transport.request("POST", self.base + "/auth/refreshToken", json_body={
                "apiKey": api_key, "refreshToken": self._refresh_token})
            if reply.status == 200:
                return self._accept(reply)
            self._refresh_token = None   # refused: authenticate afresh below
        reply = self.transport.request("POST", self.authenticate_url, json_body={
            "apiKey": api_key, "secret": _required(self.auth.secret, "secret").get_secret_value()})
        if kind_of(reply.status) is Kind.SUCCESS:
            return self._accept(reply)
        _raise_refused(reply)

    def _accept(self, reply: Reply) -> tuple[str, float]:
        doc = _token_doc(reply)
        token, lifetime = token_field(doc, "accessToken"), legacy_lifetime(doc, self.clock())
        self._refresh_token = optional_token(doc, "refreshToken")
        return token, lifetime


def make_tokens(auth: AuthSettings, token_url: str, base_url: str, transport):
    """The token source for ``auth.method``."""
    if auth.method == "oauth":
        return OAuthTokens(auth, token_url, transport)
    return LegacyTokens(auth, base_url, transport)


def _required(value: Optional[T], name: str) -> T:
    """A setting config validation requires for this auth method (ConfigError if absent)."""
    if value is None:
        raise ConfigError(f"redox.auth.{name}: missing")
    return value


def _token_doc(reply: Reply) -> dict:
    doc = json_object(reply.body)
    if not doc:
        raise unusable(f"not a JSON object ({reply.describe()})")
    return doc


def _raise_refused(reply: Reply) -> NoReturn:
    """A token request that was not answered with 200: TransientDelivery when it is worth
    asking again later (5xx, 429, 408), else AuthError. The message names the status and
    OAuth's error code; the endpoint's own description goes into ``errors`` only (a legacy
    401 is plain text, and whatever sits in front of Redox may echo the request, secret and
    all)."""
    kind = kind_of(reply.status)
    if worth_retrying(kind):
        raise TransientDelivery(f"Redox auth answered HTTP {reply.status}", status=reply.status)
    doc = json_object(reply.body)
    code = doc.get("error")
    described = doc.get("error_description")
    shown = f", {code}" if isinstance(code, str) and _OAUTH_ERROR.fullmatch(code) else ""
    errors = [storable(described[:200])] if isinstance(described, str) and described else []
    raise AuthError(f"Redox refused the credentials (HTTP {reply.status}{shown})", errors=errors)
