"""The fault settings a test or benchmark can dial into the sandbox, and their validation.

Names are the contract shared by the CLI flags, `Sandbox(**faults)` and `POST /_sandbox/faults`.
Validation is strict (unknown names and wrong types are errors) so a typo in a test fails loudly
instead of silently testing the happy path.
"""

from __future__ import annotations

import numbers

DELIVERY_STATUSES = ("succeeded", "failed", "filtered", "pending")

FAULT_DEFAULTS: dict = {
    "latency_ms": 0,                 # sleep before answering /endpoint and /upload
    "fail_next": [],                 # statuses for the next /endpoint requests, in order
    "upload_fail_next": [],          # the same for /upload
    "platform_fail_next": [],        # the same for the Platform logs endpoint
    "error_rate": 0.0,               # chance that an /endpoint request gets error_status
    "error_status": 500,
    "seed": None,                    # seeds the RNG behind error_rate and drop_after_accept_rate
    "rate_limit_per_second": 0,      # 0 = off; /endpoint + /upload in a sliding 1 s window
    "retry_after": None,             # seconds for a Retry-After header on every 429
    "token_ttl_seconds": 300,
    "refuse_credentials": False,     # every token endpoint answers 401
    "drop_after_accept_rate": 0.0,   # accept + record, then close without answering
    "delivery_status": "succeeded",  # default Platform log status
    "delivery_overrides": {},        # {log_id: status}
    "delivery_fail_marker": [],      # _test_marker values whose logs report failed
    "delivery_pending_marker": [],   # ... and pending
    "send_limit_bytes": 10 * 1024 * 1024,
    "upload_limit_bytes": 30 * 1024 * 1024,
}


def _number(value, low=0.0, high=None, integer=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError("must be a number")
    if integer and int(value) != value:
        raise ValueError("must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"must be {bound}")
    return int(value) if integer else float(value)


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


def _delivery_status(value):
    if value not in DELIVERY_STATUSES:
        raise ValueError(f"must be one of {', '.join(DELIVERY_STATUSES)}")
    return value


def _overrides(value):
    if not isinstance(value, dict):
        raise ValueError("must be an object {log_id: status}")
    return {str(k): _delivery_status(v) for k, v in value.items()}


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
    "retry_after": _optional(_number),
    "token_ttl_seconds": lambda v: _number(v, 0, integer=True),
    "refuse_credentials": _boolean,
    "drop_after_accept_rate": lambda v: _number(v, 0, 1),
    "delivery_status": _delivery_status,
    "delivery_overrides": _overrides,
    "delivery_fail_marker": _markers,
    "delivery_pending_marker": _markers,
    "send_limit_bytes": lambda v: _number(v, 0, integer=True),
    "upload_limit_bytes": lambda v: _number(v, 0, integer=True),
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
