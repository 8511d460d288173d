"""Reading S3 event notifications from SQS message bodies, and S3 error translation."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from pipeline.errors import AuthError, Denied, SourceAuthError, StorageError
from pipeline.sources.s3.api import translate
from pipeline.sources.s3.messages import parse


def event(key, bucket="bkt", name="ObjectCreated:Put", etag="abc", size=5):
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2024-05-01T10:00:00.000Z",
            "eventName": name, "s3": {"bucket": {"name": bucket},
                                      "object": {"key": key, "size": size, "eTag": etag}}}


def test_a_direct_notification_gives_its_unquoted_keys():
    notes = parse(json.dumps({"Records": [event("in/a+b%2Bc.json")]}), "bkt")
    assert [(n.key, n.etag, n.size) for n in notes] == [("in/a b+c.json", "abc", 5)]
    assert notes[0].when == 1714557600.0


def test_an_sns_wrapped_notification_is_unwrapped():
    inner = json.dumps({"Records": [event("in/a.json")]})
    envelope = json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Message": inner})
    assert [n.key for n in parse(envelope, "bkt")] == ["in/a.json"]


@pytest.mark.parametrize("body", [
    {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "bkt"},
    {"Records": [event("in/a.json", bucket="other")]},
    {"Records": [event("in/a.json", name="ObjectRemoved:Delete")]},
])
def test_nothing_for_us_is_an_empty_list(body):
    assert parse(json.dumps(body), "bkt") == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"Records": [{"eventName":
                                  "ObjectCreated:Put", "s3": {}}]}), json.dumps({"hello": 1})])
def test_what_is_not_a_notification_is_poison(body):
    assert parse(body, "bkt") is None


def error(code, status):
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("exc, kind, words", [
    (error("SlowDown", 503), StorageError, "throttled"),
    (error("InternalError", 500), StorageError, "server error 500"),
    (error("ExpiredToken", 400), SourceAuthError, "refused the credentials (ExpiredToken)"),
    (error("InvalidAccessKeyId", 403), SourceAuthError, "InvalidAccessKeyId"),
    (error("AccessDenied", 403), Denied, "check the IAM policy"),
    (NoCredentialsError(), SourceAuthError, "no AWS credentials"),
    (EndpointConnectionError(endpoint_url="http://x"), StorageError, "EndpointConnectionError"),
])
def test_s3_errors_become_clear_pipeline_errors(exc, kind, words):
    translated = translate(exc, "writing", "s3://bkt/k")
    assert isinstance(translated, kind) and words in str(translated)
    assert isinstance(translated, AuthError) == (kind is SourceAuthError)
