"""The operator's commands: ``status``, ``retry-failed``, ``report``, ``reconcile`` and
``health`` (``check`` and ``prune`` have modules of their own: check.py, prune.py).

Each reads the settings, looks at the folders through the folders seam (local only so far:
another source kind is refused with a clear config error, exit 2) and hands the work to its
own module (status.py, retry_failed.py, report.py / report_html.py). Exit statuses: 0; 1 only
when retry-failed could not move a chosen file; 2 for bad usage or config (raised as
ConfigError, printed by the cli).
"""

from __future__ import annotations

import os
import time
from typing import Optional

from pipeline import app
from pipeline import config as config_mod
from pipeline.errors import ConfigError, StorageError, UsageError
from pipeline.journal import Journal
from pipeline.ops import report as report_mod
from pipeline.ops import report_html as reporthtml
from pipeline.ops import retry_failed as replay
from pipeline.ops import status as status_mod
from pipeline.service import logs as logsetup
from pipeline.terminal import dumps, visible
from pipeline.timefmt import parse_since


def status(args) -> int:
    """Counts, the oldest waiting file, retries, last errors and whether Redox lets us in."""
    settings = _settings(args)
    view = app.make_view(settings)
    probe = None if args.no_auth_check else (lambda: status_mod.probe_auth(settings))
    doc = status_mod.collect(settings, view, probe=probe, errors=args.errors)
    if args.json or args.log_format == "json":
        print(dumps(doc), flush=True)
    else:
        print(status_mod.render(doc), flush=True)
    return 0


def retry_failed(args) -> int:
    """Failed files back into the inbox, their sidecars kept as history (retry_failed.py)."""
    settings = _settings(args)
    since = _since(args)
    view = app.make_view(settings)
    os.umask(settings.umask_value)

    def open_journal():
        try:
            return Journal(settings.state.path)
        except StorageError as exc:
            raise ConfigError(f"state.path: {exc}") from None
    return replay.retry_failed(view, open_journal,
                               lambda message, **fields: logsetup.emit(args.log_format, message, **fields),
                               since=since, reason=args.reason, dry_run=args.dry_run, force=args.force,
                               names=tuple(args.files))


def report(args) -> int:
    """The audit summary as tables, JSON, and optionally an HTML page."""
    settings = _settings(args)
    since = _since(args)
    view = app.make_view(settings)
    rows, journal = report_mod.gather(view, settings.state.path, since)
    doc = report_mod.summarize(rows, since=since, config=settings.config_path, journal=journal,
                               delivery=_delivery(settings, since))
    if args.html:
        os.umask(settings.umask_value)
        try:
            with open(args.html, "w", encoding="utf-8") as handle:
                handle.write(reporthtml.render(doc))
        except OSError as exc:
            raise UsageError(f"--html: cannot write {args.html} ({exc.strerror})") from None
        doc["html"] = os.path.abspath(args.html)
    if args.json or args.log_format == "json":
        print(dumps(doc), flush=True)
    else:
        print(report_mod.render(doc) + (f"\n\nHTML report written to {visible(doc['html'])}"
                                        if args.html else ""), flush=True)
    return 0


def reconcile(args) -> int:
    """One pass of delivery confirmation; the exit status says how
    the deliveries of the files in scope stand."""
    settings = _settings(args)
    problems = config_mod.delivery_problems(settings, required=True)
    if problems:
        raise ConfigError(problems)
    since = _since(args)
    from pipeline.delivery.reconcile import log_pass
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


def health(args) -> int:
    """GET the running service's ``/healthz`` (``metrics.address:metrics.port``) and print its
    body: exit 0 when it answers 200, 1 when it answers otherwise or not at all (the
    container's HEALTHCHECK), 2 when the config has no fixed ``metrics.port``."""
    import urllib.error
    import urllib.request
    settings = _settings(args)
    port, address = settings.metrics.port, settings.metrics.address
    if not port:
        raise ConfigError("metrics.port: /healthz is served on the metrics port; set a fixed port")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        logsetup.emit(args.log_format, f"unhealthy: {url} does not answer ({exc})", ok=False, url=url)
        return 1
    print(visible(body.decode("utf-8", "replace").strip()), flush=True)
    return 0 if status == 200 else 1


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
            print(visible(f"  {what}: {p['file']} (Log ID {p['log_id']})"), flush=True)


def _delivery(settings, since: Optional[float]) -> Optional[dict]:
    """Delivery confirmation's counts for the report's period (None when it is disabled)."""
    if not settings.delivery_check.enabled:
        return None
    from pipeline.delivery.records import delivery_summary
    try:
        summary = delivery_summary(settings, since)
    except StorageError as exc:
        return {"error": f"the journal cannot be read ({exc})"}
    summary.pop("problems", None)     # status lists them; the report counts
    return summary


def _settings(args):
    return config_mod.load_for_command(config_mod.default_path(args.config))


def _since(args) -> Optional[float]:
    if not args.since:
        return None
    try:
        return parse_since(args.since, time.time())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
