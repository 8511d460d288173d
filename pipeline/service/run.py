"""``run`` and ``validate``.

``run --once`` exits 0 when nothing went to failed, 1 when something did, 2 for a bad config
or a missing inbox, 3 when Redox (or the S3 source) could not be reached, refused the
credentials, or answered nothing but server errors and timeouts for ``once_wait_seconds``,
and 128 + the signal's number when SIGTERM or SIGINT stopped it (143, 130). The service runs
until SIGTERM/SIGINT and exits 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from typing import Optional

from pipeline import __version__
from pipeline import config as config_mod
from pipeline.errors import AuthError, ConfigError, StorageError, TransientDelivery
from pipeline.exits import Exit
from pipeline.service import logs as logsetup
from pipeline.service import progress as progress_mod

log = logging.getLogger("pipeline")
SIGNAL_BASE = 128     # a --once run stopped by signal N exits 128 + N, as a shell reports it


def load_settings(args) -> config_mod.Settings:
    return config_mod.load_for_command(config_mod.default_path(args.config))


def cmd_validate(args) -> int:
    """Every problem with its key path, all of them at once: the config's own (config.examine
    goes on past a key the model refuses), the schemas (validation.schemas) read, checked and
    compiled, then what needs the filesystem: the key files load, TLS, the inbox and
    processing/ on one filesystem. Touches nothing."""
    settings, problems = config_mod.examine(config_mod.default_path(args.config))
    gate = None
    if settings is not None:
        from pipeline.app import make_gate
        try:
            gate = make_gate(settings)      # a broken schema file: ConfigError naming it
        except ConfigError as exc:
            problems += exc.problems
        problems += _file_problems(settings)
    if problems or settings is None:
        raise ConfigError(problems)
    schemas = f"; {len(gate.schemas)} schemas" if gate is not None else ""
    logsetup.emit(args.log_format, f"config OK: {settings.config_path}{schemas}", ok=True,
                  config=settings.config_path, schemas=len(gate.schemas) if gate else None)
    return Exit.OK


def _file_problems(settings) -> list[str]:
    """What ``validate`` checks beyond the config itself, each problem on its own (a key file
    that cannot be read is reported whatever else is wrong)."""
    from pipeline.app import tls_verify
    from pipeline.redox.auth import load_private_key
    problems: list[str] = []
    for where, auth in (("redox.auth", settings.redox.auth),
                        ("delivery_check.auth", settings.delivery_check.auth)):
        if auth is not None and auth.method == "oauth" and auth.private_key_file:
            try:
                load_private_key(auth.private_key_file, f"{where}.private_key_file")
            except ConfigError as exc:
                problems += exc.problems
    try:
        tls_verify(settings)
    except ConfigError as exc:
        problems += exc.problems
    return problems + config_mod.filesystem_problems(settings)


def cmd_run(args) -> int:
    settings = load_settings(args)
    problems = config_mod.filesystem_problems(settings)    # before anything is created
    if problems:
        raise ConfigError(problems)
    from pipeline import app
    gate = app.make_gate(settings)      # once, before anything is touched (a broken schema: exit 2)
    from pipeline.errors import LockBusy
    from pipeline.runlock import RunLock
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
        return _run(settings, args.once, app, gate)
    finally:
        if lock:
            lock.release()


def _run(settings, once: bool, app, gate=None) -> int:
    client = app.make_client(settings)
    try:
        store = app.make_source(settings, app.owner_id())
        store.prepare()               # a missing or unreadable inbox: ConfigError, exit 2
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
        store.close()
        log.info("nothing to do: the inbox is empty")
        return Exit.OK
    from pipeline.flow.pulse import Pulse
    pulse = Pulse()
    metrics = None if once else _start_metrics(settings, pulse)
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
        message, extra = startup_line(settings, once)
        log.info(message, extra=extra)
        progress = progress_mod.for_terminal(waiting) if once else None
        from pipeline.service.notify import Notifier
        notifier = Notifier() if not once else None
        runner = app.make_runner(settings, store, journal, client, once=once, progress=progress,
                                 metrics=metrics, pulse=pulse, gate=gate,
                                 on_turn=notifier.ping if notifier and notifier.enabled else None)
        code = _drive(settings, runner, journal, client, once, notifier)
        if progress:
            progress.finish(runner.counts)
        if runner.fatal:
            log.error(f"stopped: {runner.fatal}; files were left where they were")
        elif runner.stop_status is not None:
            log.warning(f"stopped by {runner.stop_reason} before the run was complete; files not "
                        f"finished went back to the inbox (exit {code})",
                        extra={"reason": runner.stop_reason})
        elif runner.unfinished:
            log.error(f"{len(runner.unfinished)} file(s) could not be claimed or finished (storage "
                      "problem, see the errors above); they stay in the inbox for the next run")
        log.info("finished", extra=runner.tally.summary())
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


def startup_line(settings, once: bool) -> tuple[str, dict]:
    """The start-up log line: version, source, folders, destinations, rate limit, workers and
    the auth method (never a credential). Returns (message, extra)."""
    src, folders, redox = settings.source, settings.folders, settings.redox
    if src.kind == "s3":
        where = f"s3://{src.bucket}/{src.prefix}" + (f" via {src.queue_url}" if src.queue_url else "")
    else:
        where = src.inbox
    rate = redox.max_requests_per_second
    dests = len(settings.destinations)
    text = (f"redox-pipeline {__version__} starting {'a --once run' if once else 'as a service'}: "
            f"source {src.kind} {where}; folders processing {folders.processing}, done {folders.done}, "
            f"failed {folders.failed}; {dests} destination{'s' if dests != 1 else ''}; "
            f"{f'at most {rate:g} requests/s' if rate else 'no rate limit'}; "
            f"{settings.workers} worker{'s' if settings.workers != 1 else ''}; "
            f"auth {redox.auth.method}; Redox {redox.base_url}")
    fields = {"version": __version__, "mode": "once" if once else "service", "source": src.kind,
              "inbox": where, "folders": {"processing": folders.processing, "done": folders.done,
                                          "failed": folders.failed},
              "destinations": dests, "rate_limit": rate, "workers": settings.workers,
              "auth": redox.auth.method, "redox": redox.base_url}
    return text, {"startup": fields}


def _drive(settings, runner, journal, client, once: bool, notifier=None) -> int:
    """Run the runner (with background delivery confirmation and pruning in a service)."""
    from pipeline import app
    background: list = []      # threads with start() and stop(timeout)
    if not once and settings.delivery_check.enabled:
        background.append(app.make_background_reconcile(settings, journal, client))
    if not once:
        pruner = app.make_background_prune(settings, journal)
        if pruner is not None:
            background.append(pruner)
    _install_signals(runner, once, notifier)
    # what start-up built (modules, config, clients) lives as long as the process: keep it out
    # of every later garbage collection, which otherwise walks it again and again
    gc.freeze()
    try:
        for task in background:
            task.start()
        if notifier:
            notifier.ready(f"redox-pipeline {__version__} running")
        return runner.run()
    finally:
        for task in background:
            if not task.stop(settings.shutdown_grace_seconds):
                log.warning(f"a {task.name} pass was still running at "
                            "shutdown; the next one redoes it")


def _start_metrics(settings, pulse):
    """The Prometheus endpoint and ``/healthz`` on ``metrics.address`` (127.0.0.1 unless set)
    when ``metrics.port`` is set (service mode only)."""
    port, address = settings.metrics.port, settings.metrics.address
    if port is None:
        return None
    from pipeline.service.health import Health
    from pipeline.service.metrics import Metrics
    metrics = Metrics()
    try:
        bound = metrics.serve(port, address, health=Health(pulse, settings.health).check)
    except OSError as exc:
        raise ConfigError(f"metrics.port: cannot listen on {address}:{port} ({exc.strerror})") from None
    host = f"[{address}]" if ":" in address else address
    log.info("metrics served", extra={"url": f"http://{host}:{bound}/metrics"})
    return metrics


def _check_credentials(client, once: bool) -> Optional[int]:
    """Get a token before touching any file. Three different failures, none of them the
    files' fault (exit 3, nothing moved), each told as what it is, since each asks the
    operator for something else: refused credentials (rotate or fix the key), a token reply
    that cannot be used (the credentials were not refused: Redox or a proxy in between is at
    fault), an auth endpoint that cannot be reached (the network; a service keeps trying)."""
    from pipeline.redox.tokenreply import UnusableTokenReply
    try:
        client.tokens.token()
    except UnusableTokenReply as exc:
        log.error(f"stopped: {exc}. The token endpoint answered, but not with a token that can be "
                  "used: the reply is at fault (Redox, or a proxy in between), not the credentials; "
                  "nothing was touched")
        return Exit.REDOX
    except AuthError as exc:
        log.error(f"stopped: {exc}; check the credentials in redox.auth (client_id, key_id and "
                  "the private key, or api_key and secret); nothing was touched")
        return Exit.REDOX
    except TransientDelivery as exc:
        if once:
            log.error(f"stopped: Redox could not be reached: {exc}; nothing was touched")
            return Exit.REDOX
        log.warning("Redox cannot be reached yet; files wait until it can", extra={"error": str(exc)})
    return None


def _install_signals(runner, once: bool, notifier=None) -> None:
    """SIGTERM and SIGINT stop the runner cleanly. A service then exits 0 (a stop is what was
    asked for); a --once run exits 128 + the signal's number, so cron and scripts can tell a
    run that was cut short from one that finished."""
    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        if notifier:
            notifier.stopping(f"stopping ({name})")
        runner.stop(name, SIGNAL_BASE + signum if once else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
