"""Success replies in every shape a client must not take for success: `send_reply` and
`token_reply` modes (faults.SEND_REPLY_MODES, faults.TOKEN_REPLY_MODES).

The sandbox has really accepted the request when one of these is sent: a SEND is recorded and
its Log IDs issued, a token is issued and works. Only the answer is wrong, as when a proxy or a
broken gateway stands in front of Redox; the record names the mode so tests can tell.
"""

from __future__ import annotations

import json

from .error_replies import HTML_TYPE, TEXT_TYPE
from .wire import Reply, json_reply

LOGIN_PAGE = (b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>"
              b"<h1>Sign in to continue</h1><form method=\"post\" action=\"/login\">"
              b"<input name=\"user\"><input name=\"password\" type=\"password\">"
              b"<button>Sign in</button></form></body></html>")
# Log IDs a careless client might put in a Platform URL or a header as they are.
BAD_LOG_IDS = (None, 12345, "", "../../../logs/x?y=1#z", "bad\r\nX-Injected: 1")
SEND_ERROR_TEXT = "Destination rejected the message (sandbox fault)"
TOKEN_ERROR = {"error": "invalid_client", "error_description": "sandbox fault"}


def _common(mode: str, normal: bytes) -> Reply | None:
    """The modes SEND and token replies share; None for the others."""
    if mode == "html":
        return Reply(200, LOGIN_PAGE, HTML_TYPE)
    if mode == "text":
        return Reply(200, b"OK", TEXT_TYPE)
    if mode == "empty":
        return Reply(200, b"")
    if mode == "not_object":
        return Reply(200, b"[]")
    if mode == "truncated_json":
        return Reply(200, normal[:len(normal) // 2])
    return None


def send_acceptance(ctx, meta: dict, logs: list[dict], mode: str) -> Reply:
    """The 200 for an accepted SEND whose Meta is `meta` and whose issued Logs are `logs`."""
    normal = {**meta, "Logs": logs, "Message": {"ID": ctx.state.next_id()}, "Errors": []}
    common = _common(mode, json.dumps({"Meta": normal}, separators=(",", ":")).encode())
    if common is not None:
        return common
    if mode == "no_meta":
        return json_reply(200, {"Status": "accepted"})
    if mode == "no_logs":
        normal.pop("Logs")
    elif mode == "short_logs":
        normal["Logs"] = logs[:-1]
    elif mode == "bad_log_ids":
        normal["Logs"] = [{"ID": BAD_LOG_IDS[i % len(BAD_LOG_IDS)], "AttemptID": log["AttemptID"]}
                          for i, log in enumerate(logs)]
    elif mode == "errors":
        text = ctx.state.fault("error_text") or SEND_ERROR_TEXT
        normal["Errors"] = [{"ID": ctx.state.next_id(), "Text": text, "Type": "message",
                             "Module": "Send"}]
    return json_reply(200, {"Meta": normal})


def token_success(ctx, payload: dict, token_key: str, expires_key: str, mode: str) -> Reply:
    """The 200 for an issued token. `payload` is the normal reply; `token_key` and
    `expires_key` name its token and lifetime fields (OAuth and legacy differ).

    The lifetime field is replaced by the `oauth_expires_in` / `legacy_expires` fault (JSON
    text, put in verbatim, so `1e309` or `NaN` arrive exactly so) when that is set.
    """
    raw = ctx.state.fault("oauth_expires_in" if token_key == "access_token"
                          else "legacy_expires")
    normal = _with_raw(payload, expires_key, raw)
    common = _common(mode, normal)
    if common is not None:
        return common
    if mode == "no_access_token":
        return Reply(200, _with_raw({k: v for k, v in payload.items() if k != token_key},
                                    expires_key, raw))
    if mode == "no_expires":
        return json_reply(200, {k: v for k, v in payload.items() if k != expires_key})
    if mode == "errors":
        return json_reply(200, {**payload, **TOKEN_ERROR})
    return Reply(200, normal)


def _with_raw(payload: dict, key: str, raw: str | None) -> bytes:
    """`payload` as compact JSON, with field `key` (when present) spelled as the text `raw`."""
    if raw is None or key not in payload:
        return json.dumps(payload, separators=(",", ":")).encode()
    rest = json.dumps({k: v for k, v in payload.items() if k != key}, separators=(",", ":"))
    inner = rest[1:-1]
    return ("{" + inner + ("," if inner else "") + json.dumps(key) + ":" + raw + "}").encode()
