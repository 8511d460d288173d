"""Token replies of odd shape (OAuth, legacy, the Platform API key) against a real socket:
each is a clear AuthError naming the field, never a traceback, never the token's value; a
token fit to inject headers is never put into one. And ``status`` reports auth, never fails."""

from __future__ import annotations

import os
import shutil

import pytest
from pipeline_env import DEV_KEY, PipelineEnv
from raw_http import RawServer, answer, reply_bytes, trickle

from pipeline import config
from pipeline.config import AuthSettings
from pipeline.errors import AuthError, TransientDelivery
from pipeline.ops.status import probe_auth
from pipeline.redox.auth import LegacyTokens, OAuthTokens
from pipeline.redox.client import RedoxClient, Transport
from pipeline.redox.ratelimit import RateLimiter

SECRETISH = "tok-SHOULD-NOT-BE-SHOWN"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server():
    srv = RawServer()
    yield srv
    srv.close()


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "key.pem"
    shutil.copy(DEV_KEY, path)
    os.chmod(path, 0o600)
    return str(path)


def oauth(server: RawServer, key: str, clock=None, timeout: float = 2.0) -> OAuthTokens:
    auth = AuthSettings(method="oauth", client_id="c", key_id="k", private_key_file=key)
    return OAuthTokens(auth, server.url + "/token", Transport(2, timeout), clock=clock or Clock())


def legacy(server: RawServer, clock=None) -> LegacyTokens:
    auth = AuthSettings(method="legacy", api_key="key", secret="secret")
    return LegacyTokens(auth, server.url, Transport(2, 2), clock=clock or Clock())


def unusable(tokens, field: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        tokens.token()
    message = str(caught.value)
    assert message.startswith("Redox's token reply is unusable: ") and field in message
    assert SECRETISH not in message
    return caught.value


@pytest.mark.parametrize("expires_in", ["3600s", [3600], None, -1, 0, 10 ** 30, True],
                         ids=["string", "list", "null", "negative", "zero", "huge", "bool"])
def test_an_oauth_lifetime_that_is_not_a_sane_number_is_unusable(server, key, expires_in):
    server.route("/token", answer(200, {"access_token": SECRETISH, "expires_in": expires_in}))
    unusable(oauth(server, key), "expires_in")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_an_oauth_lifetime_that_is_not_finite_is_unusable(server, key, literal):
    body = b'{"access_token": "%s", "expires_in": %s}' % (SECRETISH.encode(), literal)
    server.route("/token", answer(200, body, [("Content-Type", "application/json")]))
    unusable(oauth(server, key), "expires_in")


@pytest.mark.parametrize("token", [None, 12345, "", ["t"], "abc\r\nX-Injected: 1", "abc\ndef",
                                   "tok\x01en", "t\x7fk", "tøken", "токен", "two words",
                                   "x" * 20000],
                         ids=["missing", "int", "empty", "list", "crlf", "lf", "control", "del",
                              "latin1", "cyrillic", "space", "too-long"])
def test_an_access_token_unfit_for_a_header_is_unusable_and_never_sent(server, key, token):
    doc = {"expires_in": 300} if token is None else {"access_token": token, "expires_in": 300}
    server.route("/token", answer(200, doc))
    tokens = oauth(server, key)
    client = RedoxClient(server.url, server.url + "/upload", tokens.transport, tokens,
                         RateLimiter(0))
    with pytest.raises(AuthError) as caught:
        client.send(b'{"Meta": {}}')
    assert "access_token" in str(caught.value)
    if isinstance(token, str) and token:
        assert token not in str(caught.value)
    assert server.paths() == ["/token"]            # nothing went out with it
    assert all("X-Injected" not in head for head, _ in server.requests)


def test_a_sane_lifetime_is_clamped_to_a_day(server, key):
    server.route("/token", answer(200, {"access_token": "t1", "expires_in": 10_000_000}))
    clock = Clock()
    tokens = oauth(server, key, clock)
    assert tokens.token() == "t1"
    clock.now += 24 * 3600 + 1
    tokens.token()
    assert server.paths() == ["/token", "/token"]   # renewed within the day


def test_a_missing_lifetime_defaults_and_a_good_reply_works(server, key):
    server.route("/token", answer(200, {"access_token": "eyJ.abc-_~+/=", "token_type": "bearer"}))
    assert oauth(server, key).token() == "eyJ.abc-_~+/="


@pytest.mark.parametrize("reply", [b"", b"<html>login</html>", b"[1]", b'"token"'])
def test_a_token_reply_that_is_not_a_json_object_is_unusable(server, key, reply):
    server.route("/token", answer(200, reply, [("Content-Type", "text/html")]))
    assert "not a JSON object" in str(unusable(oauth(server, key), "JSON"))


def test_a_compressed_token_reply_is_unusable(server, key):
    import gzip
    body = gzip.compress(b'{"access_token": "t", "expires_in": 300}')
    server.route("/token", answer(200, body, [("Content-Encoding", "gzip")]))
    assert "compressed" in str(unusable(oauth(server, key), "JSON"))


def test_a_refusal_names_the_status_and_oauth_code_but_quotes_no_description(server, key):
    server.route("/token", answer(401, {"error": "invalid_client",
                                        "error_description": f"unknown key {SECRETISH}"}))
    with pytest.raises(AuthError) as caught:
        oauth(server, key).token()
    assert str(caught.value) == "Redox refused the credentials (HTTP 401, invalid_client)"
    assert caught.value.errors == [f"unknown key {SECRETISH}"]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_an_auth_endpoint_that_is_down_is_transient(server, key, status):
    server.route("/token", answer(status, b"<html>down</html>", [("Retry-After", "inf")]))
    with pytest.raises(TransientDelivery):
        oauth(server, key).token()


def test_a_trickled_token_reply_is_cut_at_the_deadline(server, key):
    data = reply_bytes(200, {"access_token": "t", "expires_in": 300, "pad": "." * 300})
    server.route("/token", trickle(server, data, interval=0.02))
    with pytest.raises(TransientDelivery) as caught:
        oauth(server, key, timeout=1.0).token()
    assert "did not answer in time" in str(caught.value) and server.sent < len(data)


# -- legacy -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc, field", [
    ({"accessToken": "t", "expires": "tomorrow"}, "expires"),
    ({"accessToken": "t", "expires": 12345}, "expires"),
    ({"accessToken": "t", "expires": None}, "expires"),
    ({"accessToken": "t", "expires": "2001-01-01T00:00:00Z"}, "expires"),     # long past
    ({"accessToken": "t", "expires": "9999-12-31T23:59:59Z"}, "expires"),     # absurd
    ({"expires": "2030-01-01T00:00:00Z"}, "accessToken"),
    ({"accessToken": {"value": "t"}}, "accessToken"),
    ({"accessToken": "a\r\nb"}, "accessToken"),
])
def test_legacy_replies_of_odd_shape_are_unusable(server, doc, field):
    server.route("/auth/authenticate", answer(200, doc))
    unusable(legacy(server), field)


def test_a_legacy_lifetime_is_clamped_and_an_odd_refresh_token_ignored(server):
    clock = Clock()
    server.route("/auth/authenticate", answer(200, {"accessToken": "t1", "refreshToken": ["x"],
                                                    "expires": "2030-06-01T00:00:00Z"}))
    tokens = legacy(server, clock)
    assert tokens.token() == "t1"
    clock.now += 24 * 3600 + 1
    tokens.token()
    assert server.paths() == ["/auth/authenticate", "/auth/authenticate"]   # no refresh with ["x"]


# -- status never fails because of auth --------------------------------------------------------------

@pytest.mark.parametrize("behaviour, state", [
    (answer(200, {"access_token": "a\r\nb"}), "refused"),
    (answer(200, {"access_token": "t", "expires_in": "soon"}), "refused"),
    (answer(200, b"<html>proxy login</html>"), "refused"),
    (answer(400, {"error": "invalid_client"}), "refused"),
    (answer(503, b""), "unreachable"),
])
def test_status_reports_the_auth_state_with_a_sentence(server, tmp_path, behaviour, state):
    server.route("/v2/auth/token", behaviour)
    settings = config.load(PipelineEnv(tmp_path, server.url).config)
    result = probe_auth(settings, timeout=2)
    assert result["state"] == state and result["detail"].endswith(f"({server.url}/v2/auth/token)")
