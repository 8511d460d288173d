"""The command line (interface.md: Install and run). ``main()`` returns the exit status.

    run [--config PATH] [--once]     0 nothing failed, 1 some failed, 2 bad config/usage,
                                     3 Redox unreachable or credentials refused
    validate [--config PATH]         0 or 2, every problem with its key path
    sandbox [--port N]               a local Redox-compatible server
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
from pipeline.errors import AuthError, ConfigError, StorageError, TransientDelivery

log = logging.getLogger("pipeline")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REDOX = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: $PIPELINE_CONFIG or ./config.yaml)")
    common.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for people, json (one object per line) for services")
    parser = argparse.ArgumentParser(prog="redox-pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="send what is in the inbox")
    run.add_argument("--once", action="store_true", help="the cron form: take what is there, then exit")
    sub.add_parser("validate", parents=[common], help="check the config and the credentials' shape")
    sandbox = sub.add_parser("sandbox", help="run a local Redox-compatible server")
    sandbox.add_argument("--log-format", choices=("text", "json"), default="text")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from pipeline import sandbox
        rest = [a for a in argv[1:] if not a.startswith("--log-format")]
        return sandbox.main(rest)
    parser = build_parser()
    args = parser.parse_args(argv)
    logsetup.setup(args.log_format)
    handler = {"run": cmd_run, "validate": cmd_validate}[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        report_config_problems(args, exc)
        return EXIT_USAGE


def load_settings(args) -> config_mod.Settings:
    return config_mod.load(config_mod.default_path(args.config))


def report_config_problems(args, exc: ConfigError) -> None:
    """Every problem on its own line (stderr), or one JSON object each with --log-format json."""
    for problem in exc.problems:
        if args.log_format == "json":
            print(json.dumps({"level": "error", "event": "config error", "problem": problem}),
                  file=sys.stderr)
        else:
            print(f"config error: {problem}", file=sys.stderr)


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
    os.umask(settings.umask_value)
    from pipeline import app
    from pipeline.runlock import LockBusy, RunLock
    lock = None
    if args.once:
        try:
            lock = RunLock(settings.state.path + ".once.lock").acquire()
        except LockBusy as exc:
            print(f"another --once run is already working on these folders ({exc.holder}); "
                  "nothing to do", file=sys.stderr)
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
        idle = once and not _anything_to_do(store)
    except (AuthError, StorageError) as exc:
        # the source (S3) refused the credentials or cannot be reached: not the files' fault
        print(f"stopped: the source cannot be used: {exc}; nothing was touched", file=sys.stderr)
        return EXIT_REDOX
    if idle:
        log.info("nothing to do: the inbox is empty")
        return EXIT_OK
    code = _check_credentials(client, once)
    if code is not None:
        store.close()            # e.g. SQS messages already received go back to the queue now
        return code
    try:
        from pipeline.journal import Journal
        journal = Journal(settings.state.path)
    except StorageError as exc:
        raise ConfigError(f"state.path: {exc}") from None
    runner = app.make_runner(settings, store, journal, client, once=once)
    _install_signals(runner)
    code = runner.run()
    if runner.fatal:
        print(f"stopped: {runner.fatal}; files were left where they were", file=sys.stderr)
    journal.close()
    log.info("finished", extra={"done": runner.counts["done"], "failed": runner.counts["failed"]})
    return code


def _anything_to_do(store) -> bool:
    return any(True for _ in store.scan()) or store.has_claims()


def _check_credentials(client, once: bool) -> Optional[int]:
    """Get a token before touching any file: refused credentials or an unreachable Redox are
    not the files' fault (exit 3, nothing moved). A service keeps trying while unreachable."""
    try:
        client.tokens.token()
    except AuthError as exc:
        print(f"Redox refused the credentials: {exc}", file=sys.stderr)
        return EXIT_REDOX
    except TransientDelivery as exc:
        if once:
            print(f"Redox could not be reached: {exc}", file=sys.stderr)
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
