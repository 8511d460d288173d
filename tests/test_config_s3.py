"""config.yaml checks specific to source.kind s3."""

from __future__ import annotations

import pytest
import yaml

from pipeline.config import load
from pipeline.errors import ConfigError

BASE = {"redox": {"auth": {"method": "legacy", "api_key": "k", "secret": "s"}},
        "destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "EMR"}]}


def write(tmp_path, **parts):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, **parts)))
    return path


def problems(tmp_path, **parts):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, **parts))
    return info.value.problems


def test_s3_defaults_and_keys(tmp_path):
    s = load(write(tmp_path, source={"kind": "s3", "bucket": "b", "prefix": "in/", "queue_url":
                                     "https://sqs.us-east-1.amazonaws.com/1/q"},
                   folders={"processing": "p", "done": "d", "failed": "f"}))
    assert s.source.lease_seconds == 300 and s.source.page_size == 1000
    assert s.source.queue_wait_seconds == 10 and s.source.queue_visibility_seconds == 30
    assert s.folders.done == "d"          # key prefixes are not turned into local paths


def test_s3_needs_a_bucket_and_distinct_folders_apart_from_the_prefix(tmp_path):
    found = problems(tmp_path, source={"kind": "s3", "prefix": "in/"},
                     folders={"processing": "in", "done": "d", "failed": "d/"})
    assert "source.bucket: missing (required for source.kind s3)" in found
    assert "folders.processing: must not contain source.prefix" in found
    assert "folders.failed: the same prefix as folders.done" in found


def test_queue_url_needs_s3_and_a_url(tmp_path):
    assert "source.queue_url: only for source.kind s3" in problems(
        tmp_path, source={"kind": "local", "inbox": "x", "queue_url": "https://q/1/x"})
    assert any(p.startswith("source.queue_url: not an SQS queue URL") for p in problems(
        tmp_path, source={"kind": "s3", "bucket": "b", "queue_url": "q"},
        folders={"processing": "p", "done": "d", "failed": "f"}))
