"""``run`` and ``validate``.

``run --once`` exits 0 when nothing went to failed, 1 when something did, 2 for a bad config,
3 when Redox (or the S3 source) could not be reached or refused the credentials; the service
runs until SIGTERM/SIGINT and exits 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from typing import Optional

from pipeline import config as config_mod
from pipeline.errors import AuthError, ConfigError, StorageError, TransientDelivery
from pipeline.exits import Exit
from pipeline.service import logs as logsetup
from pipeline.service import progress as progress_mod

log = logging.getLogger("pipeline")


def load_settings(args) -> config_mod.Settings:
    return config_mod.load_for_command(config_mod.default_path(args.config))


def cmd_validate(args) -> int:
    """Every problem with its key path; the credentials' shape (the key file loads)."""
    settings = load_settings(args)
    from pipeline.app import tls_verify
    from pipeline.redox.auth import load_private_key
    problems = []
    for where, auth in (("redox.auth", settings.redox.auth),
                        ("delivery_check.auth", settings.delivery_check.auth)):
        if auth is not None and auth.method == "oauth":
            try:
                load_private_key(auth.private_key_file, f"{where}.private_key_file")
            except ConfigError as exc:
                problems += exc.problems
    try:
        tls_verify(settings)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    logsetup.emit(args.log_format, f"config OK: {settings.config_path}", ok=True,
                  config=settings.config_path)
    return Exit.OK


def cmd_run(args) -> int:
    settings = load_settings(args)
    from pipeline import app
    from pipeline.errors import LockBusy
    from pipeline.service.runlock import RunLock
    lock = None
    if args.once:
        try:
            lock = RunLock(settings.state.path + ".once.lock").acquire()
        except LockBusy as exc:
            log.warning(f"another --once run is already working on these folders ({exc.holder}); "
                        "nothing to do", extra={"holder": exc.holder})
            return Exit.OK
        except OSError as exc:
            raise ConfigError(f"state.path: cannot create the run lock ({exc.strerror})") from None
    try:
        return _run(settings, args.once, app)
    finally:
        if lock:
            lock.release()


def _run(settings, once: bool, app) -> int:
    client = app.make_client(settings)
    try:
        store = app.make_source(settings, app.owner_id())
        waiting = sum(1 for _ in store.scan()) if once else 0
        idle = once and not waiting and not store.has_claims()
    except AuthError as exc:          # S3 refused the credentials: not the files' fault
        log.error(f"stopped: the source refused the credentials: {exc}; nothing was touched")
        return Exit.REDOX
    except StorageError as exc:
        if settings.source.kind != "s3":
            raise                     # local folders: fix them first (exit 2)
        log.error(f"stopped: the source cannot be reached: {exc}; nothing was touched")
        return Exit.REDOX
    if idle:
        log.info("nothing to do: the inbox is empty")
        return Exit.OK
    metrics = None if once else _start_metrics(settings)
    try:
        code = _check_credentials(client, once)
        if code is not None:
            store.close()            # e.g. SQS messages already received go back to the queue now
            return code
        try:
            from pipeline.journal import Journal
            journal = Journal(settings.state.path)
        except StorageError as exc:
            raise ConfigError(f"state.path: {exc}") from None
        progress = progress_mod.for_terminal(waiting) if once else None
        runner = app.make_runner(settings, store, journal, client, once=once, progress=progress,
                                 metrics=metrics)
        code = _drive(settings, runner, journal, client, once)
        if progress:
            progress.finish(runner.counts)
        if runner.fatal:
            log.error(f"stopped: {runner.fatal}; files were left where they were")
        elif runner.unfinished:
            log.error(f"{len(runner.unfinished)} file(s) could not be claimed or finished (storage "
                      "problem, see the errors above); they stay in the inbox for the next run")
        log.info("finished", extra={"done": runner.counts["done"], "failed": runner.counts["failed"]})
        if runner.inflight:
            # Requests still in flight after the grace period: leave now. Their files stay claimed,
            # the journal shows the attempt as started, and the next start recovers them.
            logging.shutdown()
            os._exit(code)
        journal.close()
        return code
    finally:
        if metrics:
            metrics.close()


def _drive(settings, runner, journal, client, once: bool) -> int:
    """Run the runner (with background delivery confirmation in a service when enabled)."""
    from pipeline import app
    background = None
    if not once and settings.delivery_check.enabled:
        background = app.make_background_reconcile(settings, journal, client)
    _install_signals(runner)
    # what start-up built (modules, config, clients) lives as long as the process: keep it out
    # of every later garbage collection, which otherwise walks it again and again
    gc.freeze()
    try:
        if background:
            background.start()
        return runner.run()
    finally:
        if background and not background.stop(settings.shutdown_grace_seconds):
            log.warning("a reconcile pass was still running at shutdown; the next one redoes it")


def _start_metrics(settings):
    """The Prometheus endpoint on ``metrics.address`` (127.0.0.1 unless set) when
    ``metrics.port`` is set (service mode only)."""
    port, address = settings.metrics.port, settings.metrics.address
    if port is None:
        return None
    from pipeline.service.metrics import Metrics
    metrics = Metrics()
    try:
        bound = metrics.serve(port, address)
    except OSError as exc:
        raise ConfigError(f"metrics.port: cannot listen on {address}:{port} ({exc.strerror})") from None
    host = f"[{address}]" if ":" in address else address
    log.info("metrics served", extra={"url": f"http://{host}:{bound}/metrics"})
    return metrics


def _check_credentials(client, once: bool) -> Optional[int]:
    """Get a token before touching any file: refused credentials or an unreachable Redox are
    not the files' fault (exit 3, nothing moved). A service keeps trying while unreachable."""
    try:
        client.tokens.token()
    except AuthError as exc:
        log.error(f"Redox refused the credentials: {exc}")
        return Exit.REDOX
    except TransientDelivery as exc:
        if once:
            log.error(f"Redox could not be reached: {exc}")
            return Exit.REDOX
        log.warning("Redox cannot be reached yet; files wait until it can", extra={"error": str(exc)})
    return None


def _install_signals(runner) -> None:
    def on_signal(signum, frame):
        runner.stop(signal.Signals(signum).name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
