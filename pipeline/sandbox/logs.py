"""Platform API log lookup: `GET /platform/v1/organizations/{orgId}/logs/{logId}`.

Answers for Log IDs this sandbox issued on SEND, with the delivery status chosen by the
`delivery_*` faults. Like Redox's Platform API it wants an OAuth token; legacy tokens get 401.
"""

from __future__ import annotations

from .context import bearer, fault_reply
from .error_replies import platform_error
from .wire import Reply, Request, json_reply
from .wirefaults import shape

META = {"version": "1.0"}


def handle_log_lookup(ctx, req: Request) -> Reply:
    """200 with the log's latest attempt, 404 for an unknown id, 401 without an OAuth token.

    Every reply goes through the `platform` wire faults (wirefaults.py) before it is recorded.
    """
    log_id = req.params[1]
    reply, wire = shape(ctx, "platform", _lookup(ctx, req, log_id))
    ctx.state.record("log_lookups", {"log_id": log_id, "status": reply.status, **wire})
    return reply


def _lookup(ctx, req: Request, log_id: str) -> Reply:
    if bearer(ctx, req, oauth_only=True) is None:
        return platform_error(ctx, 401, "Unauthorized - an OAuth access token is required",
                              headers=[("WWW-Authenticate", "Bearer")])
    forced = ctx.state.take_next("platform_fail_next")
    if forced is not None:
        return fault_reply(ctx, forced, module="Platform")
    result = ctx.state.log_result(log_id)
    if result is None:
        return platform_error(ctx, 404, "Log not found")
    return json_reply(200, {"meta": META, "payload": {"result": result}})
