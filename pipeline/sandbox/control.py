"""The control API tests and benchmarks use to steer the sandbox (no auth, loopback only).

- `GET  /_sandbox/faults`         the current fault set
- `POST /_sandbox/faults`         JSON object merged into the faults; returns the full set (400
                                  naming the problem for an unknown fault or a bad value)
- `POST /_sandbox/reset`          faults back to their start-up values, records cleared
- `POST /_sandbox/expire-tokens`  every access token issued so far stops working
- `GET  /_sandbox/records`        what the sandbox saw; `?bodies=1` adds each SEND's body

Records (oldest first, at most state.MAX_RECORDS of each kind; `at` is epoch seconds):
  sends:          {at, received_at, status, body_sha256, size, source, data_model, event_type,
                   destinations, log_ids, marker (top-level `_test_marker`), dropped,
                   reply, wire, trickle_bps[, body]}
  uploads:        {at, status, size, sha256, uri, wire, trickle_bps}
  token_requests: {at, kind: oauth|legacy|refresh, status, reply, wire, trickle_bps}
  log_lookups:    {at, log_id, status, wire, trickle_bps}
  tokens_issued:  int;  counts: {sends, uploads, token_requests, log_lookups} since reset
`reply` is the send_reply / token_reply mode of an accepted SEND or issued token (null when
none was accepted or issued); `wire` the wire mode the reply went out with; `trickle_bps` the
trickle rate (0: none). A record is written before its reply is sent.
"""

from __future__ import annotations

import json
import urllib.parse

from .wire import Reply, Request, json_reply, read_limited

CONTROL_LIMIT = 1024 * 1024


def get_faults(ctx, req: Request) -> Reply:
    """Return the current fault set."""
    return json_reply(200, ctx.state.faults())


def set_faults(ctx, req: Request) -> Reply:
    """Merge a JSON object of faults; 400 `{"error"}` when it is not valid."""
    body = read_limited(req.body, CONTROL_LIMIT)
    try:
        updates = json.loads(body.data or b"{}")
        return json_reply(200, ctx.state.update_faults(updates))
    except ValueError as exc:  # includes JSONDecodeError
        return json_reply(400, {"error": str(exc)})


def reset(ctx, req: Request) -> Reply:
    """Restore start-up faults and clear records; returns the fault set."""
    ctx.state.reset()
    return json_reply(200, ctx.state.faults())


def expire_tokens(ctx, req: Request) -> Reply:
    """Invalidate all issued access tokens."""
    ctx.tokens.expire_all()
    return json_reply(200, {"expired": True})


def records(ctx, req: Request) -> Reply:
    """Return the records snapshot; `bodies=1` (or true/yes) includes SEND bodies."""
    flag = urllib.parse.parse_qs(req.query).get("bodies", ["0"])[0].lower()
    return json_reply(200, ctx.state.records(bodies=flag in ("1", "true", "yes")))
