"""SEND (`POST /endpoint`): validate a Redox message, issue Log IDs, record what was seen.

Checks run in Redox's order of concern: the shared gate (token, rate limit, forced faults), then
size (413), shape (400), destinations (403) and uploaded-file URIs (400). Every request, good or
bad, leaves one record in `sends`, written before the reply goes out (so a client that never
reads the reply, or reads a broken one, still shows up as received).

An accepted SEND is answered as the `send_reply_next` queue (first) or `send_reply` says
(oddreplies.py), and every reply goes through the `send` wire faults (wirefaults.py).
"""

from __future__ import annotations

import re

from .context import admitted, gate
from .error_replies import redox_errors
from .oddreplies import send_acceptance
from .wire import Body, Reply, Request, parse_json, read_limited
from .wirefaults import shape

UUID_SHAPE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
MARKER_FIELD = "_test_marker"


def handle_send(ctx, req: Request) -> Reply:
    """Answer one SEND and record it (see the module docstring for the order of checks)."""
    body = read_limited(req.body, ctx.state.fault("send_limit_bytes"))
    message = parse_json(body.data)
    entry = _describe(body, message)
    entry["received_at"] = req.received_at
    reply, token = gate(ctx, req, "fail_next", random_errors=True, module="Send")
    if token is not None:
        entry["source"] = token.source
    if reply is None:
        reply = _accept(ctx, body, message, admitted(token).source, entry)
    reply, wire = shape(ctx, "send", reply)
    entry.update(wire, status=reply.status)
    ctx.state.record("sends", entry, body.data)
    return reply


def _describe(body: Body, message) -> dict:
    """The record for this SEND, with whatever could be read from the message."""
    meta = message.get("Meta") if isinstance(message, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    destinations = meta.get("Destinations")
    ids = [d.get("ID") for d in destinations if isinstance(d, dict)] \
        if isinstance(destinations, list) else []
    return {
        "status": 0, "body_sha256": body.sha256, "size": body.size, "source": None,
        "data_model": _string_or_none(meta.get("DataModel")),
        "event_type": _string_or_none(meta.get("EventType")),
        "destinations": ids, "log_ids": [], "dropped": False, "reply": None,
        "marker": message.get(MARKER_FIELD) if isinstance(message, dict) else None,
    }


def _string_or_none(value):
    return value if isinstance(value, str) else None


def _accept(ctx, body: Body, message, source: str, entry: dict) -> Reply:
    if body.data is None:
        return redox_errors(ctx, 413, ["Payload Too Large - request body exceeds the SEND limit"])
    problems = _shape_problems(message)
    if problems:
        return redox_errors(ctx, 400, problems)
    destinations = [d["ID"] for d in message["Meta"]["Destinations"]]
    if ctx.destinations is not None:
        unknown = [d for d in destinations if d.lower() not in ctx.destinations]
        if unknown:
            return redox_errors(ctx, 403, [f"Destination {d} is not subscribed to this source"
                                           for d in unknown])
    foreign = _foreign_uri(ctx, message, source)
    if foreign is not None:
        return redox_errors(ctx, 400, [f"Unknown file URI - {foreign} was not uploaded by "
                                       "this source"])
    logs = ctx.state.issue_logs(len(destinations), entry["marker"])
    entry["log_ids"] = [log["ID"] for log in logs]
    if ctx.state.roll("drop_after_accept_rate"):
        entry["dropped"] = True
        return Reply(200, drop=True)
    mode = ctx.state.take_next("send_reply_next") or ctx.state.fault("send_reply")
    entry["reply"] = mode
    return send_acceptance(ctx, message["Meta"], logs, mode)


def _shape_problems(message) -> list[str]:
    """The Meta.Errors texts for a message that is not a valid SEND ([] when valid)."""
    if not isinstance(message, dict):
        return ["Invalid request - body must be a JSON object"]
    meta = message.get("Meta")
    if not isinstance(meta, dict):
        return ["Required field missing - Meta"]
    problems = [f"Required field missing - Meta.{name}" for name in ("DataModel", "EventType")
                if not isinstance(meta.get(name), str)]
    destinations = meta.get("Destinations")
    if not isinstance(destinations, list) or not destinations:
        problems.append("Required field missing - Meta.Destinations")
        return problems
    for index, destination in enumerate(destinations):
        dest_id = destination.get("ID") if isinstance(destination, dict) else None
        if not isinstance(dest_id, str) or not UUID_SHAPE.match(dest_id):
            problems.append(f"Required field missing - Meta.Destinations[{index}].ID "
                            "(a destination UUID)")
    return problems


def _foreign_uri(ctx, message, source: str) -> str | None:
    """The first string in the message that looks like one of our blob URIs but is not one
    this sandbox issued to `source`, else None."""
    prefixes = ctx.blob_prefixes()
    stack = [message]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and value.startswith(prefixes):
            blob_id = value.split("/blob/", 1)[1]
            blob = ctx.state.blob(blob_id)
            if blob is None or blob[0] != source:
                return value
    return None
