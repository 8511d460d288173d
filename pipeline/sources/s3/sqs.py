"""The SQS queue the notification feed (feed.py) reads, as a thin wrapper that speaks our errors:
botocore's exceptions are translated by api.py's helpers, as for every S3 call.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import Missing
from pipeline.sources.s3.api import call, client_config, error_code, translate


class Queue:
    """One SQS queue, as the notification feed needs it. Thread-safe (one boto3 client)."""

    def __init__(self, url: str, *, region: Optional[str] = None, wait: float = 10, client=None):
        self.url = url
        parsed = urlparse(url)
        # The queue URL's own origin is the endpoint (AWS regional endpoint, or moto/ElasticMQ).
        self.client = client or boto3.session.Session().client(
            "sqs", endpoint_url=f"{parsed.scheme}://{parsed.netloc}", region_name=region,
            config=client_config(4, wait + 15, path_style=False))

    def check(self) -> None:
        """StorageError unless the queue exists and we may read it."""
        try:
            self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        except ClientError as exc:
            if "NonExistentQueue" in error_code(exc) or error_code(exc) == "QueueDoesNotExist":
                raise Missing("the queue does not exist", self.url) from None
            raise translate(exc, "checking the queue", self.url) from None
        except BotoCoreError as exc:
            raise translate(exc, "checking the queue", self.url) from None

    def receive(self, count: int, wait: float, visibility: int) -> list[dict]:
        """Up to ``count`` (≤ 10) messages, long-polling up to ``wait`` seconds."""
        reply = call(self.client.receive_message, "receiving", self.url, QueueUrl=self.url,
                      MaxNumberOfMessages=max(1, min(10, count)), WaitTimeSeconds=int(wait),
                      VisibilityTimeout=int(visibility), AttributeNames=["ApproximateReceiveCount"])
        return reply.get("Messages", [])

    def delete(self, handles: list[str]) -> None:
        """Delete messages by receipt handle (an already-deleted one is not an error)."""
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start:start + 10])]
            call(self.client.delete_message_batch, "deleting messages", self.url,
                  QueueUrl=self.url, Entries=entries)

    def change_visibility(self, handles: list[str], seconds: int) -> None:
        """Keep messages hidden for ``seconds`` more (0: visible again now). Handles that are no
        longer valid (the message came back to someone else) are skipped, not errors."""
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": int(seconds)}
                       for i, h in enumerate(handles[start:start + 10])]
            call(self.client.change_message_visibility_batch, "extending visibility", self.url,
                  QueueUrl=self.url, Entries=entries)
