"""`python -m pipeline.sandbox` / `redox-pipeline sandbox`: run the sandbox until signalled.

The options and the `--help` text are in options.py.

Prints exactly one line to stdout once bound (`sandbox listening on <url>`), which launchers
wait for; everything else goes to stderr. Exit status: 0 after SIGTERM/SIGINT, 2 for bad usage
or options, 1 when the port cannot be bound.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from . import auth
from .options import FAULT_FLAGS, build_parser
from .server import Sandbox


def make_sandbox(args: argparse.Namespace) -> Sandbox:
    """Build (not start) the Sandbox the options describe. Raises ValueError on bad options."""
    faults = {name: getattr(args, name) for _, name, _ in FAULT_FLAGS
              if getattr(args, name) is not None}
    legacy = {}
    for spec in args.legacy_credentials:
        key, sep, secret = spec.partition(":")
        if not (sep and key and secret):
            raise ValueError(f"--legacy-credentials wants KEY:SECRET, got {spec!r}")
        legacy[key] = secret
    keys = [auth.parse_key_spec(spec) for spec in args.public_key]
    return Sandbox(args.host, args.port, public_keys=keys, legacy_credentials=legacy,
                   destinations=args.destination, verbose=args.verbose,
                   allow_remote=args.allow_remote, **faults)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground until SIGTERM/SIGINT; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        sandbox = make_sandbox(args)
    except ValueError as exc:
        _error(args, str(exc))
        return 2
    try:
        sandbox.start()
    except OSError as exc:
        _error(args, f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
        return 1
    stop = threading.Event()
    _on_signals(stop)
    if args.log_format == "json":   # with json, every line the process writes is one object
        print(json.dumps({"event": "sandbox listening", "url": sandbox.url}), flush=True)
    else:
        print(f"sandbox listening on {sandbox.url}", flush=True)
    try:
        # Short waits keep the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    sandbox.stop()
    return 0


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be installed from the main thread
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())


def _error(args, problem: str) -> None:
    if args.log_format == "json":
        print(json.dumps({"level": "error", "event": "sandbox error", "problem": problem}), file=sys.stderr)
    else:
        print(f"sandbox: {problem}", file=sys.stderr)
