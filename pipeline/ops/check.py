"""``redox-pipeline check [--json] FILE|DIR...``: what ``run`` would do with these files, doing none of it.

Each file is judged by the stage ``run`` decides with (pipeline/flow/check.py): JSON and Meta,
its schema (``validation``), its route and destinations (``routes``, ``destinations``), and how
it would travel (SEND, or the Transferring Files path and the documents it would upload), or
why it would fail, with the reason_kind and the errors the sidecar would hold. Nothing is sent,
moved or written: no journal, no lock, no folder, no token. So it runs where upstream systems
are built (their CI), with the production config and no Redox credentials: the credentials
(``redox.auth``, ``delivery_check``) may be missing or name unset environment variables; every
other problem of the config is an error, as for ``run``.

Files: a FILE is judged whatever its name. A DIR stands for the files ``run`` would take from
it as an inbox: names matching ``source.pattern`` (never hidden, ``*.tmp``, ``*.part`` or
sidecars), regular files only (no symlinks), in subfolders too when ``source.recursive`` is
set (hidden folders skipped). Routes match on a file's path below the inbox when it lies in
the configured inbox, else on its path below the DIR given (a FILE: its name).

Output: one line per file on stdout (text, or ``--json``: one object per line); warnings on
stderr. Exit 0 when every file would be sent, 1 when some would fail, 2 for bad usage or
config (a FILE or DIR that does not exist, a broken schema file). What only ``run`` can know is
not judged: whether the same bytes were delivered before (``dedupe``), and Redox's answer.
Never prints a value from a message: errors are JSON paths and rules.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Iterator, Optional

from pipeline import app
from pipeline import config as config_mod
from pipeline.config import Settings
from pipeline.errors import RejectedFile, UsageError
from pipeline.exits import Exit
from pipeline.flow.addressing import Addressing
from pipeline.flow.check import Judge, Verdict, judge_file
from pipeline.flow.job import Job
from pipeline.flow.routes import Router
from pipeline.sources.local import paths
from pipeline.values import Claim

log = logging.getLogger("pipeline.check")
# what check needs no value for: the credentials, and delivery confirmation
CREDENTIAL_KEYS = ("redox.auth.", "delivery_check.")


@dataclass(frozen=True)
class Target:
    """One file to judge: ``path`` on disk, ``shown`` as printed, ``name`` as routes see it."""
    path: str
    shown: str
    name: str


def cmd_check(args) -> int:
    settings = load_settings(args.config)
    targets = list(gather(args.paths, settings))       # every argument checked before any output
    gate = app.make_gate(settings)                      # once; a broken schema: exit 2
    judge = Judge(settings.redox.send_limit_bytes, True, gate)
    addressing = Addressing(Router.from_settings(settings))
    as_json = args.json or args.log_format == "json"
    failed = 0
    for target in targets:
        verdict = judge_one(judge, addressing, target, settings.redox.upload_limit_bytes)
        failed += not verdict.ok
        print(as_json_line(target, verdict) if as_json else as_text_line(target, verdict, gate is not None),
              flush=True)
    if not targets:
        log.warning("no file to check: no argument holds a file that run would take "
                    f"(source.pattern {settings.source.pattern!r}, source.recursive "
                    f"{str(settings.source.recursive).lower()})")
    elif not as_json:
        print(f"{len(targets)} file{'s' if len(targets) != 1 else ''}: {len(targets) - failed} "
              f"would be sent, {failed} would fail", file=sys.stderr, flush=True)
    return Exit.FAILED if failed else Exit.OK


def load_settings(path: Optional[str]) -> Settings:
    """The config as ``run`` reads it, except that missing credentials are not errors."""
    def credential(problem: str) -> bool:
        return problem.startswith(CREDENTIAL_KEYS) and (
            ": environment variable " in problem or ": missing" in problem)
    return config_mod.load(config_mod.default_path(path), tolerate=credential)


# -- which files -----------------------------------------------------------------------------------
def gather(arguments: list[str], settings: Settings) -> Iterator[Target]:
    """The files the arguments stand for, each DIR's in name order. Raises UsageError naming
    every argument that does not exist (before anything is judged)."""
    missing = [a for a in arguments if not os.path.lexists(a)]
    if missing:
        raise UsageError([f"{shown(a)}: no such file or folder" for a in missing])
    inbox = _real(settings.source.inbox) if settings.source.kind == "local" else None
    recursive, pattern = settings.source.recursive, settings.source.pattern
    targets: list[Target] = []
    for argument in arguments:
        if not os.path.isdir(argument):
            targets.append(Target(argument, shown(argument),
                                  _below(inbox, argument) or os.path.basename(argument)))
            continue
        try:
            # run leaves symlinks, FIFOs and folders alone, and names it cannot take
            found = sorted(paths.regular_candidates(argument, pattern, recursive), key=lambda pair: pair[0])
        except OSError as exc:
            raise UsageError(f"{shown(argument)}: cannot be listed ({exc.strerror})") from None
        for name, _info in found:
            if paths.name_problem(name):
                continue
            where = paths.join(argument, name)
            targets.append(Target(where, shown(name), _below(inbox, where) or name))
    return iter(targets)


def _real(path: Optional[str]) -> Optional[str]:
    return os.path.realpath(path) if path else None


def _below(inbox: Optional[str], path: str) -> Optional[str]:
    """``path``'s name below the configured inbox (``/``-separated), or None outside it."""
    if inbox is None:
        return None
    real = os.path.realpath(path)
    if not real.startswith(inbox.rstrip(os.sep) + os.sep):
        return None
    return os.path.relpath(real, inbox).replace(os.sep, "/")


# -- judging -----------------------------------------------------------------------------------------
def judge_one(judge: Judge, addressing: Addressing, target: Target, upload_limit: int) -> Verdict:
    """The verdict on one file, as FileWork would reach it (flow/check.py)."""
    try:
        size = os.stat(target.path).st_size
    except OSError as exc:
        return Verdict("reject", reason_kind="unreadable",
                       errors=(f"cannot be read ({exc.strerror or type(exc).__name__})",))
    # the run path's chooser, for a file that is only looked at: no ordering, nothing recorded
    job = Job(Claim(target.name, target.path, target.path, size, 0.0, 0.0))
    choose = addressing.picker(job)

    def route_name() -> Optional[str]:
        return job.route.choice.name if job.route is not None and job.route.choice else None
    try:
        return judge_file(judge, lambda: open(target.path, "rb"), size, choose, upload_limit,
                          route_name)
    except OSError as exc:
        return Verdict("reject", reason_kind="unreadable",
                       errors=(f"cannot be read ({exc.strerror or type(exc).__name__})",))
    except RejectedFile as exc:         # pragma: no cover - judge_file turns these into verdicts
        return Verdict("reject", reason_kind=exc.kind, errors=(exc.reason,))


# -- output ----------------------------------------------------------------------------------------
def shown(name: str) -> str:
    """A file name as it can be printed on one line: control characters, and bytes that are
    not UTF-8, as backslash escapes."""
    out = []
    for char in name:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:            # an undecodable byte (os.fsdecode's escape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\\" or not char.isprintable():
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def as_json_line(target: Target, verdict: Verdict) -> str:
    doc = {"file": target.shown, "ok": verdict.ok, "action": verdict.action,
           "reason_kind": verdict.reason_kind, "errors": list(verdict.errors),
           "data_model": verdict.data_model, "event_type": verdict.event_type,
           "schema": verdict.schema, "route": verdict.route,
           "destinations": [dict(d) for d in verdict.destinations],
           "documents": [{"field": d.field, "size": d.size} for d in verdict.documents]}
    return json.dumps(doc, ensure_ascii=False)


def as_text_line(target: Target, verdict: Verdict, validating: bool = False) -> str:
    """``lab/a.json  OK  SEND  route lab -> Lab Vendor``, or ``... FAIL  invalid: <errors>``."""
    if not verdict.ok:
        head, *rest = verdict.errors or ("",)       # a schema's name, then its problems
        return f"{target.shown}  FAIL  {verdict.reason_kind}: {head}" + (f": {'; '.join(rest)}" if rest else "")
    if verdict.action == "send":
        how = "SEND"
    else:
        count = len(verdict.documents)
        how = (f"transfer: {count} document{'s' if count != 1 else ''} ("
               + ", ".join(f"{d.field} {d.size} bytes" for d in verdict.documents) + ")")
    names = ", ".join(shown(str(d.get("Name") or d.get("ID"))) for d in verdict.destinations)
    unchecked = "  (no schema: not checked)" if validating and not verdict.schema else ""
    return f"{target.shown}  OK  {how}  route {shown(verdict.route or '-')} -> {names}{unchecked}"
