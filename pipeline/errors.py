"""The error tree: one place decides what is retryable and what each failure means.

    PipelineError
    ├── ConfigError            bad config.yaml or environment; exit 2; nothing touched
    │   └── UsageError         a bad command-line value; exit 2 as well
    ├── AuthError              Redox refused the credentials, or could not be reached; exit 3
    │   └── SourceAuthError    S3 or SQS refused the AWS credentials
    ├── StorageError           local or S3 I/O failure, with the path or key
    │   ├── ClaimLost          the file vanished or another worker took it: skip quietly
    │   ├── NotRegular         what was claimed is not a regular file
    │   ├── Unreadable         the file is there but may not be read (permissions)
    │   ├── Missing            the bucket or queue does not exist
    │   └── Denied             authenticated, but the IAM policy does not allow it
    ├── Conflict               an S3 conditional write lost a race (someone else won)
    ├── LockBusy               another run holds the run lock
    ├── RejectedFile           the file's own fault (not JSON, no Meta, too large): failed, not sent
    ├── DeliveryError          one failed attempt; knows whether Redox may have seen the request
    │   ├── TransientDelivery  connection error, timeout, 429, 5xx: retry
    │   └── PermanentDelivery  400, 403, 404, 413, other 4xx: failed, keep Meta.Errors[].Text
    ├── PlatformUnreachable    delivery confirmation got no usable answer, even after retries
    └── Interrupted            the service is stopping: end a long pass where it is

Messages never carry message content or secrets: only names, statuses and reasons.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigError(PipelineError):
    """The configuration is unusable. ``problems`` lists ``key.path: what is wrong`` lines."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class UsageError(ConfigError):
    """A bad command-line value noticed after parsing (``--since garbage``): exit 2 as well."""


class AuthError(PipelineError):
    """Redox refused the credentials, or its auth endpoint could not be reached at all.

    Not the files' fault: the run stops, files stay where they are (exit 3).
    ``unreachable`` tells the two apart for the operator's message. ``errors``: what the auth
    endpoint said about it (its error_description), kept out of the message, which is logged.
    """

    def __init__(self, message: str, *, unreachable: bool = False, errors: list[str] | None = None):
        self.unreachable = unreachable
        self.errors = list(errors or [])
        super().__init__(message)


class StorageError(PipelineError):
    """A filesystem or S3 operation failed; ``where`` names the path or key."""

    def __init__(self, message: str, where: str = ""):
        self.where = where
        super().__init__(f"{message}: {where}" if where else message)


class ClaimLost(StorageError):
    """The file vanished or another worker claimed it first: normal, skip quietly."""


class RejectedFile(PipelineError):
    """The file itself cannot be sent (not JSON, no Meta, too large, ...): failed, never sent.

    ``reason`` is the sidecar's error text; ``kind`` is a short stable class for reports and
    for ``retry-failed`` (which refuses files that failed through their own fault).
    """

    def __init__(self, reason: str, kind: str = "invalid"):
        self.reason = reason
        self.kind = kind
        super().__init__(reason)


class DeliveryError(PipelineError):
    """One failed HTTP exchange with Redox.

    ``status`` is the HTTP status (None when no answer came back); ``errors`` the
    ``Meta.Errors[].Text`` values (or a short description); ``maybe_seen`` is True when Redox
    may have accepted the request even though we saw a failure (timeout after sending, dropped
    connection, 502, 504, a 200 that proves nothing: Redox documents no idempotency key for
    SEND);
    ``retry_after`` is the server's Retry-After in seconds, when it sent one; ``elapsed`` how
    long the exchange took in seconds, when known (for the SEND-latency metric).
    """

    def __init__(self, message: str, *, status: int | None = None, errors: list[str] | None = None,
                 maybe_seen: bool = False, retry_after: float | None = None,
                 elapsed: float | None = None):
        self.status = status
        self.elapsed = elapsed
        self.errors = list(errors or [message])
        self.maybe_seen = maybe_seen
        self.retry_after = retry_after
        super().__init__(message)


class TransientDelivery(DeliveryError):
    """Worth retrying with backoff: connection errors, timeouts, 429, 5xx."""


class PermanentDelivery(DeliveryError):
    """The request itself was refused (400, 403, 404, 413, other 4xx): do not retry."""


class NotRegular(StorageError):
    """What was claimed is not a regular file (symlink, FIFO, directory, device)."""


class Unreadable(StorageError):
    """The file is there but this process may not read it (permissions): the file's fault,
    or its owner's, not a passing storage problem. ``reason`` omits the path."""

    def __init__(self, reason: str, where: str = ""):
        self.reason = reason
        super().__init__(reason, where)


class SourceAuthError(AuthError):
    """S3 or SQS refused the credentials (expired session token, unknown key, ...)."""


class Missing(StorageError):
    """The bucket or queue does not exist (at start: a config error)."""


class Denied(StorageError):
    """Authenticated, but the IAM policy does not allow the operation."""


class Conflict(PipelineError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


class LockBusy(PipelineError):
    """Another process holds the lock; ``holder`` describes it (pid, host, since when)."""

    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(holder)


class PlatformUnreachable(PipelineError):
    """The Platform API gave no usable answer even after the retries."""


class Interrupted(PipelineError):
    """The service is stopping: a long pass ends where it is (everything so far is recorded)."""
