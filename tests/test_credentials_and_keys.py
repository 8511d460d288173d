"""What ``run`` says when it cannot get a token (refused, an unusable reply, unreachable: each
its own sentence, exit 3 each), and how key files are judged: the public sandbox development
key recognised by its public key, wherever it lies; every warning once per run."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pipeline_env import DEV_KEY, REPO, PipelineEnv, message, stop

from pipeline.redox import auth

HANG_GUARD = 60


# -- refused, unusable, unreachable ----------------------------------------------------------------


def test_refused_credentials_are_called_refused(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("a.json", message("a"))
    sandbox.faults(refuse_credentials=True)
    result = env.run("run", "--once", timeout=HANG_GUARD)
    assert result.returncode == 3
    assert "Redox refused the credentials (HTTP 401" in result.stderr
    assert "check the credentials in redox.auth" in result.stderr
    assert "unusable" not in result.stderr and env.files("inbox") == ["a.json"]


@pytest.mark.parametrize("faults", [
    {"token_reply": "html"}, {"token_reply": "empty"}, {"token_reply": "no_access_token"},
    {"oauth_expires_in": '"3600s"'}, {"access_token_value": "tok\r\nX-Injected: yes"},
], ids=lambda f: "-".join(map(str, f.values())))
def test_an_unusable_token_reply_says_the_credentials_were_not_refused(tmp_path, sandbox, faults):
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("a.json", message("a"))
    sandbox.faults(**faults)
    result = env.run("run", "--once", timeout=HANG_GUARD)
    assert result.returncode == 3
    assert "token reply is unusable" in result.stderr and "not the credentials" in result.stderr
    assert "refused the credentials" not in result.stderr
    assert "X-Injected" not in result.stderr and env.files("inbox") == ["a.json"]


def test_an_unreachable_auth_endpoint_is_called_unreachable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = PipelineEnv(tmp_path, f"http://127.0.0.1:{port}")
    env.drop("a.json", message("a"))
    result = env.run("run", "--once", timeout=HANG_GUARD)
    assert result.returncode == 3
    assert "Redox could not be reached" in result.stderr
    assert "refused" not in result.stderr and "unusable" not in result.stderr


# -- the sandbox development key --------------------------------------------------------------------


def test_the_fingerprint_is_the_packaged_sandbox_keys():
    public = serialization.load_pem_public_key(
        (REPO / "pipeline" / "sandbox" / "dev_client_public.pem").read_bytes())
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    assert hashlib.sha256(der).hexdigest() == auth.SANDBOX_KEY_FINGERPRINT


def world_readable_dev_key(tmp_path, name="anything.pem"):
    key = tmp_path / name
    shutil.copy(DEV_KEY, key)
    os.chmod(key, 0o644)                  # as a fresh clone leaves it
    return key


def test_the_world_readable_dev_key_gets_one_info_line_not_a_warning(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    key = world_readable_dev_key(tmp_path)       # recognised by its public key, not its path
    env.config_data["redox"]["auth"]["private_key_file"] = str(key)
    env.config_data["delivery_check"] = {"organization_id": "o", "auth": dict(
        env.config_data["redox"]["auth"])}      # the same key again
    env.write_config()
    result = env.run("validate")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert result.stderr.count("the sandbox development key is in use") == 1


def test_another_key_at_the_dev_keys_path_is_judged_like_any_key(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "examples").mkdir()
    key = tmp_path / "examples" / "sandbox-client-key.pem"
    key.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key, 0o644)
    env.config_data["redox"]["auth"]["private_key_file"] = str(key)
    env.config_data["delivery_check"] = {"organization_id": "o", "auth": dict(
        env.config_data["redox"]["auth"])}
    env.write_config()
    result = env.run("validate")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("private key file is readable by group or others") == 1
    assert "sandbox development key" not in result.stderr


def test_a_service_says_it_once_though_two_clients_load_the_key(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, delivery_check={
        "enabled": True, "organization_id": "o", "platform_url": f"{sandbox.url}/platform",
        "interval_seconds": 0.2})
    key = world_readable_dev_key(tmp_path)
    env.config_data["redox"]["auth"]["private_key_file"] = str(key)
    env.config_data["delivery_check"]["auth"] = dict(env.config_data["redox"]["auth"])
    env.write_config()
    env.drop("a.json", message("a"))
    proc = env.start()
    try:
        env.wait_for(lambda: env.files("done") == ["a.json"])
        env.wait_for(lambda: "delivery" in env.sidecar("done", "a.json"))   # the Platform client ran
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert err.count("the sandbox development key is in use") == 1
    assert "readable by group or others" not in err


@pytest.mark.parametrize("faults, cause", [({"refuse_credentials": True}, "credentials"),
                                           ({"token_reply": "html"}, "unusable_reply")])
def test_status_says_which_kind_of_refusal_it_met(tmp_path, sandbox, faults, cause):
    import json
    env = PipelineEnv(tmp_path, sandbox.url)
    sandbox.faults(**faults)
    result = env.run("status", "--json", timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)["auth"]
    assert (got["state"], got["cause"]) == ("refused", cause)


def test_a_configuration_warning_is_written_once_per_run(capsys):
    import logging

    from pipeline.service import logs
    logs.setup("text")
    try:
        for _ in range(3):
            logging.getLogger("pipeline.app").warning("TLS VERIFICATION IS OFF for the local sandbox")
            logging.getLogger("pipeline.redox.auth").warning("loose key", extra={"path": "/k"})
        logging.getLogger("pipeline.redox.auth").warning("loose key", extra={"path": "/other"})
        for _ in range(2):          # events about files are events: each is said
            logging.getLogger("pipeline.run").warning("failed", extra={"file": "a.json"})
    finally:
        logging.getLogger().handlers[:] = []
    err = capsys.readouterr().err
    assert err.count("TLS VERIFICATION IS OFF") == 1
    assert err.count("loose key path=/k") == 1 and err.count("loose key path=/other") == 1
    assert err.count("failed file=a.json") == 2
