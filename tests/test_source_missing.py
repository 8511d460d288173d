"""A source that is not there is a usage error (exit 2) naming it, never an empty inbox for ever:
the real command (run --once and the service) against missing or unusable inboxes, S3 buckets
and prefixes; an S3 endpoint that cannot be reached is an outage (exit 3). Nothing is touched."""

from __future__ import annotations

import os
import socket

import pytest
from botocore.exceptions import ClientError
from hostile import Unprivileged
from pipeline_env import PipelineEnv, message

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.sources.s3 import setup as s3setup
from pipeline.sources.s3.api import Bucket


def tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("args", [("--once",), ()], ids=["once", "service"])
def test_a_missing_inbox_exits_2_naming_it_and_nothing_is_created(tmp_path, args):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9", source={"inbox": "drop/typo-inbox"})
    for sub in ("inbox", "processing", "done", "failed"):
        os.rmdir(env.folder(sub))
    before = tree(tmp_path)
    result = env.run("run", *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "source.inbox" in result.stderr and str(tmp_path / "drop" / "typo-inbox") in result.stderr
    assert "does not exist" in result.stderr
    assert not (tmp_path / "drop" / "typo-inbox").exists()
    assert [p for p in tree(tmp_path) if p not in before] in ([], ["drop/state.db.once.lock"])


def test_an_inbox_that_is_a_file_exits_2(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    os.rmdir(env.inbox)
    env.inbox.write_bytes(message("x"))
    result = env.run("run", "--once", timeout=60)
    assert result.returncode == 2 and "source.inbox" in result.stderr and "not a folder" in result.stderr


@pytest.fixture
def unpriv():
    u = Unprivileged()
    yield u
    u.cleanup()


def test_an_inbox_this_user_cannot_read_exits_2(unpriv):
    env = unpriv.env("http://127.0.0.1:9")
    env.drop("a.json", message("a"))
    os.chown(env.inbox, 0, 0)
    os.chmod(env.inbox, 0o700)                      # root's, closed to the service's user
    result = env.run("run", "--once", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "source.inbox: cannot list the inbox (Permission denied)" in result.stderr
    assert env.files("inbox") == ["a.json"]


def test_the_inbox_is_checked_before_anything_else_is_created(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9", source={"inbox": "elsewhere/inbox"})
    for sub in ("processing", "done", "failed"):
        os.rmdir(env.folder(sub))
    assert env.run("run", "--once", timeout=60).returncode == 2
    assert not any(env.folder(sub).exists() for sub in ("processing", "done", "failed"))


# -- S3 ------------------------------------------------------------------------------------------

def s3_env(tmp_path, sandbox_url, endpoint, bucket_name) -> PipelineEnv:
    source = {"kind": "s3", "bucket": bucket_name, "prefix": "incoming/", "endpoint_url": endpoint,
              "region": "us-east-1", "settle_seconds": 0}
    return PipelineEnv(tmp_path, sandbox_url, source=source,
                       folders={"processing": "processing", "done": "done", "failed": "failed"})


@pytest.mark.parametrize("args", [("--once",), ()], ids=["once", "service"])
def test_a_missing_bucket_exits_2_naming_it(tmp_path, moto_server, aws_env, args):
    env = s3_env(tmp_path, "http://127.0.0.1:9", moto_server.url, "no-such-bucket-anywhere")
    result = env.run("run", *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "source.bucket" in result.stderr and "no-such-bucket-anywhere" in result.stderr


def test_an_unreachable_s3_endpoint_is_an_outage_exit_3(tmp_path, aws_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                 # nothing listens here once closed
    env = s3_env(tmp_path, "http://127.0.0.1:9", f"http://127.0.0.1:{port}", "some-bucket")
    result = env.run("run", "--once", timeout=120)
    assert result.returncode == 3, result.stderr
    assert "cannot be reached" in result.stderr


class DenyingClient:
    """An S3 client whose IAM policy allows listing nothing but ``allowed`` (moto's server does
    not enforce policies): ListObjectsV2 elsewhere is AccessDenied."""

    def __init__(self, allowed: str):
        self.allowed = allowed

    def list_objects_v2(self, Bucket, Prefix, **kw):   # noqa: N803 - boto3's names
        if Prefix != self.allowed:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "ListObjectsV2")
        return {"Contents": []}


@pytest.mark.parametrize("allowed, key", [("nothing/", "source.prefix"), ("incoming/", "folders.processing")])
def test_a_prefix_the_policy_does_not_let_us_list_is_a_config_error_naming_it(monkeypatch, allowed, key):
    settings = Settings(source={"kind": "s3", "bucket": "b", "prefix": "incoming/"},
                        folders={"processing": "processing", "done": "done", "failed": "failed"})
    real = Bucket.__init__
    monkeypatch.setattr(Bucket, "__init__",
                        lambda self, name, **kw: real(self, name, client=DenyingClient(allowed)))
    with pytest.raises(ConfigError) as caught:
        s3setup.open_source(settings, "me")
    [problem] = caught.value.problems
    assert problem.startswith(f"{key}: access denied (AccessDenied)") and "s3://b/" in problem
