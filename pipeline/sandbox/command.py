"""`python -m pipeline.sandbox` / `redox-pipeline sandbox`: run the sandbox until signalled.

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
from .server import Sandbox


def build_parser() -> argparse.ArgumentParser:
    """The command-line options; fault flags map one-to-one onto fault names."""
    p = argparse.ArgumentParser(prog="pipeline.sandbox",
                                description="Local Redox-compatible sandbox server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--verbose", action="store_true", help="log method, path, status to stderr")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: the ready line and errors as JSON objects")
    p.add_argument("--latency-ms", type=float, dest="latency_ms")
    p.add_argument("--error-rate", type=float, dest="error_rate")
    p.add_argument("--error-status", type=int, dest="error_status")
    p.add_argument("--rate-limit", type=int, dest="rate_limit_per_second")
    p.add_argument("--retry-after", type=float, dest="retry_after")
    p.add_argument("--token-ttl", type=int, dest="token_ttl_seconds")
    p.add_argument("--refuse-credentials", action="store_true", default=None,
                   dest="refuse_credentials")
    p.add_argument("--drop-after-accept-rate", type=float, dest="drop_after_accept_rate")
    p.add_argument("--seed", type=int, dest="seed")
    p.add_argument("--delivery-status", dest="delivery_status")
    p.add_argument("--send-limit-bytes", type=int, dest="send_limit_bytes")
    p.add_argument("--upload-limit-bytes", type=int, dest="upload_limit_bytes")
    p.add_argument("--public-key", action="append", default=[], metavar="KID=CLIENT_ID=PATH")
    p.add_argument("--legacy-credentials", action="append", default=[], metavar="KEY:SECRET")
    p.add_argument("--destination", action="append", default=None, metavar="UUID",
                   help="accept only these destination IDs (repeatable; default: any UUID)")
    return p


FAULT_FLAGS = ("latency_ms", "error_rate", "error_status", "rate_limit_per_second",
               "retry_after", "token_ttl_seconds", "refuse_credentials",
               "drop_after_accept_rate", "seed", "delivery_status", "send_limit_bytes",
               "upload_limit_bytes")


def make_sandbox(args: argparse.Namespace) -> Sandbox:
    """Build (not start) the Sandbox the options describe. Raises ValueError on bad options."""
    faults = {name: getattr(args, name) for name in FAULT_FLAGS
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
    if args.log_format == "json":   # interface.md: with json every line is one JSON object
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
