"""Wiring: settings → the store, journal, Redox client and runner (the real seams by default)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
from typing import Callable, Optional
from urllib.parse import urlparse

from pipeline.config import Settings
from pipeline.delivery.background import BackgroundReconcile
from pipeline.delivery.reconcile import Reconciler
from pipeline.errors import ConfigError
from pipeline.flow.addressing import Addressing
from pipeline.flow.concurrency import Concurrency
from pipeline.flow.ordering import make_sequencer
from pipeline.flow.retry import CircuitBreaker, RetryPolicy
from pipeline.flow.routes import Router
from pipeline.flow.runner import Runner
from pipeline.flow.work import FileWork
from pipeline.journal import Journal
from pipeline.journal.ledger import DeliveryLedger
from pipeline.redox.auth import make_tokens
from pipeline.redox.client import PAUSE_PATIENCE, RedoxClient, Transport
from pipeline.redox.platform import PlatformClient
from pipeline.redox.ratelimit import LimitedTransport, RateLimiter
from pipeline.redox.transfer.upload import Transfer
from pipeline.retention import BackgroundPrune
from pipeline.sources.base import Source
from pipeline.sources.view import DoneFolder, FolderView

log = logging.getLogger("pipeline.app")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def owner_id() -> str:
    """This process's name in processing/: host, pid and a random tag (pids get reused)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _backend(settings: Settings):
    """The one place that chooses between the local folders and S3: the module that builds
    that backend's Source and FolderView (boto3 is imported only when S3 is configured)."""
    if settings.source.kind == "s3":
        from pipeline.sources.s3 import setup as s3
        return s3
    from pipeline.sources.local import setup as local
    return local


def make_source(settings: Settings, owner: str) -> Source:
    """The run path's source; for S3 checked against the real endpoint first."""
    return _backend(settings).open_source(settings, owner)


def make_view(settings: Settings) -> FolderView:
    """The operator commands' view of the folders."""
    return _backend(settings).open_view(settings)


def tls_verify(settings: Settings) -> bool:
    """TLS verification is always on, except for an explicit opt-out aimed at loopback."""
    if not settings.redox.insecure_skip_tls_verify:
        return True
    host = urlparse(settings.redox.base_url).hostname
    if host not in LOOPBACK:
        raise ConfigError("redox.insecure_skip_tls_verify: only allowed for a sandbox on localhost")
    log.warning("TLS VERIFICATION IS OFF for the local sandbox (redox.insecure_skip_tls_verify)")
    return False


def make_limiter(settings: Settings) -> RateLimiter:
    """The host's rate limit: one budget shared through a file beside the journal by every
    process of this host that uses it (services, --once runs, reconcile). No Retry-After,
    however large, holds anything back longer than the retry policy's longest wait."""
    return RateLimiter.for_host(settings.redox.max_requests_per_second, settings.state.path,
                                max_pause=settings.retry.backoff_max_seconds)


def make_client(settings: Settings) -> RedoxClient:
    """The SEND/upload client: one transport (a requests Session with a connection per worker,
    plus the token fetch and a spare), the host's rate limit, which token requests wait for
    too."""
    redox, cap = settings.redox, settings.retry.backoff_max_seconds
    transport = Transport(redox.connect_timeout_seconds, redox.timeout_seconds, tls_verify(settings),
                          pool_size=settings.worker_ceiling + 2)
    limiter = make_limiter(settings)
    tokens = make_tokens(redox.auth, redox.token_url, redox.base_url,
                         LimitedTransport(transport, limiter, PAUSE_PATIENCE))
    return RedoxClient(redox.base_url, redox.upload_url, transport, tokens, limiter, retry_cap=cap)


def make_gate(settings: Settings):
    """The schema check (``validation``): None when ``validation.schemas`` is not set, else a
    validation.Gate over every schema of the folder, read, checked and compiled now, once
    (run, validate and check call this at start-up, before anything is touched). A folder or
    schema file that cannot be used is a ConfigError that names it (exit 2)."""
    folder = settings.validation.schemas
    if folder is None:
        return None
    from pipeline.validation import Gate, load_schemas  # jsonschema only when configured
    schemas = load_schemas(folder)
    log.info(f"schemas loaded: {len(schemas)} event schema{'s' if len(schemas) != 1 else ''} "
             f"from {folder} (validation.missing_schema: {settings.validation.missing_schema})",
             extra={"schemas": len(schemas), "folder": folder,
                    "missing_schema": settings.validation.missing_schema})
    return Gate(schemas, settings.validation.missing_schema)


def make_runner(settings: Settings, store: Source, journal: Journal, client: RedoxClient, *, once: bool,
                progress=None, metrics=None, pulse=None, on_turn=None, gate=None) -> Runner:
    """The runner and its per-file work. ``pulse`` (flow.pulse.Pulse) hears every Redox answer
    (the --once outage rule and /healthz read it); ``on_turn`` is called at each loop turn;
    ``gate`` (make_gate) checks each message against its schema before it is sent."""
    retry = settings.retry
    policy = RetryPolicy(retry.max_attempts, retry.backoff_initial_seconds, retry.backoff_max_seconds)
    breaker = CircuitBreaker(retry.breaker_threshold, max(0.05, retry.backoff_initial_seconds),
                             max(0.05, retry.backoff_max_seconds))
    journal = store.wrap_journal(journal)     # S3: SEND progress travels with the lease
    from pipeline.flow.pulse import Pulse
    pulse = pulse or Pulse()
    concurrency = Concurrency.for_workers(settings.workers, settings.redox.max_requests_per_second)
    observe = pulse.observer(_follow(concurrency, metrics.observe if metrics else None))
    transfer = Transfer(store, journal, client, [d.model_dump() for d in settings.destinations],
                        settings.redox.send_limit_bytes, settings.redox.upload_limit_bytes,
                        observe=observe)
    work = FileWork(store=store, journal=journal, client=client, policy=policy, breaker=breaker,
                    destinations=settings.destinations, send_limit=settings.redox.send_limit_bytes,
                    dedupe=settings.dedupe, transfer=transfer,
                    addressing=make_addressing(settings, store, once=once), observe=observe,
                    gate=gate)
    return Runner(store, journal, work, workers=concurrency,
                  settle_seconds=settings.source.settle_seconds,
                  rescan_seconds=settings.source.rescan_seconds, once=once,
                  once_wait=retry.once_wait_seconds, grace=settings.shutdown_grace_seconds,
                  progress=progress, metrics=metrics, pulse=pulse, on_turn=on_turn,
                  request_timeout=settings.redox.connect_timeout_seconds + settings.redox.timeout_seconds)


def _follow(concurrency: Concurrency, then: Optional[Callable[..., None]]) -> Callable[..., None]:
    """An ``observe(kind, status=, elapsed=)`` hook that tells ``concurrency`` how each SEND
    went (its status, and how long the exchange took from its departure: the transport's
    ``elapsed`` leaves out the wait at the rate limiter), then ``then`` (the metrics)."""
    def observe(kind: str, *, status: Optional[int] = None, elapsed: Optional[float] = None) -> None:
        if kind == "send":
            concurrency.observe_reply(status, elapsed)
        if then is not None:
            then(kind, status=status, elapsed=elapsed)
    return observe


def make_addressing(settings: Settings, store: Source, *, once: bool) -> Addressing:
    """Routes, and ordering when ``ordering.by`` is set (docs/routing.md)."""
    return Addressing(Router.from_settings(settings), make_sequencer(settings, store, once=once))


# -- delivery confirmation (reconcile) --------------------------------------------------------------
def make_done_folder(settings: Settings) -> DoneFolder:
    """Where reconcile finds finished files: the done folder of the source's view."""
    return DoneFolder(make_view(settings))


def make_platform_client(settings: Settings, tokens=None, limiter=None) -> PlatformClient:
    """The Platform API client. ``tokens``/``limiter`` may be shared with the SEND client
    (the same key, and one request budget per IP: a 429 on either slows both); otherwise it
    draws from the host's rate limit all the same, its token requests included."""
    dc, redox, cap = settings.delivery_check, settings.redox, settings.retry.backoff_max_seconds
    verify = tls_verify(settings)
    if not verify and urlparse(dc.platform_url).hostname not in LOOPBACK:
        raise ConfigError("redox.insecure_skip_tls_verify: delivery_check.platform_url is not on "
                          "localhost")
    transport = Transport(redox.connect_timeout_seconds, redox.timeout_seconds, verify, pool_size=2)
    limiter = limiter or make_limiter(settings)
    if tokens is None:
        tokens = make_tokens(dc.auth or redox.auth, settings.platform_token_url, redox.base_url,
                             LimitedTransport(transport, limiter, PAUSE_PATIENCE))
    return PlatformClient(dc.platform_url, dc.organization_id or "", transport, tokens, limiter,
                          retry_cap=cap)


def make_reconciler(settings: Settings, journal: Journal, *, folder=None, client=None,
                    stop_event: threading.Event | None = None) -> Reconciler:
    """A Reconciler for ``settings`` (``folder``/``client`` default to make_done_folder and
    make_platform_client); with ``stop_event`` it sleeps on it and stops when it is set."""
    retry, dc = settings.retry, settings.delivery_check
    policy = RetryPolicy(retry.max_attempts, retry.backoff_initial_seconds, retry.backoff_max_seconds)
    reconciler = Reconciler(folder or make_done_folder(settings), DeliveryLedger(journal),
                            client or make_platform_client(settings), policy,
                            dc.give_up_after_hours * 3600.0)
    if stop_event is not None:
        reconciler.sleep, reconciler.should_stop = stop_event.wait, stop_event.is_set
    return reconciler


def reconcile_lock_path(settings: Settings) -> str:
    """One reconcile pass at a time per journal (cron command and service alike)."""
    return settings.state.path + ".reconcile.lock"


def make_background_reconcile(settings: Settings, journal: Journal,
                              client: RedoxClient) -> BackgroundReconcile:
    """Service mode: passes every ``delivery_check.interval_seconds``, sharing the SEND
    client's rate limit, and its tokens when no separate Platform key is configured."""
    stop = threading.Event()
    tokens = client.tokens if settings.delivery_check.auth is None else None
    platform = make_platform_client(settings, tokens, client.limiter)
    reconciler = make_reconciler(settings, journal, client=platform, stop_event=stop)
    return BackgroundReconcile(reconciler, settings.delivery_check.interval_seconds,
                               reconcile_lock_path(settings), stop)


def make_background_prune(settings: Settings, journal: Journal) -> Optional[BackgroundPrune]:
    """Service mode: the retention passes, or None when every retention limit is off."""
    keep = settings.retention
    if keep.done_days is None and keep.failed_days is None and keep.journal_days is None:
        return None
    return BackgroundPrune(settings, journal, lambda: make_view(settings))
