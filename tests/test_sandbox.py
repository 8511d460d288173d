"""The Redox sandbox, tested as clients see it: real HTTP against the subprocess.

Most tests share one module-scoped subprocess, reset before each test (faults back to defaults,
records cleared), to keep the file fast; tests needing start-up flags start their own.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sandbox_control import DEV_CLIENT_ID, DEV_KEY_FILE, DEV_KID, LEGACY_API_KEY, LEGACY_SECRET, SandboxProcess

EMR = "af394f14-b34a-464f-8d24-895f370af4c9"
OTHER = "0b7e3c0e-5f5a-4c43-9a43-4f1c1e5d2a11"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEV_KEY = DEV_KEY_FILE.read_bytes()


def assertion(url, *, kid=DEV_KID, client_id=DEV_CLIENT_ID, key=DEV_KEY, alg="ES384",
              aud=None, jti=None, iat=None, lifetime=300):
    now = int(time.time()) if iat is None else iat
    claims = {"iss": client_id, "sub": client_id, "aud": aud or f"{url}/v2/auth/token",
              "iat": now, "exp": now + lifetime, "jti": jti or uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def token_request(http, url, signed):
    return http.post(f"{url}/v2/auth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed}, timeout=5)


def oauth_token(http, url) -> str:
    reply = token_request(http, url, assertion(url))
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def message(*destinations, marker=None, **extra):
    body = {"Meta": {"DataModel": "Notes", "EventType": "New", "Test": True,
                     "Destinations": [{"ID": d, "Name": "x"} for d in destinations or [EMR]]},
            **extra}
    if marker is not None:
        body["_test_marker"] = marker
    return body


def send(http, url, token, body, **kwargs):
    return http.post(f"{url}/endpoint", json=body, headers=bearer(token), timeout=5, **kwargs)


# -- OAuth --------------------------------------------------------------------------------------

def test_oauth_token_with_dev_key(sb, http):
    reply = token_request(http, sb.url, assertion(sb.url))
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300 and body["scope"]
    assert send(http, sb.url, body["access_token"], message()).status_code == 200
    assert sb.records()["token_requests"][0]["kind"] == "oauth"


def test_localhost_audience_accepted(sb, http):
    aud = f"http://localhost:{sb.port}/v2/auth/token"
    assert token_request(http, sb.url, assertion(sb.url, aud=aud)).status_code == 200


def test_replayed_jti_refused(sb, http):
    signed = assertion(sb.url)
    assert token_request(http, sb.url, signed).status_code == 200
    again = token_request(http, sb.url, signed)
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert "jti" in again.json()["error_description"]


@pytest.mark.parametrize("change, phrase", [
    ({"aud": "https://api.redoxengine.com/v2/auth/token"}, "aud"),
    ({"kid": "no-such-key"}, "Public key not found"),
    ({"client_id": "someone-else"}, "Public key not found"),
    ({"iat": int(time.time()) - 900}, "expired"),
    ({"lifetime": 3600}, "exp"),
])
def test_bad_assertions_refused(sb, http, change, phrase):
    reply = token_request(http, sb.url, assertion(sb.url, **change))
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    assert phrase in reply.json()["error_description"]
    assert "error_uri" in reply.json()


def test_wrong_signing_key_refused(sb, http):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reply = token_request(http, sb.url, assertion(sb.url, key=other, alg="RS384"))
    assert reply.status_code == 401


def test_malformed_token_request_is_400(sb, http):
    reply = http.post(f"{sb.url}/v2/auth/token", data={"grant_type": "password"}, timeout=5)
    assert reply.status_code == 400 and reply.json()["error"]


def test_extra_key_legacy_credentials_and_destinations_flags(tmp_path, http):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "k.pem").write_bytes(pem)
    with SandboxProcess("--public-key", f"k2=client-2={tmp_path / 'k.pem'}",
                        "--legacy-credentials", "key2:secret2", "--destination", EMR) as sb:
        reply = token_request(http, sb.url, assertion(sb.url, kid="k2", client_id="client-2",
                                                      key=key, alg="RS384"))
        assert reply.status_code == 200
        token = reply.json()["access_token"]
        assert send(http, sb.url, token, message(EMR)).status_code == 200
        refused = send(http, sb.url, token, message(OTHER))
        assert refused.status_code == 403 and refused.json()["Meta"]["Errors"]
        legacy = http.post(f"{sb.url}/auth/authenticate",
                           json={"apiKey": "key2", "secret": "secret2"}, timeout=5)
        assert legacy.status_code == 200


# -- legacy -------------------------------------------------------------------------------------

def test_legacy_authenticate_and_refresh(sb, http):
    first = http.post(f"{sb.url}/auth/authenticate",
                      json={"apiKey": LEGACY_API_KEY, "secret": LEGACY_SECRET}, timeout=5)
    assert first.status_code == 200
    body = first.json()
    assert body["expires"].endswith("Z") and body["refreshToken"]
    assert send(http, sb.url, body["accessToken"], message()).status_code == 200
    second = http.post(f"{sb.url}/auth/refreshToken",
                       json={"apiKey": LEGACY_API_KEY, "refreshToken": body["refreshToken"]},
                       timeout=5)
    assert second.status_code == 200
    assert second.json()["accessToken"] != body["accessToken"]
    kinds = [r["kind"] for r in sb.records()["token_requests"]]
    assert kinds == ["legacy", "refresh"] and sb.records()["tokens_issued"] == 2


def test_legacy_bad_secret_is_plain_text_401(sb, http):
    reply = http.post(f"{sb.url}/auth/authenticate",
                      json={"apiKey": LEGACY_API_KEY, "secret": "wrong"}, timeout=5)
    assert reply.status_code == 401
    assert reply.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(ValueError):
        reply.json()


@pytest.mark.parametrize("fields", [{"apiKey": "unknown"}, {"apiKey": LEGACY_API_KEY},
                                    {"apiKey": "unknown", "secret": None}, {}])
def test_legacy_missing_secret_or_unknown_key_is_401(sb, http, fields):
    reply = http.post(f"{sb.url}/auth/authenticate", json=fields, timeout=5)
    assert reply.status_code == 401 and sb.records()["tokens_issued"] == 0


def test_refuse_credentials(sb, http):
    sb.faults(refuse_credentials=True)
    assert token_request(http, sb.url, assertion(sb.url)).status_code == 401
    legacy = http.post(f"{sb.url}/auth/authenticate",
                       json={"apiKey": LEGACY_API_KEY, "secret": LEGACY_SECRET}, timeout=5)
    assert legacy.status_code == 401 and legacy.headers["Content-Type"].startswith("text/")


def test_expired_tokens_get_401(sb, http):
    token = oauth_token(http, sb.url)
    sb.expire_tokens()
    assert send(http, sb.url, token, message()).status_code == 401
    assert send(http, sb.url, "made-up", message()).status_code == 401
    assert http.post(f"{sb.url}/endpoint", json=message(), timeout=5).status_code == 401


def test_token_ttl(sb, http):
    sb.faults(token_ttl_seconds=0)
    reply = token_request(http, sb.url, assertion(sb.url))
    assert reply.json()["expires_in"] == 0
    assert send(http, sb.url, reply.json()["access_token"], message()).status_code == 401


# -- SEND ---------------------------------------------------------------------------------------

def test_send_returns_one_log_per_destination(sb, http):
    token = oauth_token(http, sb.url)
    reply = send(http, sb.url, token, message(EMR, OTHER, marker="m1"))
    assert reply.status_code == 200
    meta = reply.json()["Meta"]
    assert meta["DataModel"] == "Notes" and isinstance(meta["Message"]["ID"], int)
    assert len(meta["Logs"]) == 2
    assert all(uuid.UUID(log["ID"]) and uuid.UUID(log["AttemptID"]) for log in meta["Logs"])
    [record] = sb.records()["sends"]
    assert record["status"] == 200 and record["marker"] == "m1" and not record["dropped"]
    assert record["destinations"] == [EMR, OTHER]
    assert record["log_ids"] == [log["ID"] for log in meta["Logs"]]
    assert record["body_sha256"] == hashlib.sha256(reply.request.body).hexdigest()


@pytest.mark.parametrize("body, field", [
    ({"Meta": {"EventType": "New", "Destinations": [{"ID": EMR}]}}, "Meta.DataModel"),
    ({"Meta": {"DataModel": "Notes", "EventType": 3, "Destinations": [{"ID": EMR}]}},
     "Meta.EventType"),
    ({"Meta": {"DataModel": "Notes", "EventType": "New", "Destinations": []}},
     "Meta.Destinations"),
    ({"Meta": {"DataModel": "Notes", "EventType": "New", "Destinations": [{"ID": "x"}]}},
     "Meta.Destinations[0].ID"),
])
def test_send_invalid_message_is_400(sb, http, body, field):
    reply = send(http, sb.url, oauth_token(http, sb.url), body)
    assert reply.status_code == 400
    [error] = reply.json()["Meta"]["Errors"]
    assert error["Text"].startswith("Required field missing - " + field)
    assert error["Type"] == "message" and error["Module"] == "Send" and error["ID"]


def test_send_not_json_is_400(sb, http):
    reply = http.post(f"{sb.url}/endpoint", data=b"not json",
                      headers=bearer(oauth_token(http, sb.url)), timeout=5)
    assert reply.status_code == 400 and reply.json()["Meta"]["Errors"]


def test_send_over_limit_is_413_and_connection_reusable(sb, http):
    sb.faults(send_limit_bytes=1000)
    token = oauth_token(http, sb.url)
    reply = send(http, sb.url, token, message(filler="x" * 2000))
    assert reply.status_code == 413
    assert send(http, sb.url, token, message()).status_code == 200


def test_fail_next_consumed_in_order(sb, http):
    token = oauth_token(http, sb.url)
    sb.faults(fail_next=[503, 502, 429], retry_after=2)
    first, second, third, fourth = (send(http, sb.url, token, message()) for _ in range(4))
    assert first.status_code == 503 and first.json()["Meta"]["Errors"]
    assert second.status_code == 502 and second.headers["Content-Type"].startswith("text/")
    assert third.status_code == 429 and third.headers["Retry-After"] == "2"
    assert "X-RateLimit-Limit" in third.headers
    assert fourth.status_code == 200
    assert [r["status"] for r in sb.records()["sends"]] == [503, 502, 429, 200]
    assert sb.faults()["fail_next"] == []


def test_error_rate(sb, http):
    sb.faults(error_rate=1.0, error_status=504)
    assert send(http, sb.url, oauth_token(http, sb.url), message()).status_code == 504


def test_unknown_fault_is_refused(sb, http):
    reply = http.post(f"{sb.url}/_sandbox/faults", json={"no_such_fault": 1}, timeout=5)
    assert reply.status_code == 400 and "no_such_fault" in reply.json()["error"]
    bad = http.post(f"{sb.url}/_sandbox/faults", json={"error_rate": 2}, timeout=5)
    assert bad.status_code == 400


def test_drop_after_accept(sb, http):
    token = oauth_token(http, sb.url)
    sb.faults(drop_after_accept_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        send(http, sb.url, token, message(marker="dropped-1"))
    [record] = sb.records()["sends"]
    assert record["dropped"] is True and record["status"] == 200
    assert len(record["log_ids"]) == 1 and record["marker"] == "dropped-1"


def test_rate_limit_gives_429(sb, http):
    sb.faults(rate_limit_per_second=3, retry_after=1)
    token = oauth_token(http, sb.url)
    statuses = [send(http, sb.url, token, message()) for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200] and limited
    assert limited[0].headers["X-RateLimit-Limit"] == "3"
    assert limited[0].headers["Retry-After"] == "1"


# -- uploads ------------------------------------------------------------------------------------

def test_upload_streams_and_send_with_its_uri_is_accepted(sb, http):
    token = oauth_token(http, sb.url)
    data = os.urandom(3 * 1024 * 1024 + 17)
    reply = http.post(f"{sb.url}/upload", headers=bearer(token), timeout=10,
                      files={"file": ("doc.pdf", data, "application/pdf")})
    assert reply.status_code == 201
    uri = reply.json()["URI"]
    assert uri.startswith(f"{sb.url}/blob/")
    meta = http.get(uri, headers=bearer(token), timeout=5).json()
    assert meta == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    body = message(Note={"FileContents": uri, "ContentType": "Plain Text"})
    assert send(http, sb.url, token, body).status_code == 200
    records = sb.records(bodies=True)
    assert records["uploads"][0]["sha256"] == meta["sha256"]
    assert records["sends"][0]["body"]["Note"]["FileContents"] == uri


def test_chunked_upload(sb, http):
    token = oauth_token(http, sb.url)
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.bin\"\r\n\r\n").encode()
    payload = b"\r\n--b0undar" * 5000  # looks almost like a delimiter, over and over
    chunks = [head, payload[:7], payload[7:], f"\r\n--{boundary}--\r\n".encode()]
    reply = http.post(f"{sb.url}/upload", data=iter(chunks), timeout=10, headers={
        **bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert reply.status_code == 201
    assert sb.records()["uploads"][0]["size"] == len(payload)
    assert sb.records()["uploads"][0]["sha256"] == hashlib.sha256(payload).hexdigest()


def test_upload_errors(sb, http):
    token = oauth_token(http, sb.url)
    no_file = http.post(f"{sb.url}/upload", headers=bearer(token), timeout=5,
                        files={"other": ("a.txt", b"abc")})
    assert no_file.status_code == 400
    sb.faults(upload_limit_bytes=1000, upload_fail_next=[503])
    failed = http.post(f"{sb.url}/upload", headers=bearer(token), timeout=5,
                       files={"file": ("a.bin", b"a")})
    assert failed.status_code == 503
    big = http.post(f"{sb.url}/upload", headers=bearer(token), timeout=5,
                    files={"file": ("a.bin", b"a" * 1001)})
    assert big.status_code == 413
    assert [u["status"] for u in sb.records()["uploads"]] == [400, 503, 413]


def test_send_with_unknown_or_foreign_uri_is_rejected(sb, http):
    token = oauth_token(http, sb.url)
    made_up = message(Note={"FileContents": f"{sb.url}/blob/{uuid.uuid4()}"})
    reply = send(http, sb.url, token, made_up)
    assert reply.status_code == 400
    assert "Unknown file URI" in reply.json()["Meta"]["Errors"][0]["Text"]
    uri = http.post(f"{sb.url}/upload", headers=bearer(token), timeout=5,
                    files={"file": ("a.bin", b"abc")}).json()["URI"]
    legacy = http.post(f"{sb.url}/auth/authenticate", timeout=5,
                       json={"apiKey": LEGACY_API_KEY, "secret": LEGACY_SECRET}).json()
    foreign = send(http, sb.url, legacy["accessToken"], message(Note={"FileContents": uri}))
    assert foreign.status_code == 400


# -- Platform log lookup ------------------------------------------------------------------------

def test_log_lookup(sb, http):
    token = oauth_token(http, sb.url)
    sb.faults(delivery_fail_marker=["bad"])
    ok = send(http, sb.url, token, message(marker="good")).json()["Meta"]["Logs"][0]["ID"]
    bad = send(http, sb.url, token, message(marker="bad")).json()["Meta"]["Logs"][0]["ID"]
    base = f"{sb.url}/platform/v1/organizations/org-1/logs"
    reply = http.get(f"{base}/{ok}", headers=bearer(token), timeout=5)
    assert reply.status_code == 200
    result = reply.json()["payload"]["result"]
    assert result["id"] == ok and result["attempts"]["total"] == 1
    assert result["attempts"]["latest"]["status"] == "succeeded"
    failed = http.get(f"{base}/{bad}", headers=bearer(token), timeout=5).json()
    assert failed["payload"]["result"]["attempts"]["latest"]["status"] == "failed"
    sb.faults(delivery_overrides={ok: "pending"}, platform_fail_next=[500])
    assert http.get(f"{base}/{ok}", headers=bearer(token), timeout=5).status_code == 500
    pending = http.get(f"{base}/{ok}", headers=bearer(token), timeout=5).json()
    assert pending["payload"]["result"]["attempts"]["latest"]["status"] == "pending"
    assert http.get(f"{base}/{uuid.uuid4()}", headers=bearer(token), timeout=5).status_code == 404
    assert [r["status"] for r in sb.records()["log_lookups"]] == [200, 200, 500, 200, 404]


# -- control and process ------------------------------------------------------------------------

def test_reset_restores_faults_and_clears_records(sb, http):
    send(http, sb.url, oauth_token(http, sb.url), message())
    sb.faults(latency_ms=5, fail_next=[500])
    sb.reset()
    assert sb.faults()["fail_next"] == [] and sb.faults()["latency_ms"] == 0
    records = sb.records()
    assert records["sends"] == [] and records["token_requests"] == []


def test_sigterm_exits_zero(sandbox, http):
    assert http.get(f"{sandbox.url}/_sandbox/faults", timeout=5).status_code == 200
    assert sandbox.stop() == 0


def test_in_process_sandbox(http):
    pipeline_sandbox = pytest.importorskip("pipeline.sandbox")
    with pipeline_sandbox.Sandbox(fail_next=[503]) as sb:
        token = oauth_token(http, sb.url)
        assert send(http, sb.url, token, message()).status_code == 503
        assert send(http, sb.url, token, message()).status_code == 200
        assert len(sb.records()["sends"]) == 2


def test_the_redox_pipeline_sandbox_command_speaks_json_when_asked():
    """`redox-pipeline sandbox --log-format json`: its ready line is one JSON object too."""
    import json as _json
    import subprocess
    import sys as _sys
    proc = subprocess.Popen([_sys.executable, "-m", "pipeline", "sandbox", "--port", "0",
                             "--log-format", "json"], stdout=subprocess.PIPE, text=True)
    try:
        ready = _json.loads(proc.stdout.readline())
        assert ready["event"] == "sandbox listening" and ready["url"].startswith("http://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_help_says_what_the_sandbox_trusts_and_explains_every_flag():
    """`redox-pipeline sandbox --help` is enough to start: credentials, own keys, control API."""
    import subprocess
    import sys as _sys
    from pathlib import Path

    import pipeline
    from pipeline.sandbox.faults import FAULT_DEFAULTS
    from pipeline.sandbox.options import FAULT_FLAGS, build_parser

    # The folder holding the package under test, wherever the checkout keeps it.
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).resolve().parents[1])}
    shown = subprocess.run([_sys.executable, "-m", "pipeline", "sandbox", "--help"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0
    for needle in (DEV_KID, DEV_CLIENT_ID, LEGACY_API_KEY, LEGACY_SECRET, "--public-key",
                   "examples/sandbox-client-key.pem", "/_sandbox/faults", "/_sandbox/reset",
                   "/_sandbox/expire-tokens", "/_sandbox/records", "--send-wire"):
        assert needle in shown.stdout
    assert all(action.help for action in build_parser()._actions)
    assert {name for _, name, _ in FAULT_FLAGS} <= FAULT_DEFAULTS.keys()


def test_in_process_sandbox_takes_the_new_faults(http):
    pipeline_sandbox = pytest.importorskip("pipeline.sandbox")
    with pipeline_sandbox.Sandbox(send_reply="html", retry_after="inf") as sb:
        reply = send(http, sb.url, oauth_token(http, sb.url), message())
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/html")
        assert sb.records()["sends"][0]["reply"] == "html"
    with pytest.raises(ValueError):
        pipeline_sandbox.Sandbox(send_wire="sideways")
