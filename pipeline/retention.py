"""Retention: the pass that ``redox-pipeline prune`` (ops/prune.py) runs once and the service
runs on a schedule (BackgroundPrune, built by app.make_background_prune).

What goes (config ``retention``):

- done/ and failed/ files finished more than ``done_days`` / ``failed_days`` ago, each with its
  sidecar. Off by default: they are the audit trail. The age is the sidecar's ``finished_at``;
  only sidecars last written before the limit are read at all (a sidecar is written at or
  after its file's finish, so a younger one cannot describe an old enough finish). A file
  whose sidecar is missing or unreadable is never removed: it may be a finish in progress
  (the sidecar is written first, the file moved second), and without it nobody can say what
  happened to the file. The file goes first, then its sidecar: an interruption leaves a lone
  sidecar, which the next pass removes once it is old enough too.
- journal rows of files finished more than ``journal_days`` ago (journal/retention.py says
  what is kept: pending work, the delivered hashes dedupe needs, unsettled deliveries).

Everything goes through the FolderView seam, so it works the same on local folders and S3.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from pipeline.errors import StorageError
from pipeline.journal import Journal
from pipeline.journal import retention as journal_retention
from pipeline.periodic import Periodic
from pipeline.sidecar import SUFFIX
from pipeline.sources.view import FolderView
from pipeline.timefmt import iso, parse_iso

log = logging.getLogger("pipeline.prune")
DAY = 86400.0

Emit = Callable[..., None]    # (message, **fields): one output line


@dataclass
class FolderResult:
    folder: str
    removed: list[str] = field(default_factory=list)     # paths below the folder
    kept: list[tuple[str, str]] = field(default_factory=list)   # (path, why) old files kept
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PruneResult:
    folders: list[FolderResult] = field(default_factory=list)
    journal: Optional[journal_retention.JournalCounts] = None
    journal_state: str = "off"          # off | ok | missing | unreadable (...)

    @property
    def failed(self) -> bool:
        return any(f.errors for f in self.folders)


def prune(settings, view: FolderView, journal_opener: Callable[[], Optional[Journal]], *,
          dry_run: bool, emit: Emit, now: Optional[float] = None,
          should_stop: Callable[[], bool] = lambda: False) -> PruneResult:
    """One pass over done/, failed/ and the journal as ``settings.retention`` says; ``emit``
    gets one line per file removed (or, ``dry_run``, that would be) and per old file kept.
    ``journal_opener`` returns the journal, or None when there is none yet."""
    keep = settings.retention
    now = time.time() if now is None else now
    result = PruneResult()
    for folder, days in (("done", keep.done_days), ("failed", keep.failed_days)):
        if days is not None:
            result.folders.append(prune_folder(view, folder, now - days * DAY, dry_run=dry_run,
                                               emit=emit, should_stop=should_stop))
    if keep.journal_days is not None and not should_stop():
        gone = [p for f in result.folders if f.folder == "done" for p in f.removed]
        journal = journal_opener()
        if journal is None:
            result.journal_state = "missing"
        else:
            dedupe_cutoff = None if keep.dedupe_days is None else now - keep.dedupe_days * DAY
            try:
                result.journal = journal_retention.prune(
                    journal, now - keep.journal_days * DAY, dedupe_cutoff, dry_run=dry_run,
                    gone=gone, should_stop=should_stop)
                result.journal_state = "ok"
            except StorageError as exc:
                result.journal_state = f"unreadable ({exc})"
    return result


def prune_folder(view: FolderView, folder: str, cutoff: float, *, dry_run: bool, emit: Emit,
                 should_stop: Callable[[], bool] = lambda: False) -> FolderResult:
    """Remove the files of ``folder`` (with their sidecars) finished before ``cutoff``."""
    result = FolderResult(folder)
    files: dict[str, float] = {}
    cars: dict[str, float] = {}
    for entry in view.listing(folder):
        if entry.path.endswith(SUFFIX):
            cars[entry.path[:-len(SUFFIX)]] = entry.mtime
        else:
            files[entry.path] = entry.mtime
    verb = "would remove" if dry_run else "removed"
    for path in sorted(set(files) | set(cars)):
        if should_stop():
            break
        car_mtime = cars.get(path)
        if car_mtime is None:
            if files[path] < cutoff:           # old, but nobody can say what happened to it
                result.kept.append((path, "its sidecar is missing"))
                emit(f"kept {folder}/{path}: its sidecar is missing", folder=folder, path=path,
                     kept=True, reason="no sidecar")
            continue
        if car_mtime >= cutoff:
            continue                            # written too recently to describe an old finish
        doc = view.read_sidecar(folder, path)
        finished = parse_iso(doc.get("finished_at")) if doc else None
        if finished is None:
            result.kept.append((path, "its sidecar is unreadable"))
            emit(f"kept {folder}/{path}: its sidecar is unreadable", folder=folder, path=path,
                 kept=True, reason="sidecar unreadable")
            continue
        if finished >= cutoff:
            continue
        alone = path not in files
        if not dry_run:
            try:
                if not alone:
                    view.remove(folder, path)
                view.remove(folder, path + SUFFIX)
            except (StorageError, OSError) as exc:
                result.errors.append((path, str(exc)))
                log.error("cannot remove", extra={"path": view.where(folder, path), "error": str(exc)})
                continue
        result.removed.append(path)
        what = "a sidecar left without its file" if alone else "with its sidecar"
        emit(f"{verb} {folder}/{path} ({what}, finished {iso(finished)})", folder=folder, path=path,
             finished_at=iso(finished), dry_run=dry_run)
    return result


def summary(result: PruneResult, dry_run: bool) -> tuple[str, dict]:
    """The pass in one line, and its counts as fields."""
    verb = "to remove" if dry_run else "removed"
    parts: list[str] = []
    fields: dict[str, object] = {"dry_run": dry_run}
    for f in result.folders:
        parts.append(f"{f.folder}/: {len(f.removed)} {verb}" + (f", {len(f.kept)} old kept" if f.kept else "")
                     + (f", {len(f.errors)} could not be removed" if f.errors else ""))
        fields[f.folder] = {"removed": len(f.removed), "kept": len(f.kept), "errors": len(f.errors)}
    if result.journal is not None:
        j = result.journal
        parts.append(f"journal: {j.claims} rows of finished files {verb} ({j.attempts} attempts), "
                     f"{j.hashes_kept} delivered hashes {'to keep' if dry_run else 'kept'} for dedupe")
        fields["journal"] = j.as_dict()
    elif result.journal_state != "off":
        parts.append(f"journal: {result.journal_state}")
        fields["journal"] = result.journal_state
    if not parts:
        parts.append("retention is off (every retention limit is null)")
    return "prune: " + "; ".join(parts), fields


class BackgroundPrune(Periodic):
    """Service mode: a pass at start, then one every ``retention.interval_hours``, in its own
    thread, sharing the service's journal. A pass that fails is logged; the service goes on."""

    name = "prune"

    def __init__(self, settings, journal: Journal, view_factory: Callable[[], FolderView]):
        super().__init__(settings.retention.interval_hours * 3600)    # a pass ends at its next file
        self.settings, self.journal, self.view_factory = settings, journal, view_factory

    def one_pass(self) -> None:
        try:
            result = prune(self.settings, self.view_factory(), lambda: self.journal, dry_run=False,
                           emit=lambda message, **fields: log.info(message, extra=_log_fields(fields)),
                           should_stop=self._stop.is_set)
        except Exception:    # a pass must never take the service down
            log.exception("prune pass failed; the next one tries again")
            return
        self.passes += 1
        message, _fields = summary(result, False)
        j = result.journal
        busy = any(f.removed or f.kept or f.errors for f in result.folders) or (j is not None and j.claims)
        # a pass that found nothing to do is not news every day
        log.log(logging.INFO if busy or result.journal_state not in ("ok", "off") else logging.DEBUG, message)


def _log_fields(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if k in ("path", "reason")}
