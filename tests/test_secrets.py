"""Secrets: credentials only from the environment or a key file named in config, never printed
or written anywhere; TLS verification always on for Redox; key files and outputs guarded."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hostile import TlsFront
from pipeline_env import PipelineEnv, message
from sandbox_control import SandboxProcess

from pipeline import app, config
from pipeline.errors import ConfigError

KID, CLIENT = "test-kid", "test-client"
API_KEY, SECRET = f"apikey-{secrets.token_hex(16)}", f"secret-{secrets.token_hex(16)}"
WRONG_SECRET = f"wrongsecret-{secrets.token_hex(16)}"
PATIENT = "PATIENT-MRN-7730041"                 # message content that must stay in the file


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = folder / "private.pem", folder / "public.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    os.chmod(private, 0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture
def sandbox(keypair):
    with SandboxProcess("--public-key", f"{KID}={CLIENT}={keypair[1]}",
                        "--legacy-credentials", f"{API_KEY}:{SECRET}") as process:
        yield process


def secret_material(private: Path) -> list[bytes]:
    """The secrets, and every 16-character piece of the private key (base64 and raw DER)."""
    pem = private.read_bytes()
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    der = base64.b64decode(body)
    pieces = [body[i:i + 16] for i in range(0, len(body) - 16, 16)]
    pieces += [der[i:i + 16] for i in range(0, len(der) - 16, 16)]
    return [API_KEY.encode(), SECRET.encode(), WRONG_SECRET.encode(), *pieces]


def everything_written(root: Path, exclude: set[Path]) -> dict[str, bytes]:
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path not in exclude:
            out[str(path)] = path.read_bytes()
    return out


def oauth_env(tmp_path: Path, url: str, private: Path, **redox) -> tuple[PipelineEnv, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = PipelineEnv(tmp_path, url, redox=dict(redox, auth={
        "method": "oauth", "client_id": "${REDOX_CLIENT_ID}", "key_id": "${REDOX_KEY_ID}",
        "private_key_file": "${REDOX_PRIVATE_KEY_FILE}"}))
    return env, {"REDOX_CLIENT_ID": CLIENT, "REDOX_KEY_ID": KID, "REDOX_PRIVATE_KEY_FILE": str(private)}


def legacy_env(tmp_path: Path, url: str, **overrides) -> PipelineEnv:
    tmp_path.mkdir(parents=True, exist_ok=True)
    redox = dict(overrides.pop("redox", {}), auth={
        "method": "legacy", "api_key": "${REDOX_API_KEY}", "secret": "${REDOX_SECRET}"})
    return PipelineEnv(tmp_path, url, redox=redox, **overrides)


def test_no_secret_or_key_material_reaches_any_output_log_sidecar_or_journal(tmp_path, sandbox, keypair):
    private = keypair[0]
    outputs: list[str] = []

    def run(env, *args, env_vars=None, expect=None):
        result = env.run(*args, env=env_vars)
        outputs.extend([result.stdout, result.stderr])
        if expect is not None:
            assert result.returncode == expect, result.stderr
        return result

    # OAuth: a good file, a bad one, one Redox refuses with 400; text and json logs; validate
    oauth, oauth_vars = oauth_env(tmp_path / "oauth", sandbox.url, private)
    oauth.drop("good.json", message("good", Patient={"Identifiers": [{"ID": PATIENT}]}))
    oauth.drop("bad.json", f'{{"Meta": {{"DataModel": 1}}, "who": "{PATIENT}"}}'.encode())
    run(oauth, "validate", env_vars=oauth_vars, expect=0)
    run(oauth, "validate", "--log-format", "json", env_vars=oauth_vars, expect=0)
    run(oauth, "run", "--once", env_vars=oauth_vars, expect=1)
    sandbox.faults(fail_next=[400])
    oauth.drop("refused.json", message("refused", who=PATIENT))
    run(oauth, "run", "--once", "--log-format", "json", env_vars=oauth_vars, expect=1)

    # legacy: from the environment; then refused with a wrong secret; then a literal in config
    legacy = legacy_env(tmp_path / "legacy", sandbox.url)
    legacy.drop("good.json", message("legacy-good", who=PATIENT))
    good_vars = {"REDOX_API_KEY": API_KEY, "REDOX_SECRET": SECRET}
    run(legacy, "validate", env_vars=good_vars, expect=0)
    run(legacy, "run", "--once", env_vars=good_vars, expect=0)
    legacy.drop("again.json", message("legacy-again"))
    wrong_vars = {"REDOX_API_KEY": API_KEY, "REDOX_SECRET": WRONG_SECRET}
    refused = run(legacy, "run", "--once", env_vars=wrong_vars, expect=3)
    assert "refused the credentials" in refused.stderr
    run(legacy, "run", "--once", "--log-format", "json", env_vars=wrong_vars, expect=3)
    legacy.config_data["redox"]["auth"]["secret"] = SECRET           # written into config.yaml
    legacy.config_data["redox"]["auth"]["secrett"] = "${REDOX_SECRET}"  # and a typo'd key
    legacy.write_config()
    bad = run(legacy, "validate", env_vars=good_vars, expect=2)
    assert "redox.auth.secret: a credential written into the config file" in bad.stderr
    assert "redox.auth.secrett: unknown key" in bad.stderr
    del legacy.config_data["redox"]["auth"]["secrett"]
    legacy.write_config()
    legacy.drop("literal.json", message("legacy-literal"))
    warned = run(legacy, "run", "--once", env_vars=good_vars, expect=0)   # works, and warns
    assert "a credential written into the config file" in warned.stderr
    legacy.config.write_text("")                                        # the file with the secret goes

    written = everything_written(tmp_path, exclude={private, oauth.key, legacy.key})
    assert any(p.endswith(".redox.json") for p in written) and any(p.endswith("state.db") for p in written)
    haystacks = [o.encode() for o in outputs] + list(written.values())
    for needle in secret_material(private):
        assert not any(needle in hay for hay in haystacks), needle
    for marker in (b"Bearer", b"accessToken", b"access_token", b"refreshToken", b"eyJ"):
        assert not any(marker in o.encode() for o in outputs), marker
    # and no message content in the logs, sidecars or journal (only the message files hold it)
    for path, data in written.items():
        if not path.endswith(".json") or path.endswith(".redox.json"):
            assert PATIENT.encode() not in data, path
    assert not any(PATIENT in o for o in outputs)


def test_a_key_file_others_can_read_gets_a_warning(tmp_path, sandbox, keypair):
    env, env_vars = oauth_env(tmp_path, sandbox.url, keypair[0])
    os.chmod(keypair[0], 0o640)
    try:
        loose = env.run("validate", env=env_vars)
    finally:
        os.chmod(keypair[0], 0o600)
    tight = env.run("validate", env=env_vars)
    assert loose.returncode == tight.returncode == 0
    assert "private key file is readable by group or others" in loose.stderr
    assert "readable by group" not in tight.stderr


def test_credentials_written_into_the_config_file_work_but_warn(tmp_path, caplog):
    for key, other, var in (("api_key", "secret", "S"), ("secret", "api_key", "K")):
        (tmp_path / "c.yaml").write_text(
            "source: {inbox: in}\ndestinations: [{ID: af394f14-b34a-464f-8d24-895f370af4c9, Name: x}]\n"
            f"redox: {{auth: {{method: legacy, {other}: '${{{var}}}', {key}: {SECRET}}}}}\n")
        caplog.clear()
        with caplog.at_level("WARNING"):
            settings = config.load(tmp_path / "c.yaml", environ={"K": "k", "S": "s"})
        assert getattr(settings.redox.auth, key).get_secret_value() == SECRET
        assert [r.getMessage() for r in caplog.records] == [
            f"redox.auth.{key}: a credential written into the config file; use an environment "
            f"reference such as ${{REDOX_{key.upper()}}}"]
        assert SECRET not in caplog.text


# -- TLS ------------------------------------------------------------------------------------------------

# (legacy auth here: the sandbox checks an OAuth assertion's aud against its own plain URL)
LEGACY_VARS = {"REDOX_API_KEY": API_KEY, "REDOX_SECRET": SECRET}


def test_tls_verification_is_on_and_an_untrusted_certificate_touches_nothing(tmp_path, sandbox):
    front = TlsFront(sandbox.port, tmp_path)
    try:
        env = legacy_env(tmp_path / "run", front.url)
        env.drop("a.json", message("a"))
        # an empty CURL_CA_BUNDLE once switched verification off in requests; not here
        result = env.run("run", "--once", env=dict(LEGACY_VARS, CURL_CA_BUNDLE=""))
    finally:
        front.close()
    assert result.returncode == 3, result.stderr
    assert "TLS certificate verification failed" in result.stderr
    assert env.files("inbox") == ["a.json"] and env.files("failed") == []
    assert sandbox.records()["token_requests"] == []


def test_the_loopback_opt_out_works_for_a_sandbox_and_says_so_loudly(tmp_path, sandbox):
    front = TlsFront(sandbox.port, tmp_path)
    try:
        env = legacy_env(tmp_path / "run", front.url, redox={"insecure_skip_tls_verify": True})
        env.drop("a.json", message("a"))
        result = env.run("run", "--once", "--log-format", "json", env=LEGACY_VARS)
    finally:
        front.close()
    assert result.returncode == 0, result.stderr
    assert "TLS VERIFICATION IS OFF" in result.stderr and env.files("done") == ["a.json"]
    assert all(line.startswith("{") for line in result.stderr.splitlines())   # warnings too


@pytest.mark.parametrize("url", ["https://api.redoxengine.com", "https://127.0.0.1.example.com",
                                 "https://10.0.0.1", "https://localhost.evil.test"])
def test_the_opt_out_is_refused_for_anything_but_loopback(tmp_path, url):
    env = PipelineEnv(tmp_path, url, redox={"insecure_skip_tls_verify": True})
    env.drop("a.json", message("a"))
    for args in (("validate",), ("run", "--once")):
        result = env.run(*args)
        assert result.returncode == 2
        assert "redox.insecure_skip_tls_verify: only allowed for a sandbox on localhost" in result.stderr
    assert env.files("inbox") == ["a.json"]
    settings = config.load(env.config)
    with pytest.raises(ConfigError):
        app.tls_verify(settings)


def test_tls_verification_defaults_to_on(tmp_path):
    env = PipelineEnv(tmp_path, "https://api.redoxengine.com")
    settings = config.load(env.config)
    assert app.tls_verify(settings) is True
    verify = app.make_client(settings).transport.verify
    assert verify is True or (isinstance(verify, str) and os.path.exists(verify))   # a CA bundle


def test_private_key_errors_name_the_key_path_but_quote_nothing_from_the_file(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text(f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n")
    os.chmod(bogus, 0o600)
    env = PipelineEnv(tmp_path, "https://api.redoxengine.com")
    env.config_data["redox"]["auth"]["private_key_file"] = str(bogus)
    env.write_config()
    result = env.run("validate")
    assert result.returncode == 2
    assert "redox.auth.private_key_file" in result.stderr and SECRET not in result.stderr + result.stdout


def test_validate_prints_no_credential_even_when_the_config_is_wrong_everywhere(tmp_path):
    env = legacy_env(tmp_path, "not-a-url", workers=0, umask="999")
    result = env.run("validate", env={"REDOX_API_KEY": API_KEY, "REDOX_SECRET": SECRET})
    assert result.returncode == 2 and "workers" in result.stderr and "umask" in result.stderr
    env = legacy_env(tmp_path, "not-a-url")
    result = env.run("validate", env={"REDOX_API_KEY": API_KEY, "REDOX_SECRET": SECRET})
    assert result.returncode == 2 and "redox.base_url" in result.stderr
    assert API_KEY not in result.stderr + result.stdout and SECRET not in result.stderr + result.stdout


def test_secrets_are_masked_in_the_settings_object(tmp_path):
    env = legacy_env(tmp_path, "https://api.redoxengine.com")
    settings = config.load(env.config, environ={"REDOX_API_KEY": API_KEY, "REDOX_SECRET": SECRET})
    assert SECRET not in repr(settings) and API_KEY not in repr(settings)
    assert SECRET not in str(settings.model_dump())
