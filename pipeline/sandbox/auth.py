"""Token endpoints: OAuth client-assertion (`/v2/auth/token`) and legacy api key + secret.

The OAuth check is as strict as Redox's: registered `kid`, RS384/ES384 signature, `iss` = `sub`
= the kid's client id, `aud` = the token URL posted to, fresh `iat`, short `exp`, single-use
`jti`. Every answer is recorded in `token_requests`; secrets and assertions never are.

A token that is issued is answered as the `token_reply_next` queue (first) or `token_reply`
says, with the `oauth_expires_in` / `legacy_expires` and `access_token_value` faults applied
(oddreplies.py); every answer goes through the `token` wire faults (wirefaults.py).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import time
import urllib.parse
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .error_replies import oauth_error, plain_error
from .oddreplies import token_success
from .state import iso_utc
from .wire import Reply, Request, read_limited
from .wirefaults import shape

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_KID, DEFAULT_CLIENT_ID = "sandbox-key", "sandbox-client"
DEFAULT_LEGACY = {"sandbox-api-key": "sandbox-secret"}
ERROR_URI = "https://docs.redoxengine.com/"
KEY_NOT_FOUND = "Public key not found, check client_id, kid and Redox dashboard settings"
LEGACY_REFUSED = "Invalid request: API key or secret is not valid"
SKEW, MAX_LIFETIME = 10, 300
FORM_LIMIT = 64 * 1024


class AuthFailure(Exception):
    """A token request refused; `str()` is the error_description."""


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """A registered public key: which kid, which client id, which algorithm it verifies."""

    kid: str
    client_id: str
    public_key: object
    algorithm: str  # "RS384" | "ES384"


def load_client_key(kid: str, client_id: str, pem: bytes) -> ClientKey:
    """Parse a PEM public key (RSA, or EC on P-384). Raises ValueError if unusable."""
    key = serialization.load_pem_public_key(pem)
    if isinstance(key, rsa.RSAPublicKey):
        return ClientKey(kid, client_id, key, "RS384")
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return ClientKey(kid, client_id, key, "ES384")
    raise ValueError(f"key {kid}: need an RSA or EC P-384 public key")


def default_key() -> ClientKey:
    """The packaged development key (private half: examples/sandbox-client-key.pem)."""
    pem = importlib.resources.files(__package__).joinpath("dev_client_public.pem").read_bytes()
    return load_client_key(DEFAULT_KID, DEFAULT_CLIENT_ID, pem)


def parse_key_spec(spec: str) -> ClientKey:
    """Parse a `KID=CLIENT_ID=PATH` option. Raises ValueError on a bad spec or key file."""
    kid, sep1, rest = spec.partition("=")
    client_id, sep2, path = rest.partition("=")
    if not (sep1 and sep2 and kid and client_id and path):
        raise ValueError(f"--public-key wants KID=CLIENT_ID=PATH, got {spec!r}")
    try:
        return load_client_key(kid, client_id, Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"--public-key {kid}: cannot read {path}: {exc.strerror}") from None


def _oauth_error(ctx, status: int, code: str, description: str) -> Reply:
    return oauth_error(ctx, status, code, description, ERROR_URI)


def _answer(ctx, kind: str, reply: Reply, mode: str | None) -> Reply:
    """Apply the token wire faults, record the request, return what to send.

    `mode` is the token_reply mode of an issued token, None when none was issued.
    """
    reply, wire = shape(ctx, "token", reply)
    ctx.state.record("token_requests", {"kind": kind, "status": reply.status, "reply": mode,
                                        **wire})
    return reply


def _reply_mode(ctx) -> str:
    return ctx.state.take_next("token_reply_next") or ctx.state.fault("token_reply")


def oauth_token(ctx, req: Request) -> Reply:
    """`POST /v2/auth/token`: exchange a signed client assertion for a bearer token."""
    reply, mode = _oauth_token(ctx, req)
    return _answer(ctx, "oauth", reply, mode)


def _oauth_token(ctx, req: Request) -> tuple[Reply, str | None]:
    body = read_limited(req.body, FORM_LIMIT)
    form = urllib.parse.parse_qs((body.data or b"").decode("utf-8", "replace"))
    field = {name: values[0] for name, values in form.items() if values}
    if field.get("grant_type") != "client_credentials":
        return _oauth_error(ctx, 400, "unsupported_grant_type",
                            "grant_type must be client_credentials"), None
    if field.get("client_assertion_type") != ASSERTION_TYPE or not field.get("client_assertion"):
        return _oauth_error(ctx, 400, "invalid_request", f"client_assertion_type must be "
                            f"{ASSERTION_TYPE} with a client_assertion"), None
    if ctx.state.fault("refuse_credentials"):
        return _oauth_error(ctx, 401, "invalid_client", KEY_NOT_FOUND), None
    try:
        client_id = verify_assertion(ctx, field["client_assertion"],
                                     ctx.token_urls(req.headers.get("Host")))
    except AuthFailure as exc:
        return _oauth_error(ctx, 401, "invalid_client", str(exc)), None
    ttl = ctx.state.fault("token_ttl_seconds")
    token, _ = ctx.tokens.issue(client_id, "oauth", ttl, ctx.state.fault("access_token_value"))
    mode = _reply_mode(ctx)
    payload = {"access_token": token, "expires_in": ttl, "token_type": "bearer",
               "scope": "sandbox"}
    return token_success(ctx, payload, "access_token", "expires_in", mode), mode


def verify_assertion(ctx, assertion: str, audiences: list[str]) -> str:
    """Verify a client-assertion JWT; return its client id or raise AuthFailure."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise AuthFailure("client_assertion is not a JWT") from None
    key = ctx.keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise AuthFailure(KEY_NOT_FOUND)
    if header.get("alg") != key.algorithm:
        raise AuthFailure(f"alg must be {key.algorithm} for kid {key.kid}")
    try:
        claims = jwt.decode(assertion, key.public_key, algorithms=[key.algorithm],
                            audience=audiences, leeway=SKEW,
                            options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]})
    except jwt.InvalidAudienceError:
        raise AuthFailure("aud must be the token URL the assertion is posted to") from None
    except jwt.ExpiredSignatureError:
        raise AuthFailure("client assertion has expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthFailure(f"client assertion rejected: {exc}") from None
    _check_claims(claims, key)
    if not ctx.tokens.spend_jti(claims["jti"], claims["exp"]):
        raise AuthFailure("jti has already been used; sign a new assertion for every request")
    return key.client_id


def _check_claims(claims: dict, key: ClientKey) -> None:
    # PyJWT checked signature, aud, exp; these are Redox's extra rules.
    if claims["iss"] != key.client_id or claims["sub"] != key.client_id:
        raise AuthFailure(KEY_NOT_FOUND)
    now, iat, exp = time.time(), claims["iat"], claims["exp"]
    if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
        raise AuthFailure("iat and exp must be numeric dates")
    if iat < now - MAX_LIFETIME - SKEW or iat > now + SKEW:
        raise AuthFailure("iat must be within the last 5 minutes")
    if exp > iat + MAX_LIFETIME:
        raise AuthFailure("exp must be at most 5 minutes after iat")
    if not isinstance(claims["jti"], str) or not claims["jti"]:
        raise AuthFailure("jti must be a non-empty string")


def legacy_authenticate(ctx, req: Request) -> Reply:
    """`POST /auth/authenticate` with JSON `{"apiKey", "secret"}`."""
    fields = _json_fields(req)
    api_key, secret = fields.get("apiKey"), fields.get("secret")
    # An unknown key must not match a missing secret (None == None).
    ok = (isinstance(api_key, str) and api_key in ctx.legacy and isinstance(secret, str)
          and ctx.legacy[api_key] == secret and not ctx.state.fault("refuse_credentials"))
    return _legacy_reply(ctx, "legacy", api_key if ok else None)


def legacy_refresh(ctx, req: Request) -> Reply:
    """`POST /auth/refreshToken` with JSON `{"apiKey", "refreshToken"}`."""
    fields = _json_fields(req)
    owner = ctx.tokens.refresh_owner(str(fields.get("refreshToken")))
    ok = (owner is not None and owner == fields.get("apiKey") and owner in ctx.legacy
          and not ctx.state.fault("refuse_credentials"))
    return _legacy_reply(ctx, "refresh", owner if ok else None)


def _json_fields(req: Request) -> dict:
    body = read_limited(req.body, FORM_LIMIT)
    try:
        fields = json.loads(body.data or b"")
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) else {}


def _legacy_reply(ctx, kind: str, api_key: str | None) -> Reply:
    # Redox answers refused legacy credentials with plain text, not JSON.
    if api_key is None:
        return _answer(ctx, kind, plain_error(ctx, 401, LEGACY_REFUSED), None)
    token, expires_at = ctx.tokens.issue(api_key, "legacy", ctx.state.fault("token_ttl_seconds"),
                                         ctx.state.fault("access_token_value"))
    mode = _reply_mode(ctx)
    payload = {"accessToken": token, "expires": iso_utc(expires_at),
               "refreshToken": ctx.tokens.issue_refresh(api_key)}
    return _answer(ctx, kind, token_success(ctx, payload, "accessToken", "expires", mode), mode)
