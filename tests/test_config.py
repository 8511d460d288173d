"""config.yaml → settings: every problem at once, each with its key path; nothing else touched."""

from __future__ import annotations

import pytest

from pipeline import config
from pipeline.errors import ConfigError

GOOD = """
source: {inbox: drop/inbox}
redox:
  auth: {method: oauth, client_id: c, key_id: k, private_key_file: key.pem}
destinations: [{ID: af394f14-b34a-464f-8d24-895f370af4c9, Name: Redox EMR}]
"""


def load_text(tmp_path, text, environ=None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return config.load(path, environ={} if environ is None else environ)


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path):
    text = """
source: {inbox: in, bogus: 1}
redox:
  timeout_seconds: -5
  auth: {method: oauth, client_id: "${NOPE_CLIENT}"}
destinations: [{ID: not-a-uuid, Name: x}]
workers: many
"""
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    problems = caught.value.problems
    assert problems[0] == "redox.auth.client_id: environment variable NOPE_CLIENT is not set"
    assert "source.bogus: unknown key" in problems
    assert any(p.startswith("redox.timeout_seconds: ") for p in problems)
    assert "destinations.0.ID: must be a UUID (like af394f14-b34a-464f-8d24-895f370af4c9)" in problems
    assert any(p.startswith("workers: ") for p in problems)
    assert not any(p.startswith("redox.auth.client_id: missing") for p in problems)   # said once


def test_what_each_auth_method_needs_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, GOOD.replace("client_id: c, key_id: k, private_key_file: key.pem",
                                         "client_id: c"))
    assert caught.value.problems == [
        "redox.auth.key_id: missing (required for method oauth)",
        "redox.auth.private_key_file: missing (required for method oauth)"]


def test_environment_values_defaults_and_paths_relative_to_the_config(tmp_path):
    settings = load_text(tmp_path, GOOD.replace("client_id: c", "client_id: '${CID}'"), {"CID": "from-env"})
    assert settings.redox.auth.client_id == "from-env"
    assert settings.source.inbox == str(tmp_path / "drop" / "inbox")
    assert settings.folders.done == str(tmp_path / "drop" / "done")
    assert settings.redox.auth.private_key_file == str(tmp_path / "key.pem")
    assert settings.redox.token_url == "https://api.redoxengine.com/v2/auth/token"
    assert (settings.workers, settings.retry.max_attempts, settings.redox.max_requests_per_second,
            settings.redox.send_limit_bytes, settings.dedupe) == ("auto", 10, 20.0, 10485760, True)


def test_the_shipped_config_yaml_is_valid():
    from pathlib import Path
    settings = config.load(Path(__file__).resolve().parents[1] / "config.yaml")
    assert settings.redox.base_url == "http://127.0.0.1:8787"
