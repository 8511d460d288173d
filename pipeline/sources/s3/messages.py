"""The queue's messages: which new objects of our bucket an S3 event notification tells of
(Note, parse), and a message the feed holds until they are settled (Msg).

Bodies come straight from S3 or wrapped in an SNS envelope (SNS → SQS fan-out). Only
ObjectCreated records count; ``s3:TestEvent``, other event types and other buckets are nothing
for us, and a body that is not an S3 notification at all is poison (feed.py leaves it for the
dead-letter queue).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote_plus

from pipeline.sources.s3.api import epoch


@dataclass(frozen=True)
class Note:
    """One ObjectCreated record: the object's key, ETag (unquoted), size and event time."""
    key: str
    etag: Optional[str]
    size: int
    when: float


def parse(body: str, bucket: str) -> Optional[list[Note]]:
    """The ObjectCreated records for ``bucket`` in a message body (direct from S3, or wrapped
    in an SNS envelope). ``[]``: nothing for us (a test event, another bucket or event type).
    None: not an S3 notification at all (poison)."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
            doc = json.loads(doc["Message"])          # SNS → SQS fan-out
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        return None
    notes = []
    for record in records:
        try:
            if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            if s3["bucket"]["name"] != bucket:
                continue
            obj = s3["object"]
            etag = obj.get("eTag")
            notes.append(Note(unquote_plus(obj["key"]), etag.strip('"') if etag else None,
                              int(obj.get("size") or 0), epoch(record.get("eventTime", ""))))
        except (KeyError, TypeError, AttributeError, ValueError):
            return None
    return notes


@dataclass(eq=False)
class Msg:
    """A received message: what it still waits for (``names``: name → ETag), its handle."""
    id: str
    handle: str
    names: dict
    notes: dict = field(default_factory=dict)       # name → Note, for drops()
    extended_at: float = 0.0
