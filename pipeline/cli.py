"""The command line. ``main()`` returns the exit status.

    run [--config PATH] [--once]     0 nothing failed, 1 some failed, 2 bad config/usage or
                                     a missing inbox, 3 Redox unreachable, down (only 5xx or
                                     timeouts for once_wait_seconds) or credentials refused,
                                     128+N stopped by signal N (--once; the service exits 0)
    validate [--config PATH]         0 or 2, every problem with its key path
    check [--config PATH] [--json] FILE|DIR...
                                     what run would do with these files, doing none of it:
                                     0 all would be sent, 1 some would fail, 2 bad config/usage
    status [--config PATH] [--json]  counts, oldest waiting file, retries, last errors, auth; 0 or 2
    retry-failed [--config PATH] [--since DATE] [--reason TEXT] [--dry-run] [--force] [FILE...]
                                     0 (refusals included), 1 a move failed, 2 bad config/usage
    report [--config PATH] [--since DATE] [--html FILE] [--json]    the audit summary; 0 or 2
    reconcile [--config] [--since D] one pass of delivery confirmation: 0 all delivered,
                                     1 some failed, 2 bad config/usage, 3 credentials refused,
                                     4 none failed but some still pending
    prune [--config PATH] [--dry-run]  remove what retention says is old enough: 0, 1 some
                                     removal failed, 2 bad config/usage
    health [--config PATH]           ask the running service's /healthz: 0 healthy, 1 not
                                     (or not answering), 2 bad config or no metrics.port
    sandbox [--port N]               a local Redox-compatible server
    --version                        the version

With ``--log-format json`` every line this process writes to stdout and stderr is one JSON
object, usage errors included (status and report then print their one object).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional

from pipeline import __version__
from pipeline.errors import ConfigError, StorageError, UsageError
from pipeline.exits import Exit
from pipeline.service import logs as logsetup

log = logging.getLogger("pipeline")


class Parser(argparse.ArgumentParser):
    """argparse, except that usage errors are one JSON object when JSON output was asked for
    (the format is not known until parsing succeeds, so it is read from the raw arguments)."""

    json_errors = False

    def error(self, message: str):
        if Parser.json_errors:
            print(json.dumps({"level": "error", "event": "usage error", "problem": message,
                              "usage": self.format_usage().strip()}), file=sys.stderr)
            sys.exit(Exit.USAGE)
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
    parser.add_argument("--version", action="version", version=f"redox-pipeline {__version__}")
    run = sub.add_parser("run", parents=[common], help="send what is in the inbox")
    run.add_argument("--once", action="store_true", help="the cron form: take what is there, then exit")
    sub.add_parser("validate", parents=[common], help="check the config and the credentials' shape")
    check = sub.add_parser("check", parents=[common], help="judge files as run would; send, move and write nothing",
                           description=CHECK_HELP, epilog=CHECK_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--json", action="store_true",
                       help="one JSON object per file and line: file, ok, action, reason_kind, errors, "
                            "data_model, event_type, schema, route, destinations, documents")
    check.add_argument("paths", nargs="+", metavar="FILE|DIR",
                       help="a file (judged whatever its name), or a folder: the files run would take "
                            "from it as an inbox (source.pattern; subfolders when source.recursive)")
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
    prune = sub.add_parser("prune", parents=[common],
                           help="remove old files from done/ and failed/ and old journal rows (retention)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed; touch nothing")
    sub.add_parser("health", parents=[common],
                   help="ask the running service's /healthz (metrics.port); for container health checks")
    sandbox = sub.add_parser("sandbox", help="run a local Redox-compatible server")
    sandbox.add_argument("--log-format", choices=("text", "json"), default="text")
    return parser


CHECK_HELP = """\
Judge each file exactly as `run` would before sending it: JSON and Meta, the schema of its
DataModel/EventType (validation.schemas), its route and destinations (routes, destinations),
and how it would travel: SEND, or the Transferring Files path with the documents it would
upload (field, decoded size); or why it would fail, with the reason_kind and errors its
sidecar would hold. Nothing is sent, moved or written (no journal, no lock, no folder), and
Redox is never asked for a token: it runs in an upstream system's CI with the production
config and no credentials (redox.auth and delivery_check may be missing or name unset
environment variables). It cannot know whether the same bytes were delivered before (dedupe)
or what Redox itself will answer.

Output: one line per file on stdout, `PATH  OK  SEND  route NAME -> DESTINATIONS`, or
`PATH  FAIL  REASON_KIND: ERRORS`; errors are JSON paths and rules, never message values."""

CHECK_EPILOG = """\
exit status: 0 every file would be sent, 1 some would fail, 2 bad usage or config (a FILE or
DIR that does not exist, a broken schema file)

examples:
  redox-pipeline check drop/inbox                    # the files waiting in the inbox
  redox-pipeline check --json samples/*.json | jq 'select(.ok | not)'"""


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from pipeline import sandbox
        return sandbox.main(argv[1:])
    Parser.json_errors = wants_json(argv)
    args = build_parser().parse_args(argv)
    logsetup.setup(args.log_format)
    try:
        return _handler(args.command)(args)
    except BrokenPipeError:
        # the reader went away (`| head`): not our failure; keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except ConfigError as exc:
        report_config_problems(args, exc)
        return Exit.USAGE
    except StorageError as exc:     # e.g. the inbox cannot be created: fix the folders first
        report_config_problems(args, ConfigError(f"folders: {exc}"))
        return Exit.USAGE
    except Exception:
        if args.log_format != "json":
            raise                        # a traceback helps a person; it would break JSON lines
        log.exception("unexpected error")
        return Exit.FAILED


def _handler(command: str):
    if command == "check":
        from pipeline.ops.check import cmd_check
        return cmd_check
    if command == "prune":
        from pipeline.ops.prune import cmd_prune
        return cmd_prune
    if command in ("run", "validate"):
        from pipeline.service import run as runcmd
        return {"run": runcmd.cmd_run, "validate": runcmd.cmd_validate}[command]
    from pipeline.ops import commands  # imported only when needed: `run` starts fast
    return {"status": commands.status, "retry-failed": commands.retry_failed,
            "report": commands.report, "reconcile": commands.reconcile,
            "health": commands.health}[command]


def report_config_problems(args, exc: ConfigError) -> None:
    """Every problem on its own line (stderr), or one JSON object each with --log-format json."""
    what = "usage error" if isinstance(exc, UsageError) else "config error"
    for problem in exc.problems:
        if args.log_format == "json":
            print(json.dumps({"level": "error", "event": what, "problem": problem}), file=sys.stderr)
        else:
            print(f"{what}: {problem}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
