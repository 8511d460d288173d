"""The command line (interface.md: Install and run). ``main()`` returns the exit status.

    run [--config PATH] [--once]     0 nothing failed, 1 some failed, 2 bad config/usage,
                                     3 Redox unreachable or credentials refused
    validate [--config PATH]         0 or 2, every problem with its key path
    status [--config PATH] [--json]  counts, oldest waiting file, retries, last errors, auth; 0 or 2
    retry-failed [--config PATH] [--since DATE] [--reason TEXT] [--dry-run] [--force] [FILE...]
                                     0 (refusals included), 1 a move failed, 2 bad config/usage
    report [--config PATH] [--since DATE] [--html FILE] [--json]    the audit summary; 0 or 2
    reconcile [--config] [--since D] one pass of delivery confirmation: 0 all delivered,
                                     1 some failed, 2 bad config/usage, 3 credentials refused,
                                     4 none failed but some still pending
    sandbox [--port N]               a local Redox-compatible server

With ``--log-format json`` every line this process writes to stdout and stderr is one JSON
object, usage errors included (status and report then print their one object).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import Optional

from pipeline import config as config_mod
from pipeline import logsetup
from pipeline import progress as progress_mod
from pipeline.errors import AuthError, ConfigError, StorageError, TransientDelivery, UsageError

log = logging.getLogger("pipeline")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REDOX = 0, 1, 2, 3


class Parser(argparse.ArgumentParser):
    """argparse, except that usage errors are one JSON object when JSON output was asked for
    (the format is not known until parsing succeeds, so it is read from the raw arguments)."""

    json_errors = False

    def error(self, message: str):
        if Parser.json_errors:
            print(json.dumps({"level": "error", "event": "usage error", "problem": message,
                              "usage": self.format_usage().strip()}), file=sys.stderr)
            sys.exit(EXIT_USAGE)
        super().error(message)


def wants_json(argv: list[str]) -> bool:
    return any(a == "--log-format=json" for a in argv) or any(
        a == "--log-format" and b == "json" for a, b in zip(argv, argv[1:]))


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--config", help="config file (default: $PIPELINE_CONFIG or ./config.yaml)")
    common.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for people, json (one object per line) for services")
    parser = Parser(prog="redox-pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="send what is in the inbox")
    run.add_argument("--once", action="store_true", help="the cron form: take what is there, then exit")
    sub.add_parser("validate", parents=[common], help="check the config and the credentials' shape")
    status = sub.add_parser("status", parents=[common], help="what is waiting, in flight, done and failed")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.add_argument("--no-auth-check", action="store_true", help="do not ask Redox for a token")
    status.add_argument("--errors", type=int, default=5, metavar="N", help="how many recent failures to list")
    retry = sub.add_parser("retry-failed", parents=[common], help="put failed files back into the inbox")
    retry.add_argument("--since", metavar="DATE", help="only files that failed at or after DATE "
                       "(2024-05-01, 2024-05-01T13:30 UTC, or an age such as 36h or 7d)")
    retry.add_argument("--reason", metavar="TEXT", help="only files whose errors or reason kind contain TEXT")
    retry.add_argument("--dry-run", action="store_true", help="list what would be done; move nothing")
    retry.add_argument("--force", action="store_true",
                       help="also retry files that failed through their own fault")
    retry.add_argument("files", nargs="*", metavar="FILE",
                       help="only these files (path below failed/ or bare name; globs allowed)")
    report = sub.add_parser("report", parents=[common], help="the audit summary")
    report.add_argument("--since", metavar="DATE", help="only outcomes at or after DATE (like retry-failed)")
    report.add_argument("--html", metavar="FILE", help="also write the summary as an HTML page with a chart")
    report.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    reconcile = sub.add_parser("reconcile", parents=[common],
                               help="one pass of delivery confirmation for the files in done/")
    reconcile.add_argument("--since", metavar="DATE",
                           help="only files sent at or after DATE (YYYY-MM-DD or ISO date-time)")
    sandbox = sub.add_parser("sandbox", help="run a local Redox-compatible server")
    sandbox.add_argument("--log-format", choices=("text", "json"), default="text")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from pipeline import sandbox
        rest = [a for a in argv[1:] if not a.startswith("--log-format")]
        return sandbox.main(rest)
    Parser.json_errors = wants_json(argv)
    args = build_parser().parse_args(argv)
    logsetup.setup(args.log_format)
    try:
        return _handler(args.command)(args)
    except BrokenPipeError:
        # the reader went away (`| head`): not our failure; keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ConfigError as exc:
        report_config_problems(args, exc)
        return EXIT_USAGE
    except StorageError as exc:     # e.g. the inbox cannot be created: fix the folders first
        report_config_problems(args, ConfigError(f"folders: {exc}"))
        return EXIT_USAGE
    except Exception:
        if args.log_format != "json":
            raise                        # a traceback helps a person; it would break JSON lines
        log.exception("unexpected error")
        return EXIT_FAILED


def _handler(command: str):
    if command in ("run", "validate", "reconcile"):
        return {"run": cmd_run, "validate": cmd_validate, "reconcile": cmd_reconcile}[command]
    from pipeline import commands       # imported only when needed: `run` starts fast
    return {"status": commands.status, "retry-failed": commands.retry_failed,
            "report": commands.report}[command]


def load_settings(args) -> config_mod.Settings:
    """The settings, with the configured umask applied to the process at once: every file and
    folder any command creates after this (sidecars, folders, the journal) gets it."""
    settings = config_mod.load(config_mod.default_path(args.config))
    os.umask(settings.umask_value)
    return settings


def report_config_problems(args, exc: ConfigError) -> None:
    """Every problem on its own line (stderr), or one JSON object each with --log-format json."""
    what = "usage error" if isinstance(exc, UsageError) else "config error"
    for problem in exc.problems:
        if args.log_format == "json":
            print(json.dumps({"level": "error", "event": what, "problem": problem}), file=sys.stderr)
        else:
            print(f"{what}: {problem}", file=sys.stderr)


def cmd_validate(args) -> int:
    """Every problem with its key path; the credentials' shape (the key file loads)."""
    settings = load_settings(args)
    from pipeline.app import tls_verify
    from pipeline.auth import load_private_key
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
    return EXIT_OK


def cmd_run(args) -> int:
    settings = load_settings(args)
    from pipeline import app
    from pipeline.runlock import LockBusy, RunLock
    lock = None
    if args.once:
        try:
            lock = RunLock(settings.state.path + ".once.lock").acquire()
        except LockBusy as exc:
            log.warning(f"another --once run is already working on these folders ({exc.holder}); "
                        "nothing to do", extra={"holder": exc.holder})
            return EXIT_OK
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
        store = app.make_store(settings, app.owner_id())
        waiting = sum(1 for _ in store.scan()) if once else 0
        idle = once and not waiting and not store.has_claims()
    except AuthError as exc:          # S3 refused the credentials: not the files' fault
        log.error(f"stopped: the source refused the credentials: {exc}; nothing was touched")
        return EXIT_REDOX
    except StorageError as exc:
        if settings.source.kind != "s3":
            raise                     # local folders: fix them first (exit 2)
        log.error(f"stopped: the source cannot be reached: {exc}; nothing was touched")
        return EXIT_REDOX
    if idle:
        log.info("nothing to do: the inbox is empty")
        return EXIT_OK
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
    from pipeline.metrics import Metrics
    metrics = Metrics()
    try:
        bound = metrics.serve(port, address)
    except OSError as exc:
        raise ConfigError(f"metrics.port: cannot listen on {address}:{port} ({exc.strerror})") from None
    host = f"[{address}]" if ":" in address else address
    log.info("metrics served", extra={"url": f"http://{host}:{bound}/metrics"})
    return metrics


def cmd_reconcile(args) -> int:
    """One pass of delivery confirmation (interface.md: reconcile); the exit status says how
    the deliveries of the files in scope stand."""
    settings = load_settings(args)
    problems = config_mod.delivery_problems(settings, required=True)
    if problems:
        raise ConfigError(problems)
    from pipeline.delivery import parse_since
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        _usage_error(args, f"--since: {exc}")
        return EXIT_USAGE
    os.umask(settings.umask_value)
    from pipeline import app
    from pipeline.journal import Journal
    from pipeline.reconcile import log_pass
    from pipeline.runlock import RunLock
    folder, platform = app.make_done_folder(settings), app.make_platform_client(settings)
    try:   # one pass at a time per journal: wait for the service's (or another cron's) to end
        lock = RunLock(app.reconcile_lock_path(settings)).acquire(wait=True)
    except OSError as exc:
        raise ConfigError(f"state.path: cannot create the reconcile lock ({exc.strerror})") from None
    try:
        try:
            journal = Journal(settings.state.path)
        except StorageError as exc:
            raise ConfigError(f"state.path: {exc}") from None
        try:
            result = app.make_reconciler(settings, journal, folder=folder,
                                         client=platform).run_pass(since)
        finally:
            journal.close()
    finally:
        lock.release()
    log_pass(result)
    _print_pass(args, result)
    return result.exit_status


def _print_pass(args, result) -> None:
    """The pass's outcome on stdout: one summary (a JSON object with --log-format json), and in
    text one line per failed or given-up delivery. Why a pass stopped is logged (stderr)."""
    c = result.counts
    problems = [{"file": p.name or p.ref, "log_id": p.log_id, "status": p.status,
                 "gave_up": p.gave_up} for p in result.problems]
    logsetup.emit(args.log_format,
                  f"{c['delivered']} delivered, {c['filtered']} filtered, {c['failed']} failed, "
                  f"{c['gave_up']} gave up, {c['pending']} pending "
                  f"({result.files} files, {result.looked_up} look-ups)",
                  **c, files=result.files, looked_up=result.looked_up,
                  exit_status=result.exit_status, stopped=result.stopped, problems=problems)
    if args.log_format != "json":
        for p in problems:
            what = "gave up waiting (still pending)" if p["gave_up"] else p["status"]
            print(f"  {what}: {p['file']} (Log ID {p['log_id']})", flush=True)


def _usage_error(args, problem: str) -> None:
    if args.log_format == "json":
        print(json.dumps({"level": "error", "event": "usage error", "problem": problem}),
              file=sys.stderr)
    else:
        print(f"redox-pipeline {args.command}: {problem}", file=sys.stderr)


def _check_credentials(client, once: bool) -> Optional[int]:
    """Get a token before touching any file: refused credentials or an unreachable Redox are
    not the files' fault (exit 3, nothing moved). A service keeps trying while unreachable."""
    try:
        client.tokens.token()
    except AuthError as exc:
        log.error(f"Redox refused the credentials: {exc}")
        return EXIT_REDOX
    except TransientDelivery as exc:
        if once:
            log.error(f"Redox could not be reached: {exc}")
            return EXIT_REDOX
        log.warning("Redox cannot be reached yet; files wait until it can", extra={"error": str(exc)})
    return None


def _install_signals(runner) -> None:
    def on_signal(signum, frame):
        runner.stop(signal.Signals(signum).name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
