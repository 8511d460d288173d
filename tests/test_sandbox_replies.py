"""Sandbox faults that change what a reply says: 200s that are not acceptances, odd token
replies, error texts and bodies, Retry-After of any shape. Real HTTP against the subprocess.

One module-scoped sandbox, reset before each test; tests needing start-up flags start their own.
"""

from __future__ import annotations

import json
import math
import uuid

import pytest
from sandbox_control import LEGACY_API_KEY, LEGACY_SECRET, SandboxProcess, token_form

EMR = "af394f14-b34a-464f-8d24-895f370af4c9"
OTHER = "0b7e3c0e-5f5a-4c43-9a43-4f1c1e5d2a11"
PATIENT_TEXT = "Patient Jane Q. Doe, DOB 1970-01-01, MRN 000123 \x1b[31mred\x1b[0m \x1b]0;title\x07"


def message(*destinations, marker=None):
    body = {"Meta": {"DataModel": "Notes", "EventType": "New",
                     "Destinations": [{"ID": d} for d in destinations or [EMR]]}}
    if marker is not None:
        body["_test_marker"] = marker
    return body


def send(http, sb, token, body):
    return http.post(f"{sb.url}/endpoint", json=body, timeout=10,
                     headers={"Authorization": f"Bearer {token}"})


def legacy_login(http, sb):
    return http.post(f"{sb.url}/auth/authenticate", timeout=10,
                     json={"apiKey": LEGACY_API_KEY, "secret": LEGACY_SECRET})


# -- SEND: 200 replies that are not acceptances -------------------------------------------------

def _check_send_reply(mode, reply):
    """Assert that `reply` has the shape `mode` promises."""
    kind = reply.headers["Content-Type"]
    if mode == "html":
        assert kind.startswith("text/html") and b"<html" in reply.content
    elif mode == "text":
        assert kind.startswith("text/plain") and reply.content == b"OK"
    elif mode == "empty":
        assert reply.content == b"" and reply.headers["Content-Length"] == "0"
    elif mode == "truncated_json":
        with pytest.raises(ValueError):
            json.loads(reply.content)
    elif mode == "not_object":
        assert reply.json() == []
    elif mode == "no_meta":
        assert "Meta" not in reply.json()
    else:
        meta = reply.json()["Meta"]
        if mode == "no_logs":
            assert "Logs" not in meta
        elif mode == "short_logs":
            assert len(meta["Logs"]) == 1  # two destinations
        elif mode == "bad_log_ids":
            ids = [log["ID"] for log in meta["Logs"]]
            assert len(ids) == 2 and not any(isinstance(i, str) and _is_uuid(i) for i in ids)
        elif mode == "errors":
            assert meta["Errors"] and meta["Errors"][0]["Text"] and len(meta["Logs"]) == 2


def _is_uuid(text):
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("mode", ["html", "text", "empty", "not_object", "no_meta", "no_logs",
                                  "short_logs", "bad_log_ids", "errors", "truncated_json"])
def test_send_reply_modes_answer_200_and_still_record_the_send(sb, http, mode):
    token = sb.oauth_token()
    sb.faults(send_reply=mode)
    reply = send(http, sb, token, message(EMR, OTHER, marker=f"m-{mode}"))
    assert reply.status_code == 200
    _check_send_reply(mode, reply)
    [record] = sb.records()["sends"]
    assert record["status"] == 200 and record["reply"] == mode
    assert record["marker"] == f"m-{mode}" and len(record["log_ids"]) == 2


def test_send_reply_next_is_consumed_by_accepted_sends_only(sb, http):
    token = sb.oauth_token()
    sb.faults(fail_next=[503], send_reply_next=["html", "empty"])
    statuses = [send(http, sb, token, message()).status_code for _ in range(4)]
    assert statuses == [503, 200, 200, 200]
    records = sb.records()["sends"]
    assert [r["reply"] for r in records] == [None, "html", "empty", "normal"]
    assert sb.faults()["send_reply_next"] == []


def test_log_ids_of_an_unacknowledged_send_can_be_looked_up(sb, http):
    """The sandbox really accepted the message: its Log IDs exist for the Platform API."""
    token = sb.oauth_token()
    sb.faults(send_reply_next="html")
    send(http, sb, token, message())
    [log_id] = sb.records()["sends"][0]["log_ids"]
    lookup = http.get(f"{sb.url}/platform/v1/organizations/o/logs/{log_id}", timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    assert lookup.status_code == 200


# -- token replies ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["html", "text", "empty", "not_object", "no_access_token",
                                  "no_expires", "errors", "truncated_json"])
def test_token_reply_modes(sb, http, mode):
    sb.faults(token_reply_next=[mode, mode])
    for reply, token_key, expires_key in (
            (http.post(f"{sb.url}/v2/auth/token", data=token_form(sb.url), timeout=10),
             "access_token", "expires_in"),
            (legacy_login(http, sb), "accessToken", "expires")):
        assert reply.status_code == 200
        if mode == "no_access_token":
            assert token_key not in reply.json() and expires_key in reply.json()
        elif mode == "no_expires":
            assert expires_key not in reply.json() and reply.json()[token_key]
        elif mode == "errors":
            assert reply.json()["error"] and reply.json()[token_key]
        else:
            _check_send_reply(mode, reply)  # the shared shapes look the same
    records = sb.records()
    assert [r["reply"] for r in records["token_requests"]] == [mode, mode]
    assert [r["kind"] for r in records["token_requests"]] == ["oauth", "legacy"]
    assert records["tokens_issued"] == 2


@pytest.mark.parametrize("raw, parsed", [('"3600s"', "3600s"), ("[3600]", [3600]),
                                         ("null", None), ("-1", -1), ('"3600"', "3600"),
                                         ("1e309", math.inf), ("NaN", "nan")])
def test_odd_expires_values_arrive_verbatim(sb, http, raw, parsed):
    sb.faults(oauth_expires_in=raw, legacy_expires=raw)
    oauth = http.post(f"{sb.url}/v2/auth/token", data=token_form(sb.url), timeout=10)
    legacy = legacy_login(http, sb)
    assert f'"expires_in":{raw}'.encode() in oauth.content
    assert f'"expires":{raw}'.encode() in legacy.content
    value = oauth.json()["expires_in"]
    assert (math.isnan(value) if parsed == "nan" else value == parsed)
    # the token itself is good: only its lifetime is odd
    assert send(http, sb, oauth.json()["access_token"], message()).status_code == 200


@pytest.mark.parametrize("value", ["tok\r\nX-Injected: yes", "tök€n-✓", "t\x00k"])
def test_access_token_value_is_issued_verbatim(sb, http, value):
    sb.faults(access_token_value=value)
    oauth = http.post(f"{sb.url}/v2/auth/token", data=token_form(sb.url), timeout=10)
    assert oauth.json()["access_token"] == value
    assert legacy_login(http, sb).json()["accessToken"] == value


def test_access_token_value_works_as_a_bearer_when_it_can_be_sent(sb, http):
    sb.faults(access_token_value="caf\u00e9 token")  # Latin-1: a header can carry it
    token = sb.oauth_token()
    assert send(http, sb, token, message()).status_code == 200


# -- error texts and bodies ---------------------------------------------------------------------

def test_error_text_replaces_the_text_of_every_error_reply(sb, http):
    token = sb.oauth_token()
    sb.faults(error_text=PATIENT_TEXT, fail_next=[503])
    forced = send(http, sb, token, message())
    assert forced.json()["Meta"]["Errors"][0]["Text"] == PATIENT_TEXT
    invalid = send(http, sb, token, {"Meta": {}})
    assert [e["Text"] for e in invalid.json()["Meta"]["Errors"]] == [PATIENT_TEXT]
    oauth = http.post(f"{sb.url}/v2/auth/token", data={"grant_type": "x"}, timeout=10)
    assert oauth.status_code == 400 and oauth.json()["error_description"] == PATIENT_TEXT
    legacy = http.post(f"{sb.url}/auth/authenticate", json={"apiKey": "x"}, timeout=10)
    assert legacy.status_code == 401 and legacy.text == PATIENT_TEXT
    lookup = http.get(f"{sb.url}/platform/v1/organizations/o/logs/{uuid.uuid4()}", timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    assert lookup.status_code == 404 and lookup.json()["errors"][0]["message"] == PATIENT_TEXT
    upload = http.post(f"{sb.url}/upload", timeout=10, files={"other": ("a", b"a")},
                       headers={"Authorization": f"Bearer {token}"})
    assert upload.json()["Meta"]["Errors"][0]["Text"] == PATIENT_TEXT


def test_error_text_in_a_200_with_meta_errors(sb, http):
    sb.faults(error_text=PATIENT_TEXT, send_reply="errors")
    reply = send(http, sb, sb.oauth_token(), message())
    assert reply.status_code == 200 and reply.json()["Meta"]["Errors"][0]["Text"] == PATIENT_TEXT


@pytest.mark.parametrize("kind, content_type", [("text", "text/plain"), ("html", "text/html")])
def test_error_body_text_and_html(sb, http, kind, content_type):
    token = sb.oauth_token()
    sb.faults(error_body=kind, error_text=PATIENT_TEXT, fail_next=[500], retry_after=1,
              retry_after_statuses=[500])
    reply = send(http, sb, token, message())
    assert reply.status_code == 500 and reply.headers["Content-Type"].startswith(content_type)
    assert PATIENT_TEXT in reply.text and reply.headers["Retry-After"] == "1"
    with pytest.raises(ValueError):
        reply.json()


# -- Retry-After --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "-5", "Fri, 31 Dec 9999 23:59:59 GMT",
                                   "1e400", "soon", ""])
def test_retry_after_any_text_on_429_and_503(sb, http, value):
    token = sb.oauth_token()
    sb.faults(retry_after=value, retry_after_statuses=[429, 503], fail_next=[503, 429, 500])
    first, second, third = (send(http, sb, token, message()) for _ in range(3))
    assert first.status_code == 503 and first.headers["Retry-After"] == value
    assert second.status_code == 429 and second.headers["Retry-After"] == value
    assert third.status_code == 500 and "Retry-After" not in third.headers


def test_retry_after_reaches_uploads_platform_and_rate_limits(sb, http):
    token = sb.oauth_token()
    sb.faults(retry_after=7, retry_after_statuses=[503, 429], upload_fail_next=[503],
              platform_fail_next=[503])
    upload = http.post(f"{sb.url}/upload", timeout=10, files={"file": ("a", b"a")},
                       headers={"Authorization": f"Bearer {token}"})
    assert upload.status_code == 503 and upload.headers["Retry-After"] == "7"
    lookup = http.get(f"{sb.url}/platform/v1/organizations/o/logs/x", timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    assert lookup.status_code == 503 and lookup.headers["Retry-After"] == "7"
    sb.faults(rate_limit_per_second=1)
    limited = [send(http, sb, token, message()) for _ in range(3)][-1]
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"


def test_retry_after_only_on_listed_statuses(sb, http):
    token = sb.oauth_token()
    sb.faults(retry_after=3, fail_next=[503, 429])  # default list: 429 only
    assert "Retry-After" not in send(http, sb, token, message()).headers
    assert send(http, sb, token, message()).headers["Retry-After"] == "3"


# -- validation, reset and start-up flags --------------------------------------------------------

@pytest.mark.parametrize("faults", [
    {"send_reply": "nope"}, {"send_reply_next": ["html", "nope"]}, {"token_reply": 1},
    {"retry_after": "a\r\nb"}, {"retry_after": "\u2603"}, {"retry_after": -1},
    {"retry_after_statuses": [99]}, {"oauth_expires_in": 3600}, {"error_body": "xml"},
    {"error_text": ["x"]}, {"access_token_value": 5}, {"latency_ms": float("nan")},
])
def test_bad_values_are_refused(sb, http, faults):
    # json.dumps, not requests' json=: it would refuse to send NaN, which the sandbox must refuse
    reply = http.post(f"{sb.url}/_sandbox/faults", data=json.dumps(faults), timeout=10)
    assert reply.status_code == 400 and next(iter(faults)) in reply.json()["error"]


def test_reset_restores_the_new_faults(sb):
    sb.faults(send_reply="html", token_reply_next=["empty"], error_text="x", retry_after="inf",
              retry_after_statuses=[503], oauth_expires_in="null")
    after = sb.reset()
    assert after["send_reply"] == "normal" and after["token_reply_next"] == []
    assert after["error_text"] is None and after["retry_after"] is None
    assert after["retry_after_statuses"] == [429] and after["oauth_expires_in"] is None


def test_start_up_flags_set_the_new_faults_and_survive_reset(http):
    with SandboxProcess("--send-reply", "no_logs", "--token-reply", "no_expires",
                        "--retry-after", "Fri, 31 Dec 9999 23:59:59 GMT",
                        "--retry-after-statuses", "429,503", "--error-body", "text",
                        "--error-text", "boom", "--oauth-expires-in", '"3600s"',
                        "--legacy-expires", "0", "--access-token-value", "fixed") as sb:
        faults = sb.reset()
        assert faults["send_reply"] == "no_logs" and faults["token_reply"] == "no_expires"
        assert faults["retry_after"] == "Fri, 31 Dec 9999 23:59:59 GMT"
        assert faults["retry_after_statuses"] == [429, 503]
        assert faults["error_body"] == "text" and faults["error_text"] == "boom"
        assert faults["oauth_expires_in"] == '"3600s"' and faults["legacy_expires"] == "0"
        assert faults["access_token_value"] == "fixed"
        token = http.post(f"{sb.url}/v2/auth/token", data=token_form(sb.url), timeout=10)
        assert token.json() == {"access_token": "fixed", "token_type": "bearer",
                                "scope": "sandbox"}
    with SandboxProcess("--retry-after", "2") as sb:
        assert sb.faults()["retry_after"] == 2
