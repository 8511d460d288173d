"""Shared fixtures. `sandbox`: a fresh Redox sandbox subprocess per test (see sandbox_control)."""

import os
import uuid

import pytest
import requests
from moto_server import Bucket, MotoServer
from sandbox_control import SandboxProcess


@pytest.fixture
def sandbox():
    """A started SandboxProcess with default settings, stopped after the test."""
    with SandboxProcess() as process:
        yield process


@pytest.fixture(scope="module")
def shared():
    """One sandbox for a test module (``sb`` resets it for each test)."""
    with SandboxProcess() as process:
        yield process


@pytest.fixture
def sb(shared):
    """The module's sandbox, reset to its defaults (faults, tokens, records) for this test."""
    shared.reset()
    return shared


@pytest.fixture
def http():
    """A requests Session for talking to a sandbox directly."""
    with requests.Session() as session:
        yield session


# -- S3 and SQS: moto in server mode on 127.0.0.1 --------------------------------------------


@pytest.fixture(scope="session")
def moto_server():
    """One moto server for the session (tests use their own buckets and queues)."""
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Test credentials in the environment (inherited by subprocesses), nothing from ~/.aws."""
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(moto_server, aws_env):
    """A fresh, empty bucket on the moto server."""
    return Bucket(moto_server, f"test-{uuid.uuid4().hex[:12]}")
