"""Platform API log lookup: `GET /platform/v1/organizations/{orgId}/logs/{logId}`.

Answers for Log IDs this sandbox issued on SEND, with the delivery status chosen by the
`delivery_*` faults. Like Redox's Platform API it wants an OAuth token; legacy tokens get 401.
"""

from __future__ import annotations

from .context import bearer, fault_reply
from .wire import Reply, Request, json_reply

META = {"version": "1.0"}


def handle_log_lookup(ctx, req: Request) -> Reply:
    """200 with the log's latest attempt, 404 for an unknown id, 401 without an OAuth token."""
    log_id = req.params[1]
    reply = _lookup(ctx, req, log_id)
    ctx.state.record("log_lookups", {"log_id": log_id, "status": reply.status})
    return reply


def _lookup(ctx, req: Request, log_id: str) -> Reply:
    if bearer(ctx, req, oauth_only=True) is None:
        return json_reply(401, {"meta": META, "errors": [
            {"message": "Unauthorized - an OAuth access token is required"}]},
            headers=[("WWW-Authenticate", "Bearer")])
    forced = ctx.state.take_next("platform_fail_next")
    if forced is not None:
        return fault_reply(ctx, forced, module="Platform")
    result = ctx.state.log_result(log_id)
    if result is None:
        return json_reply(404, {"meta": META, "errors": [{"message": "Log not found"}]})
    return json_reply(200, {"meta": META, "payload": {"result": result}})
