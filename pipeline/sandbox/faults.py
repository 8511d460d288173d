"""The fault settings a test or benchmark can dial into the sandbox, and their validation.

Names are the contract shared by the CLI flags, `Sandbox(**faults)` and `POST /_sandbox/faults`.
Validation is strict (unknown names and wrong types are errors) so a typo in a test fails loudly
instead of silently testing the happy path. docs/sandbox.md describes every fault for operators.
"""

from __future__ import annotations

import math
import numbers

DELIVERY_STATUSES = ("succeeded", "failed", "filtered", "pending")
# How a SEND that the sandbox accepted (recorded, Log IDs issued) is answered: see oddreplies.py.
SEND_REPLY_MODES = ("normal", "html", "text", "empty", "not_object", "no_meta", "no_logs",
                    "short_logs", "bad_log_ids", "errors", "truncated_json")
# How a successful token request (OAuth or legacy) is answered: see oddreplies.py.
TOKEN_REPLY_MODES = ("normal", "html", "text", "empty", "not_object", "no_access_token",
                     "no_expires", "errors", "truncated_json")
# What happens on the wire to any reply of a route group: see wirefaults.py and transmit.py.
WIRE_MODES = ("normal", "huge", "gzip_bomb", "cut_after_headers", "cut_mid_body",
              "short_body_hang", "hang", "no_reply")
ERROR_BODIES = ("json", "text", "html")
# Route groups with their own wire faults: SEND, upload, token endpoints, Platform log lookup.
GROUPS = ("send", "upload", "token", "platform")

FAULT_DEFAULTS: dict = {
    "latency_ms": 0,                 # sleep before answering /endpoint and /upload
    "fail_next": [],                 # statuses for the next /endpoint requests, in order
    "upload_fail_next": [],          # the same for /upload
    "platform_fail_next": [],        # the same for the Platform logs endpoint
    "error_rate": 0.0,               # chance that an /endpoint request gets error_status
    "error_status": 500,
    "seed": None,                    # seeds the RNG behind error_rate and drop_after_accept_rate
    "rate_limit_per_second": 0,      # 0 = off; /endpoint + /upload in a sliding 1 s window
    "retry_after": None,             # Retry-After value: seconds, or any header text verbatim
    "retry_after_statuses": [429],   # which error statuses carry that Retry-After
    "token_ttl_seconds": 300,
    "refuse_credentials": False,     # every token endpoint answers 401
    "drop_after_accept_rate": 0.0,   # accept + record, then close without answering
    "delivery_status": "succeeded",  # default Platform log status
    "delivery_overrides": {},        # {log_id: status}
    "delivery_fail_marker": [],      # _test_marker values whose logs report failed
    "delivery_pending_marker": [],   # ... and pending
    "send_limit_bytes": 10 * 1024 * 1024,
    "upload_limit_bytes": 30 * 1024 * 1024,
    # -- replies that look successful but are not what a client expects ---------------------
    "send_reply": "normal",          # how every accepted SEND is answered (SEND_REPLY_MODES)
    "send_reply_next": [],           # modes for the next accepted SENDs, before send_reply
    "token_reply": "normal",         # how every successful token request is answered
    "token_reply_next": [],          # modes for the next successful token requests
    "oauth_expires_in": None,        # JSON text put verbatim as the OAuth reply's expires_in
    "legacy_expires": None,          # JSON text put verbatim as the legacy reply's expires
    "access_token_value": None,      # every access token issued is this exact string
    # -- error replies ------------------------------------------------------------------------
    "error_text": None,              # replaces the human text of every error reply
    "error_body": "json",            # json (the usual shapes), text or html
    # -- the wire: per route group, trickling and broken or hostile framing -------------------
    **{f"{group}_trickle_bps": 0.0 for group in GROUPS},  # bytes per second; 0 = off
    **{f"{group}_wire": "normal" for group in GROUPS},  # WIRE_MODES for every reply
    **{f"{group}_wire_next": [] for group in GROUPS},   # WIRE_MODES for the next replies
    "huge_reply_bytes": 300 * 1024 * 1024,   # body size of a `huge` reply
    "gzip_bomb_bytes": 1024 * 1024 * 1024,   # decompressed size of a `gzip_bomb` reply
    "hang_seconds": 300,             # how long `hang` and `short_body_hang` hold the connection
}


def _number(value, low=0.0, high=None, integer=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError("must be a number")
    # NaN compares false with every bound and would slip through; infinity would hang sleeps.
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if integer and _whole(value) != value:
        raise ValueError("must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"must be {bound}")
    return _whole(value) if integer else float(value)


def _whole(value: numbers.Real) -> int:
    # The Real ABC promises __trunc__ (giving an Integral, which promises __int__), not __int__;
    # for int, float, Fraction and Decimal this is exactly int(value).
    return int(math.trunc(value))


def _statuses(value):
    items = value if isinstance(value, list) else [value]
    return [_number(s, 100, 599, integer=True) for s in items]


def _markers(value):
    # A single marker is accepted for convenience; markers are compared with ==.
    return list(value) if isinstance(value, list) else [value]


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _one_of(choices):
    def check(value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return check


def _modes(choices):
    # Like _statuses: a single mode is accepted for convenience and queued alone.
    one = _one_of(choices)
    return lambda value: [one(v) for v in (value if isinstance(value, list) else [value])]


_delivery_status = _one_of(DELIVERY_STATUSES)


def _overrides(value):
    if not isinstance(value, dict):
        raise ValueError("must be an object {log_id: status}")
    return {str(k): _delivery_status(v) for k, v in value.items()}


def _text(value):
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _header_text(value):
    # Any text a server could put in a header; CR/LF would split the reply's framing instead
    # (a different fault), and the head is written as Latin-1.
    if any(c in value for c in "\r\n\0"):
        raise ValueError("must not contain CR, LF or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("must be Latin-1 text") from None
    return value


def _retry_after(value):
    """Seconds (a number >= 0) or any header text verbatim ("inf", "-5", an HTTP date)."""
    if isinstance(value, str):
        return _header_text(value)
    return _number(value)


def _optional(check):
    return lambda value: None if value is None else check(value)


_CHECKS = {
    "latency_ms": _number,
    "fail_next": _statuses,
    "upload_fail_next": _statuses,
    "platform_fail_next": _statuses,
    "error_rate": lambda v: _number(v, 0, 1),
    "error_status": lambda v: _number(v, 100, 599, integer=True),
    "seed": _optional(lambda v: _number(v, -(2**63), integer=True)),
    "rate_limit_per_second": lambda v: _number(v, 0, integer=True),
    "retry_after": _optional(_retry_after),
    "retry_after_statuses": _statuses,
    "token_ttl_seconds": lambda v: _number(v, 0, integer=True),
    "refuse_credentials": _boolean,
    "drop_after_accept_rate": lambda v: _number(v, 0, 1),
    "delivery_status": _delivery_status,
    "delivery_overrides": _overrides,
    "delivery_fail_marker": _markers,
    "delivery_pending_marker": _markers,
    "send_limit_bytes": lambda v: _number(v, 0, integer=True),
    "upload_limit_bytes": lambda v: _number(v, 0, integer=True),
    "send_reply": _one_of(SEND_REPLY_MODES),
    "send_reply_next": _modes(SEND_REPLY_MODES),
    "token_reply": _one_of(TOKEN_REPLY_MODES),
    "token_reply_next": _modes(TOKEN_REPLY_MODES),
    "oauth_expires_in": _optional(_text),
    "legacy_expires": _optional(_text),
    "access_token_value": _optional(_text),
    "error_text": _optional(_text),
    "error_body": _one_of(ERROR_BODIES),
    **{f"{group}_trickle_bps": _number for group in GROUPS},
    **{f"{group}_wire": _one_of(WIRE_MODES) for group in GROUPS},
    **{f"{group}_wire_next": _modes(WIRE_MODES) for group in GROUPS},
    "huge_reply_bytes": lambda v: _number(v, 0, integer=True),
    # The bomb's checksum is computed over every expanded byte (about 0.2 s per GiB).
    "gzip_bomb_bytes": lambda v: _number(v, 0, 16 * 2**30, integer=True),
    "hang_seconds": _number,
}
assert _CHECKS.keys() == FAULT_DEFAULTS.keys()


def validate_faults(updates: dict) -> dict:
    """Return a normalised copy of `updates` (ints as int, single statuses as lists, ...).

    Raises `ValueError` naming the first unknown fault or invalid value; nothing is partial.
    """
    if not isinstance(updates, dict):
        raise ValueError("faults must be a JSON object")
    clean = {}
    for name, value in updates.items():
        check = _CHECKS.get(name)
        if check is None:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(_CHECKS))}")
        try:
            clean[name] = check(value)
        except ValueError as exc:
            raise ValueError(f"fault {name}: {exc}") from None
    return clean
