"""Test helper: moto in server mode on 127.0.0.1 (a real S3 + SQS endpoint over HTTP).

`MotoServer().start()` serves on a random port (`.url`); `Bucket(server, name)` is a small
boto3-backed view of one bucket for arranging and inspecting tests.

One correction to moto, so the endpoint keeps S3's documented guarantee: moto checks a
conditional write's precondition (If-None-Match / If-Match) and then writes, in two steps, on a
threaded server, so two concurrent conditional PUTs can both pass the check. S3 itself decides
them atomically ("only one concurrent write succeeds, the others get 412/409"). The
middleware below serialises conditional writes (and only them), which restores that guarantee;
nothing else about moto's behaviour changes.
"""

from __future__ import annotations

import json
import logging
import threading

import boto3
import requests
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

REGION = "us-east-1"
ACCOUNT = "123456789012"


def atomic_conditional_writes(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        conditional = environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE") and (
            "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ)
        if not conditional:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))
    return wrapped


def ignoring_conditions(app):
    """An endpoint that ignores conditional-write headers (as some S3-compatible stores do)."""
    def wrapped(environ, start_response):
        environ.pop("HTTP_IF_NONE_MATCH", None)
        environ.pop("HTTP_IF_MATCH", None)
        return app(environ, start_response)
    return wrapped


class MotoServer(ThreadedMotoServer):
    """``ignore_conditions``: behave like a store without conditional writes (for the refusal
    test). Servers in one process share moto's state (buckets, queues)."""

    def __init__(self, ignore_conditions: bool = False):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.ignore_conditions = ignore_conditions

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        app = ignoring_conditions(app) if self.ignore_conditions else atomic_conditional_writes(app)
        self._server = make_server(self._ip_address, self._port, app, True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> "MotoServer":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)    # no access log per request
        super().start()
        host, port = self.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def client(self, service: str):
        return boto3.session.Session().client(service, endpoint_url=self.url, region_name=REGION,
                                              aws_access_key_id="testing",
                                              aws_secret_access_key="testing")


class Bucket:
    """One test bucket: put objects, list keys, read sidecars."""

    def __init__(self, server: MotoServer, name: str):
        self.server, self.name = server, name
        self.s3 = server.client("s3")
        self.s3.create_bucket(Bucket=name)

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.name, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.name, Key=key)
            return True
        except self.s3.exceptions.ClientError:
            return False

    def keys(self, prefix: str = "", sidecars: bool = False) -> list[str]:
        """Keys under ``prefix`` (without it), sidecars and ``.leases/`` left out by default."""
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            for item in page.get("Contents", []):
                rest = item["Key"][len(prefix):]
                if (sidecars or not rest.endswith(".redox.json")) and ".leases/" not in item["Key"]:
                    out.append(rest)
        return sorted(out)

    def leases(self, processing: str = "processing/") -> list[dict]:
        """The lease objects now in ``processing/.leases/`` (bodies)."""
        out = []
        prefix = processing + ".leases/"
        for item in self.s3.list_objects_v2(Bucket=self.name, Prefix=prefix).get("Contents", []):
            if item["Key"][len(prefix):].startswith("."):
                continue        # a start-up probe, not a lease
            try:
                out.append(json.loads(self.get(item["Key"])))
            except self.s3.exceptions.NoSuchKey:
                continue        # released since the listing
        return out

    def sidecar(self, key: str) -> dict:
        return json.loads(self.get(key + ".redox.json"))

    def queue(self, name: str, *, dlq_after: int | None = None, visibility: int = 30,
              prefix: str = "incoming/") -> tuple[str, str | None]:
        """A queue receiving this bucket's ObjectCreated notifications under ``prefix``; with
        ``dlq_after``, a dead-letter queue after that many receives. Returns (url, dlq url)."""
        sqs = self.server.client("sqs")
        dlq_url = None
        attributes = {"VisibilityTimeout": str(visibility)}
        if dlq_after:
            dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn,
                                                      "maxReceiveCount": str(dlq_after)})
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}
        if prefix:
            rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
        self.s3.put_bucket_notification_configuration(
            Bucket=self.name, NotificationConfiguration={"QueueConfigurations": [rule]})
        return url, dlq_url

    def messages(self, url: str) -> int:
        """Approximate number of messages in a queue (visible + in flight)."""
        attrs = self.server.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
