"""Thin S3 wrappers that speak our errors; with sqs.py (the SQS queue, through the same
helpers) the only modules that import boto3/botocore.

Every call goes through :func:`call`, which translates botocore's exceptions at this one
boundary:

- throttling, 5xx, timeouts, connection errors → :class:`StorageError` (transient: the caller
  tries again later). botocore's *standard* retry mode has already retried them with
  exponential backoff and jitter before we see them.
- refused or expired credentials → :class:`SourceAuthError` (an :class:`AuthError`: the run
  stops and leaves files where they are, exit 3, like refused Redox credentials).
- 412 / 409 on a conditional write → :class:`Conflict` (someone else won the race).
- a missing key → ``None`` from :meth:`Bucket.head`, :class:`ClaimLost` elsewhere.

Credentials come from the standard AWS chain only (environment, shared profile, container or
instance role); nothing in config.yaml is a secret here.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from typing import Iterator, Optional

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline.errors import ClaimLost, Conflict, Denied, Missing, SourceAuthError, StorageError

# error codes meaning "these credentials are no good", across S3 and SQS
AUTH_CODES = {"ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "InvalidToken",
              "SignatureDoesNotMatch", "TokenRefreshRequired", "InvalidClientTokenId",
              "UnrecognizedClientException", "AuthFailure", "InvalidSecurity"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
# CopyObject copies at most 5 GiB in one request; larger objects take a multipart copy
SINGLE_COPY_LIMIT = 5 * 1024 ** 3
RETRY_ATTEMPTS = 5
# how long a start-up check's listing page may stand in for the first listing's first page
KEPT_SECONDS = 30.0


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def translate(exc: Exception, what: str, where: str) -> Exception:
    """Our error for a botocore exception raised while doing ``what`` to ``where``."""
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SourceAuthError(f"no AWS credentials found for {what} (the standard AWS chain: "
                               "environment, profile, instance or container role)")
    if isinstance(exc, ClientError):
        code, status = error_code(exc), _status(exc)
        if code in AUTH_CODES:
            return SourceAuthError(f"AWS refused the credentials ({code}) during {what}")
        if code in ("AccessDenied", "AllAccessDisabled", "AccessDeniedException") or status == 403:
            return Denied(f"access denied ({code}) during {what}; check the IAM policy", where)
        if code == "NoSuchBucket":
            return Missing(f"the bucket does not exist ({what})", where)
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded") \
                or status == 503:
            return StorageError(f"throttled ({code}) during {what}, after {RETRY_ATTEMPTS} tries; "
                                "tried again later", where)
        if status >= 500:
            return StorageError(f"server error {status} ({code}) during {what}, after "
                                f"{RETRY_ATTEMPTS} tries; tried again later", where)
        return StorageError(f"{what} failed ({code or status})", where)
    if isinstance(exc, BotoCoreError):
        return StorageError(f"{what} failed ({exc.__class__.__name__}; tried again later)", where)
    return exc


def call(fn, what: str, where: str, **kwargs):
    """``fn(**kwargs)``, with botocore's exceptions translated (see the module docstring)."""
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        if isinstance(exc, ClientError) and error_code(exc) in CONFLICT_CODES:
            raise Conflict(where) from None
        raise translate(exc, what, where) from None


@contextlib.contextmanager
def _claimed_source(what: str, where: str, lost: str):
    """Reading a claimed object: gone, or replaced since (a failed ETag condition), means the
    claim was lost (ClaimLost ``lost``); anything else is translated like every call."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES or error_code(exc) in CONFLICT_CODES:
            raise ClaimLost(lost, where) from None
        raise translate(exc, what, where) from None
    except BotoCoreError as exc:
        raise translate(exc, what, where) from None


def client_config(pool: int, read_timeout: float, path_style: bool) -> Config:
    return Config(retries={"mode": "standard", "total_max_attempts": RETRY_ATTEMPTS},
                  connect_timeout=10, read_timeout=read_timeout, max_pool_connections=pool,
                  s3={"addressing_style": "path"} if path_style else None)


def _absent_is_none(fn, what: str, where: str, **kwargs):
    """``fn(**kwargs)``, or None when the key does not exist; other failures translated."""
    try:
        return fn(**kwargs)
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise translate(exc, what, where) from None
    except BotoCoreError as exc:
        raise translate(exc, what, where) from None


class Bucket:
    """One bucket's objects, as the S3 store needs them. Thread-safe (one boto3 client)."""

    def __init__(self, name: str, *, endpoint_url: Optional[str] = None, region: Optional[str] = None,
                 pool: int = 10, client=None):
        self.name = name
        self._kept: dict[tuple[str, int], tuple[float, dict]] = {}     # check()'s pages
        self._kept_lock = threading.Lock()
        self.client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=client_config(pool, 60, path_style=bool(endpoint_url)))

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def check(self, prefix: str, keep: int = 0) -> None:
        """Raise Missing / Denied / StorageError unless we can list ``prefix`` in the bucket.
        (A listing, not HeadBucket: that needs s3:ListBucket on the whole bucket, and the IAM
        policy in docs/s3.md only grants it for the pipeline's prefixes.) With ``keep`` (a page
        size) the check lists a whole first page and keeps it: the next ``pages(prefix, keep)``
        starts from it instead of asking again, if it comes within KEPT_SECONDS. The start-up
        checks are then the first listings' first pages, and cost no round trip of their own."""
        try:
            page = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=keep or 1)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise Missing("the bucket does not exist", self.uri("")) from None
            raise translate(exc, "listing the bucket", self.uri(prefix)) from None
        except BotoCoreError as exc:
            raise translate(exc, "listing the bucket", self.uri(prefix)) from None
        if keep:
            with self._kept_lock:
                self._kept[(prefix, keep)] = (time.monotonic(), page)

    def pages(self, prefix: str, page_size: int) -> Iterator[list[dict]]:
        """The objects under ``prefix``, one listing page at a time (continuation tokens), so
        the whole listing is never in memory at once. Each item: Key, Size, LastModified, ETag."""
        args = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": page_size}
        with self._kept_lock:
            kept = self._kept.pop((prefix, page_size), None)
        first = kept[1] if kept and time.monotonic() - kept[0] < KEPT_SECONDS else None
        while True:
            page = first or call(self.client.list_objects_v2, "listing", self.uri(prefix), **args)
            first = None
            yield page.get("Contents", [])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            args["ContinuationToken"] = token

    def head(self, key: str) -> Optional[dict]:
        """The object's metadata (ContentLength, LastModified, ETag), or None if it is absent."""
        return _absent_is_none(self.client.head_object, "reading metadata", self.uri(key),
                               Bucket=self.name, Key=key)

    def get_with_etag(self, key: str, limit: int = 1 << 20) -> Optional[tuple[bytes, str]]:
        """A small object's bytes (at most ``limit``) and ETag, or None if it is absent."""
        reply = _absent_is_none(self.client.get_object, "reading", self.uri(key),
                                Bucket=self.name, Key=key)
        if reply is None:
            return None
        try:
            with reply["Body"] as body:
                return body.read(limit), reply["ETag"]
        except BotoCoreError as exc:
            raise translate(exc, "reading", self.uri(key)) from None

    def open(self, key: str, etag: Optional[str] = None,
             metadata: Optional[dict] = None) -> io.BufferedReader:
        """A streaming, read-only file object over the object (never the whole object in memory).
        ClaimLost if it is gone (or, with ``etag``, was replaced). ``metadata``, when given, is
        filled with the object's user metadata (the same GET: no HEAD needed for it)."""
        args = {"Bucket": self.name, "Key": key}
        if etag:
            args["IfMatch"] = etag
        with _claimed_source("opening", self.uri(key), "the object vanished"):
            reply = self.client.get_object(**args)
            body = reply["Body"]
        if metadata is not None:
            metadata.update(reply.get("Metadata") or {})
        return io.BufferedReader(_Stream(body, self.uri(key)), buffer_size=1 << 20)

    def put(self, key: str, data: bytes, *, if_none_match: bool = False,
            if_match: Optional[str] = None) -> str:
        """Write ``data``; returns the new ETag. Conflict when the condition fails
        (``if_none_match``: the key exists; ``if_match``: its ETag is no longer that one)."""
        args = {"Bucket": self.name, "Key": key, "Body": data, "ContentType": "application/json"}
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match:
            args["IfMatch"] = if_match
        return call(self.client.put_object, "writing", self.uri(key), **args)["ETag"]

    def copy(self, src: str, dst: str, size: int, *, src_etag: Optional[str] = None,
             metadata: Optional[dict] = None) -> Optional[str]:
        """Server-side copy (nothing passes through this process). ClaimLost if ``src`` is gone
        (or, with ``src_etag``, was replaced). ``metadata`` is merged into the object's user
        metadata (its content type kept). Above 5 GiB a managed multipart copy is used.
        Returns the copy's ETag (None for a multipart copy)."""
        source = {"Bucket": self.name, "Key": src}
        args: dict = {"CopySourceIfMatch": src_etag} if src_etag else {}
        if metadata:
            head = self.head(src) or {}
            args.update(MetadataDirective="REPLACE", Metadata={**head.get("Metadata", {}), **metadata},
                        ContentType=head.get("ContentType", "application/octet-stream"))
        with _claimed_source("copying", self.uri(src), "the object vanished or was replaced"):
            if size < SINGLE_COPY_LIMIT:
                reply = self.client.copy_object(Bucket=self.name, Key=dst, CopySource=source,
                                                **{"MetadataDirective": "COPY", **args})
                return (reply.get("CopyObjectResult") or {}).get("ETag")
            self.client.copy(CopySource=source, Bucket=self.name, Key=dst,
                             ExtraArgs={k: v for k, v in args.items() if k != "CopySourceIfMatch"})
            return None

    def delete(self, key: str, *, if_match: Optional[str] = None) -> None:
        """Delete ``key`` (an absent key is not an error: moves are idempotent). With
        ``if_match``, only that version (S3 conditional delete); Conflict if it changed."""
        args = {"IfMatch": if_match} if if_match else {}
        try:
            self.client.delete_object(Bucket=self.name, Key=key, **args)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return      # already gone
            if error_code(exc) in CONFLICT_CODES:
                raise Conflict(self.uri(key)) from None
            raise translate(exc, "deleting", self.uri(key)) from None
        except BotoCoreError as exc:
            raise translate(exc, "deleting", self.uri(key)) from None


class _Stream(io.RawIOBase):
    """An S3 response body as a raw stream, translating mid-stream failures to StorageError."""

    def __init__(self, body, where: str):
        self.body, self.where = body, where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            chunk = self.body.read(len(buffer))
        except (BotoConnectionError, ReadTimeoutError, ResponseStreamingError, OSError) as exc:
            raise StorageError(f"reading failed mid-stream ({exc.__class__.__name__})",
                               self.where) from None
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


def epoch(value) -> float:
    """A boto3 datetime (or an ISO 8601 string from an event) as epoch seconds."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    from datetime import datetime
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
