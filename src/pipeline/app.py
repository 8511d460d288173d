"""Wiring: settings → the store, journal, Redox client and runner (the real seams by default)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from urllib.parse import urlparse

from pipeline.auth import make_tokens
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.journal import Journal
from pipeline.localstore import LocalStore
from pipeline.ratelimit import RateLimiter
from pipeline.redox import RedoxClient, Transport
from pipeline.retry import CircuitBreaker, RetryPolicy
from pipeline.runner import Runner
from pipeline.work import FileWork

log = logging.getLogger("pipeline.app")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def owner_id() -> str:
    """This process's name in processing/: host, pid and a random tag (pids get reused)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def make_store(settings: Settings, owner: str):
    src, folders = settings.source, settings.folders
    if src.kind == "s3":
        from pipeline.s3store import make_s3_store   # boto3 only when S3 is configured
        return make_s3_store(settings, owner)
    return LocalStore(src.inbox, folders.processing, folders.done, folders.failed, src.pattern, owner)


def tls_verify(settings: Settings) -> bool:
    """TLS verification is always on, except for an explicit opt-out aimed at loopback."""
    if not settings.redox.insecure_skip_tls_verify:
        return True
    host = urlparse(settings.redox.base_url).hostname
    if host not in LOOPBACK:
        raise ConfigError("redox.insecure_skip_tls_verify: only allowed for a sandbox on localhost")
    log.warning("TLS VERIFICATION IS OFF for the local sandbox (redox.insecure_skip_tls_verify)")
    return False


def make_client(settings: Settings) -> RedoxClient:
    redox = settings.redox
    transport = Transport(redox.connect_timeout_seconds, redox.timeout_seconds, tls_verify(settings),
                          pool_size=settings.workers + 2)
    tokens = make_tokens(redox.auth, redox.token_url, redox.base_url, transport)
    return RedoxClient(redox.base_url, redox.upload_url, transport, tokens,
                       RateLimiter(redox.max_requests_per_second))


def make_runner(settings: Settings, store, journal: Journal, client: RedoxClient, *, once: bool,
                progress=None, metrics=None) -> Runner:
    retry = settings.retry
    policy = RetryPolicy(retry.max_attempts, retry.backoff_initial_seconds, retry.backoff_max_seconds)
    breaker = CircuitBreaker(retry.breaker_threshold, max(0.05, retry.backoff_initial_seconds),
                             max(0.05, retry.backoff_max_seconds))
    transfer = None
    if hasattr(store, "wrap_journal"):
        journal = store.wrap_journal(journal)     # S3: SEND progress travels with the lease
    work = FileWork(store=store, journal=journal, client=client, policy=policy, breaker=breaker,
                    destinations=settings.destinations, send_limit=settings.redox.send_limit_bytes,
                    dedupe=settings.dedupe, transfer=transfer,
                    observe=metrics.observe if metrics else (lambda *a, **k: None))
    return Runner(store, journal, work, workers=settings.workers,
                  settle_seconds=settings.source.settle_seconds,
                  rescan_seconds=settings.source.rescan_seconds, once=once,
                  once_wait=retry.once_wait_seconds, grace=settings.shutdown_grace_seconds,
                  watch=watches(settings, once), progress=progress, metrics=metrics,
                  recover_seconds=recover_seconds(settings))


def watches(settings: Settings, once: bool) -> bool:
    """Event fast path: file events for a local service; SQS notifications always (in SQS mode
    they are the only way names arrive, ``--once`` included)."""
    if settings.source.kind == "s3":
        return bool(settings.source.queue_url)
    return not once


def recover_seconds(settings: Settings):
    """S3: look for expired leases (a worker on some machine died) every half lease, not only
    at start. Local claims are recovered at start (their owner's lock tells)."""
    return settings.source.lease_seconds / 2 if settings.source.kind == "s3" else None
