"""retry-failed: put chosen files from failed/ back into the inbox, keeping their history.

Which failures are worth another try: everything except the file's own fault, unless forced.

    refused without --force            why
    reason_kind invalid                 not JSON / not a Redox message: it will fail the same way
    reason_kind too_large, not_a_file   the bytes (or the kind of file) are the problem
    permanent with HTTP 400, 413, 422   Redox judged the message itself (validation, size);
                                        403/404 and other 4xx are usually configuration
                                        (destinations, subscriptions) and are retried
    possible_duplicate                  Redox may already hold it: another SEND could duplicate it

Whatever the options, an entry of failed/ that is not a regular file (a FIFO, a symlink, a
folder) is never opened or moved: it is listed as skipped. What is printed of a failure is its
reason in our own words (pipeline/reasons.py), never Redox's error texts.

How the history is kept (end to end): before a file is moved, its failed sidecar (with any
older ``history`` it carried, flattened, oldest first) is stored in the journal's ``replays``
table under the inbox name it is put back as and the sha256 of its bytes. The move never
overwrites (a taken name gets ``-N``); the old sidecar is deleted only after the move. When the
file's next outcome is written, ``finish`` puts those sidecars into the new one as ``history``
and marks them taken by that claim (journal.for_sidecar / finished).
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from typing import Any, Optional

from pipeline import reasons, timefmt
from pipeline.errors import ClaimLost, StorageError
from pipeline.flow.board import operator_board, unhold
from pipeline.names import candidates as _candidates
from pipeline.sources.view import Entry

OWN_FAULT_KINDS = frozenset({"invalid", "too_large", "not_a_file"})
OWN_FAULT_STATUSES = frozenset({400, 413, 422})


@dataclass(frozen=True)
class Choice:
    """What to do with one failed file: ``action`` requeue | refuse | skip (not a regular
    file: never touched); ``why`` for a refusal or a skip."""
    entry: Entry
    sidecar: Optional[dict]
    failed_at: float
    action: str
    why: Optional[str] = None


def own_fault(sidecar: Optional[dict]) -> Optional[str]:
    """Why this failure should not simply be retried (see the table above), or None."""
    if not sidecar:
        return None                     # no record of why: nothing says it is the file's fault
    kind, status = sidecar.get("reason_kind"), sidecar.get("http_status")
    reason = reasons.of_failed_sidecar(sidecar)
    if kind in OWN_FAULT_KINDS:
        return f"the file's own fault ({kind}: {reason})"
    if kind == "permanent" and status in OWN_FAULT_STATUSES:
        n = reasons.error_count(sidecar)
        return (f"Redox refused the message itself (HTTP {status}: "
                f"{reasons.texts(n, 'in the sidecar') if n else 'no error text'})")
    if sidecar.get("possible_duplicate"):
        return "Redox may already have accepted an earlier SEND of it (possible_duplicate)"
    return None


def choose(view, *, since: Optional[float], reason: Optional[str], force: bool,
           names: tuple[str, ...] = ()) -> list[Choice]:
    """The failed files matching the filters, oldest failure first, each with its decision.

    ``since``: failed at or after (epoch s; the sidecar's finished_at, else the file's mtime);
    ``reason``: case-insensitive substring of an error, of the reason_kind or of ``HTTP <last
    status>``; ``names``: glob
    patterns matched against the path below failed/ or the bare name.
    """
    chosen = []
    for entry in view.entries("failed"):
        if names and not any(fnmatch.fnmatchcase(entry.path, p) or fnmatch.fnmatchcase(entry.name, p)
                             for p in names):
            continue
        if not entry.regular:      # a FIFO would block a read; a symlink leads out of failed/
            chosen.append(Choice(entry, None, entry.mtime, "skip",
                                 "not a regular file (a FIFO, symbolic link, folder or device); "
                                 "left where it is"))
            continue
        sidecar = view.read_sidecar("failed", entry.path)
        failed_at = timefmt.parse_iso((sidecar or {}).get("finished_at")) or entry.mtime
        if since is not None and failed_at < since:
            continue
        if reason and not _mentions(sidecar, reason):
            continue
        why = None if force else own_fault(sidecar)
        chosen.append(Choice(entry, sidecar, failed_at, "refuse" if why else "requeue", why))
    return sorted(chosen, key=lambda c: (c.failed_at, c.entry.path))


def _mentions(sidecar: Optional[dict], text: str) -> bool:
    if not sidecar:
        return False
    needle = text.lower()
    haystack = [str(e) for e in sidecar.get("errors") or []] + [str(sidecar.get("reason_kind") or "")]
    haystack.append(reasons.of_failed_sidecar(sidecar))
    if sidecar.get("http_status") is not None:
        haystack.append(f"HTTP {sidecar['http_status']}")
    return any(needle in h.lower() for h in haystack)


def requeue(view, journal, choice: Choice, *, forced: bool, clock=time.time) -> str:
    """Move one chosen file back into the inbox; its history goes to the journal first. With
    ordering on it keeps its drop time, and a key it holds (``on_failure: hold``) waits for it
    instead (flow/board.py: unhold).

    Returns the inbox path. Raises ClaimLost when the file vanished (someone else requeued
    or removed it) and StorageError when it cannot be read or moved.
    """
    entry = choice.entry
    sha = view.sha256(entry)
    history = _history(choice.sidecar, entry, clock(), forced)
    board = operator_board(view)
    dropped_at = timefmt.parse_iso((choice.sidecar or {}).get("dropped_at"))
    for name in _candidates(view.inbox_name(entry)):
        if view.inbox_has(name):
            continue
        replay_id = journal.remember_replay(name, sha, history)
        held = unhold(board, view.where("failed", entry.path), entry.path, name) if board else None
        try:
            dest = view.move_to_inbox(entry, name, dropped_at)
        except (FileExistsError, ClaimLost, StorageError, OSError) as exc:
            journal.forget_replay(replay_id)
            if held:
                held(False)
            if isinstance(exc, FileExistsError):   # someone dropped that name just now: the next
                continue
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot move back to the inbox ({exc.strerror})",
                               view.where("failed", entry.path)) from None
        if held:
            held(True)
        try:
            view.remove_sidecar(entry)
        except OSError:            # not a file (a folder by that name): not ours to remove
            pass
        return dest
    raise StorageError("no free name in the inbox", view.where("inbox"))  # pragma: no cover


def _history(sidecar: Optional[dict], entry: Entry, now: float, forced: bool) -> list[dict]:
    """The earlier sidecars, flat and oldest first, the latest one noting the replay."""
    latest: dict[str, Any]
    if sidecar is None:
        latest = {"status": "failed", "name": entry.name,
                  "errors": ["no sidecar was found beside the failed file"]}
        earlier: list = []
    else:
        latest = {k: v for k, v in sidecar.items() if k != "history"}
        earlier = [h for h in sidecar.get("history") or [] if isinstance(h, dict)]
    latest["replayed_at"] = timefmt.iso(now)
    latest["replayed_from"] = entry.path
    latest["replay_forced"] = forced
    return earlier + [latest]


def retry_failed(view, open_journal, emit, *, since: Optional[float], reason: Optional[str],
                 dry_run: bool, force: bool, names: tuple[str, ...] = ()) -> int:
    """The ``retry-failed`` command: choose, report each decision, move (unless ``dry_run``).

    ``open_journal()`` is called only when something is moved; ``emit(message, **fields)``
    prints one line. Returns the exit status: 0, or 1 when a chosen file could not be moved.
    Refusals are not errors.
    """
    choices = choose(view, since=since, reason=reason, force=force, names=names)
    journal = None
    counts = {"requeued": 0, "refused": 0, "skipped": 0, "vanished": 0, "errors": 0}
    for choice in choices:
        where = f"failed/{choice.entry.path}"
        if choice.action == "skip":
            counts["skipped"] += 1
            emit(f"skipped {where}: {choice.why}", action="skipped", file=where, reason=choice.why)
            continue
        if choice.action == "refuse":
            counts["refused"] += 1
            emit(f"refused {where}: {choice.why}; --force retries it anyway",
                 action="refused", file=where, reason=choice.why)
            continue
        if dry_run:
            counts["requeued"] += 1
            emit(f"would requeue {where}", action="would_requeue", file=where)
            continue
        journal = journal or open_journal()
        try:
            dest = requeue(view, journal, choice, forced=force)
        except ClaimLost:
            counts["vanished"] += 1
            emit(f"skipped {where}: it is no longer there", action="vanished", file=where)
            continue
        except StorageError as exc:
            counts["errors"] += 1
            emit(f"could not requeue {where}: {exc}", action="error", file=where, error=str(exc))
            continue
        counts["requeued"] += 1
        emit(f"requeued {where} -> {dest}", action="requeued", file=where, path=dest)
    emit(_summary(counts, dry_run, bool(choices)), action="summary", dry_run=dry_run, **counts)
    return 1 if counts["errors"] else 0


def _summary(counts: dict, dry_run: bool, matched: bool) -> str:
    verb = "would be requeued" if dry_run else "requeued"
    return (f"{counts['requeued']} {verb}, {counts['refused']} refused"
            + (f", {counts['skipped']} skipped (not regular files)" if counts["skipped"] else "")
            + (f", {counts['vanished']} gone meanwhile" if counts["vanished"] else "")
            + (f", {counts['errors']} could not be moved" if counts["errors"] else "")
            + ("" if matched else " (no failed file matched)"))
