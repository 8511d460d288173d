"""Start-up for the S3 source: build the store from settings and check the real endpoint.

Checked before any object is touched, so that what only the operator can fix is a config
error (exit 2) naming its key: the bucket or queue does not exist, the IAM policy does not allow
listing the source prefix or processing/, or reading the queue, or the endpoint does not
honour conditional writes (claims would not be safe). Refused or missing credentials raise
SourceAuthError (exit 3: nothing touched); an unreachable endpoint a StorageError (exit 3 too,
for the same reason).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.errors import ConfigError, Conflict, Denied, Missing
from pipeline.sources.s3.api import Bucket
from pipeline.sources.s3.keys import folder_prefix
from pipeline.sources.s3.lease import LEASE_DIR
from pipeline.sources.s3.sqs import Queue
from pipeline.sources.s3.store import S3Store
from pipeline.sources.s3.view import S3View


def open_source(settings, owner: str) -> S3Store:
    """The S3 store for ``settings`` (source.kind s3), with its SQS feed when configured."""
    src, folders = settings.source, settings.folders
    bucket = Bucket(src.bucket, endpoint_url=src.endpoint_url, region=src.region,
                    pool=settings.worker_ceiling + 6)
    # the prefixes the run lists (the inbox; processing/ for recovery) must be listable: a
    # bucket that does not exist or an IAM policy that does not allow it is the operator's to
    # fix (exit 2, naming it); an endpoint that cannot be reached is an outage (StorageError:
    # exit 3), nothing touched either way. done/ and failed/ are only written, never listed
    # (docs/s3.md's policy does not let the service list them).
    # The checks list whole first pages, kept for the first listing of each prefix (the run's
    # first pass and recovery's), and run beside the conditional-write probe: a backlog's
    # first claim then waits for one round of round trips at start, not three.
    probe_key = folder_prefix(folders.processing) + LEASE_DIR
    checks = [("source.prefix", src.prefix, 0 if src.queue_url else src.page_size),  # SQS: no listing
              ("folders.processing", folders.processing, src.page_size)]
    with ThreadPoolExecutor(len(checks) + 1) as pool:
        probed = pool.submit(_check, lambda: probe_conditional_writes(bucket, probe_key, owner),
                             "source.bucket")
        listed = [pool.submit(_check_listing, bucket, key, prefix, keep) for key, prefix, keep in checks]
        for future in listed:             # the first problem in the order given
            future.result()
        probed.result()
    store = S3Store(bucket, prefix=folder_prefix(src.prefix),
                    processing=folder_prefix(folders.processing),
                    done=folder_prefix(folders.done), failed=folder_prefix(folders.failed),
                    pattern=src.pattern, owner=owner, lease_seconds=src.lease_seconds,
                    page_size=src.page_size)
    if src.queue_url:
        from pipeline.sources.s3.feed import Feed
        queue = Queue(src.queue_url, region=src.region, wait=src.queue_wait_seconds)
        _check(queue.check, "source.queue_url")
        store.use_feed(Feed(queue, bucket=src.bucket, name_of=store.name_of,
                            visibility=src.queue_visibility_seconds, wait=src.queue_wait_seconds,
                            prefetch=max(10, 2 * settings.worker_ceiling)))
    return store


def _check_listing(bucket: Bucket, key: str, prefix: str, keep: int) -> None:
    """ConfigError naming ``source.bucket`` (it does not exist) or ``key`` (the prefix may not
    be listed) unless the prefix can be listed; the page is kept for the first listing (Bucket.
    check)."""
    try:
        bucket.check(folder_prefix(prefix), keep=keep)
    except Missing as exc:
        raise ConfigError(f"source.bucket: {exc}") from None
    except Denied as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _check(fn, key: str) -> None:
    """Run a start-up check; what only the operator can fix becomes a ConfigError (exit 2)."""
    try:
        fn()
    except (Missing, Denied) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def probe_conditional_writes(bucket: Bucket, prefix: str, owner: str) -> None:
    """Claims are only safe if the endpoint honours ``If-None-Match: *``: write a probe twice
    and insist that the second write is refused. ConfigError otherwise."""
    key = f"{prefix}.probe-{owner}"
    bucket.put(key, b"{}", if_none_match=True)
    try:
        bucket.put(key, b"{}", if_none_match=True)
    except Conflict:
        return
    finally:
        bucket.delete(key)
    raise ConfigError("source.endpoint_url: this S3 endpoint ignores conditional writes "
                      "(If-None-Match), so two workers could claim one object; refusing to run")


def open_view(settings) -> S3View:
    """The operator's view of the bucket's prefixes."""
    src, folders = settings.source, settings.folders
    bucket = Bucket(src.bucket, endpoint_url=src.endpoint_url, region=src.region)
    return S3View(bucket, {"inbox": src.prefix, "processing": folders.processing, "done": folders.done,
                           "failed": folders.failed}, src.pattern, src.page_size,
                  keep_drop_time=settings.ordering.by != "none")
