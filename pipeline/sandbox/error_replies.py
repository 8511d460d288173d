"""Every error reply the sandbox sends, in one place, so `error_text` and `error_body` reach all.

Each builder makes the reply Redox would send (Meta.Errors JSON, the Platform API's `errors`,
OAuth's `error_description`, plain text) unless the faults say otherwise:
- `error_text` (a string) replaces the human text of the reply, verbatim: tests put patient
  data or ANSI escapes there and check that the client never logs or reports it;
- `error_body` `text` answers with that text alone as text/plain, `html` inside an HTML page
  (what a proxy's error page looks like); `json` keeps the usual shape.
"""

from __future__ import annotations

from .wire import Reply, json_reply, phrase

HTML_TYPE = "text/html; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


def _shaped(ctx, status: int, texts: list[str], headers, json_payload) -> Reply:
    """The reply for `texts`, after error_text / error_body; `json_payload(texts)` makes JSON."""
    override = ctx.state.fault("error_text")
    if override is not None:
        texts = [override]
    body = ctx.state.fault("error_body")
    if body == "text":
        return Reply(status, "\n".join(texts).encode(), TEXT_TYPE, tuple(headers))
    if body == "html":
        # Not escaped on purpose: a hostile page carries whatever it carries.
        page = (f"<!DOCTYPE html><html><head><title>{status} {phrase(status)}</title></head>"
                f"<body><h1>{phrase(status)}</h1><p>{'<br>'.join(texts)}</p></body></html>")
        return Reply(status, page.encode(), HTML_TYPE, tuple(headers))
    return json_payload(texts)


def redox_errors(ctx, status: int, texts, module: str = "Send", headers=()) -> Reply:
    """Redox's error shape: `{"Meta": {"Errors": [{"ID","Text","Type","Module"}]}}`."""
    def payload(texts):
        errors = [{"ID": ctx.state.next_id(), "Text": t, "Type": "message", "Module": module}
                  for t in texts]
        return json_reply(status, {"Meta": {"Errors": errors}}, headers)
    return _shaped(ctx, status, list(texts), headers, payload)


def platform_error(ctx, status: int, message: str, headers=()) -> Reply:
    """The Platform API's error shape: `{"meta": {...}, "errors": [{"message"}]}`."""
    return _shaped(ctx, status, [message], headers, lambda texts: json_reply(
        status, {"meta": {"version": "1.0"}, "errors": [{"message": t} for t in texts]},
        headers))


def oauth_error(ctx, status: int, code: str, description: str, uri: str) -> Reply:
    """OAuth's error shape: `{"error", "error_description", "error_uri"}`."""
    return _shaped(ctx, status, [description], (), lambda texts: json_reply(
        status, {"error": code, "error_description": texts[0], "error_uri": uri}))


def plain_error(ctx, status: int, text: str, headers=()) -> Reply:
    """A plain-text error, as Redox's gateway (502) and legacy auth (401) send."""
    def payload(texts):
        return Reply(status, "\n".join(texts).encode(), TEXT_TYPE, tuple(headers))
    return _shaped(ctx, status, [text], headers, payload)
