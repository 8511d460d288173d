"""What every route needs (`Context`) and the checks every API call passes first (`gate`).

`gate` applies, in this order: latency, bearer token (401), rate limit (429), the `*_fail_next`
queue, and for SEND the random `error_rate`. The first one that fires decides the answer.
"""

from __future__ import annotations

import dataclasses
import time

from .error_replies import plain_error, platform_error, redox_errors
from .state import State
from .tokens import Token, TokenStore
from .wire import Reply, Request, phrase

# Redox's documented limit, quoted in X-RateLimit-Limit when a 429 is forced via fail_next.
REDOX_RATE_LIMIT = "7500"


@dataclasses.dataclass
class Context:
    """Everything a route may use. Built once the server is bound (the port is known)."""

    state: State
    tokens: TokenStore
    keys: dict            # kid -> auth.ClientKey
    legacy: dict          # api key -> secret
    destinations: frozenset | None  # None: any UUID-shaped destination is accepted
    base_url: str         # http://127.0.0.1:PORT
    loopback_bases: tuple  # base URLs this server answers to, for aud and blob URIs
    verbose: bool = False

    def token_urls(self, host_header: str | None) -> list[str]:
        """The `aud` values accepted: the token URL as posted (Host header) or any loopback base."""
        urls = [f"{base}/v2/auth/token" for base in self.loopback_bases]
        if host_header:
            urls.append(f"http://{host_header}/v2/auth/token")
        return urls

    def blob_prefixes(self) -> tuple[str, ...]:
        """String prefixes that mark a value in a SEND body as one of this sandbox's blob URIs."""
        return tuple(f"{base}/blob/" for base in self.loopback_bases)


def bearer(ctx: Context, req: Request, oauth_only: bool = False) -> Token | None:
    """Return the live token named by `Authorization: Bearer ...`, or None."""
    scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    token = ctx.tokens.lookup(value.strip())
    if token is None or (oauth_only and token.kind != "oauth"):
        return None
    return token


def unauthorized(ctx: Context, module: str = "Send") -> Reply:
    """401 for a missing, unknown or expired bearer token."""
    return redox_errors(ctx, 401, ["Unauthorized - access token missing, invalid or expired"],
                        module, headers=[("WWW-Authenticate", "Bearer")])


def fault_reply(ctx: Context, status: int, module: str = "Send") -> Reply:
    """A forced failure: plain text for 502 (as Redox's gateway does), else Meta.Errors JSON
    (the Platform API's own error shape for module "Platform")."""
    headers = retry_after(ctx, status)
    if status == 429:
        limit = ctx.state.fault("rate_limit_per_second")
        headers.insert(0, ("X-RateLimit-Limit", str(limit) if limit else REDOX_RATE_LIMIT))
    if status == 502:
        return plain_error(ctx, 502, "Bad Gateway", headers)
    if module == "Platform":
        return platform_error(ctx, status, f"sandbox fault: {phrase(status)}", headers)
    return redox_errors(ctx, status, [f"{phrase(status)} (sandbox fault)"], module, headers)


def retry_after(ctx: Context, status: int) -> list[tuple[str, str]]:
    """The Retry-After header for an error reply with `status`: present when the
    `retry_after` fault is set and `status` is in `retry_after_statuses`.

    Numbers are written as integers when whole; text goes out verbatim ("inf", an HTTP date).
    """
    value = ctx.state.fault("retry_after")
    if value is None or status not in ctx.state.fault("retry_after_statuses"):
        return []
    if isinstance(value, str):
        return [("Retry-After", value)]
    return [("Retry-After", str(int(value)) if value == int(value) else str(value))]


def gate(ctx: Context, req: Request, fail_queue: str, random_errors: bool,
         module: str) -> tuple[Reply | None, Token | None]:
    """Run the shared checks for an API call; return (reply to send instead, token).

    A None reply means the request may proceed, and the token is then the caller's.
    """
    latency = ctx.state.fault("latency_ms")
    if latency:
        time.sleep(latency / 1000.0)
    token = bearer(ctx, req)
    if token is None:
        return unauthorized(ctx, module), None
    if not ctx.state.admit():
        limit = str(ctx.state.fault("rate_limit_per_second"))
        headers = [("X-RateLimit-Limit", limit), *retry_after(ctx, 429)]
        return redox_errors(ctx, 429, ["Too Many Requests - rate limit exceeded"], module,
                            headers), token
    forced = ctx.state.take_next(fail_queue)
    if forced is not None:
        return fault_reply(ctx, forced, module), token
    if random_errors and ctx.state.roll("error_rate"):
        return fault_reply(ctx, ctx.state.fault("error_status"), module), token
    return None, token


def admitted(token: Token | None) -> Token:
    """The token `gate` returned with a None reply: never None, since gate answers 401 first."""
    if token is None:
        raise RuntimeError("gate let a request through without a bearer token")
    return token
