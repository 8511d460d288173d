"""report: the audit summary, from the output folders and the journal.

Every outcome is counted once, by its ``claim_id``: first the sidecars in done/ and failed/,
then the earlier failures kept inside them as ``history`` (files put back by retry-failed),
then finished journal rows whose files are no longer in the folders (moved on downstream).
Days are UTC days of the moment the file finished. ``--since`` keeps outcomes finished at or
after it (sidecars written before it are not even opened).

Only names, counts, times, DataModels and reasons are reported: never message content, never
Redox's error texts (they may quote the message). A failure counts under its ``reason``, in our
own words (pipeline/reasons.py); for sidecars written before that field existed, and journal
rows, one is built from ``reason_kind`` and ``http_status``, never from ``errors``. Every
character the text tables print is visible (pipeline/terminal.py).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from pipeline import reasons, timefmt
from pipeline.terminal import visible

UNKNOWN_MODEL = "(not read)"     # rejected before its Meta could be read
NOT_ROUTED = "(not routed)"      # finished before a route was chosen (rejected, a duplicate)


@dataclass(frozen=True)
class Row:
    """One outcome: a file that ended done or failed once."""
    key: str
    file: str
    status: str
    finished_at: float
    dropped_at: Optional[float]
    data_model: str
    reason_kind: Optional[str]
    reason: Optional[str]
    origin: str                  # sidecar | history | journal
    route: str = NOT_ROUTED      # the route's name, "default", or "unrouted"


def gather(view, journal_path: str, since: Optional[float]) -> tuple[list[Row], str]:
    """Every outcome finished at or after ``since`` (None: all), each once; and the state of
    the journal (``ok``, ``missing`` or why it could not be read)."""
    rows: dict[str, Row] = {}
    for folder in ("done", "failed"):
        for entry in view.sidecars(folder):
            if since is not None and entry.mtime < since:
                continue               # written before `since`, so finished before it too
            car = view.read_sidecar(folder, entry.path)
            if not car:
                continue
            file = entry.path[: -len(".redox.json")]
            _add(rows, _from_sidecar(car, f"{folder}/{file}", "sidecar", entry.mtime), since)
            for old in car.get("history") or []:
                if isinstance(old, dict):
                    _add(rows, _from_sidecar(old, old.get("replayed_from") or old.get("name") or file,
                                             "history", None), since)
    journal_state, found = _journal_rows(journal_path, since)
    for row in found:
        _add(rows, row, since)
    return sorted(rows.values(), key=lambda r: (r.finished_at, r.file)), journal_state


def _add(rows: dict, row: Optional[Row], since: Optional[float]) -> None:
    if row is None or row.key in rows:
        return
    if since is None or row.finished_at >= since:
        rows[row.key] = row


def _from_sidecar(car: dict, file: str, origin: str, fallback: Optional[float]) -> Optional[Row]:
    status = car.get("status")
    finished = timefmt.parse_iso(car.get("finished_at")) or fallback
    if status not in ("done", "failed") or finished is None:
        return None
    return Row(key=car.get("claim_id") or f"{origin}:{file}:{finished}", file=file, status=status,
               finished_at=finished, dropped_at=timefmt.parse_iso(car.get("dropped_at")),
               data_model=str(car.get("data_model") or UNKNOWN_MODEL),
               reason_kind=car.get("reason_kind") if status == "failed" else None,
               reason=reasons.of_sidecar(car) if status == "failed" else None, origin=origin,
               route=_route(car.get("route"), car.get("reason_kind")))


def _route(name, reason_kind) -> str:
    if isinstance(name, str) and name:
        return name
    return "unrouted" if reason_kind == "unrouted" else NOT_ROUTED


def _journal_rows(path: str, since: Optional[float]) -> tuple[str, list[Row]]:
    from pipeline.journal import read_existing
    with read_existing(path) as (state, journal):
        if journal is None:
            return state, []
        found = journal.finished_since(since if since is not None else 0)
    rows = []
    for r in found:
        failed = r.state == "failed"
        rows.append(Row(key=r.claim_id, file=os.path.basename(r.dest or r.name),
                        status=r.state, finished_at=r.finished_at, dropped_at=r.dropped_at,
                        data_model=r.data_model or UNKNOWN_MODEL,
                        reason_kind=r.reason_kind if failed else None,
                        reason=reasons.fallback(r.reason_kind, r.http_status, len(r.errors))
                        if failed else None, origin="journal",
                        route=_route(r.route, r.reason_kind)))
    return "ok", rows


def summarize(rows: list[Row], *, since: Optional[float], config: str, journal: str = "ok",
              delivery: Optional[dict] = None, now: Optional[float] = None) -> dict:
    """The report as one JSON-able object (``journal``: what :func:`gather` said of it;
    ``delivery``: delivery confirmation's summary for the same period, when enabled)."""
    now = time.time() if now is None else now
    days: dict[str, Counter] = defaultdict(Counter)
    models: dict[str, Counter] = defaultdict(Counter)
    routes: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        days[timefmt.day(row.finished_at)][row.status] += 1
        models[row.data_model][row.status] += 1
        routes[row.route][row.status] += 1
    return {
        "generated_at": timefmt.iso(now),
        "since": timefmt.iso(since),
        "config": config,
        "totals": {"done": sum(r.status == "done" for r in rows),
                   "failed": sum(r.status == "failed" for r in rows)},
        "days": [{"day": d, "done": days[d]["done"], "failed": days[d]["failed"]}
                 for d in _day_range(days)],
        "data_models": [{"data_model": m, "done": c["done"], "failed": c["failed"]}
                        for m, c in sorted(models.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))],
        "routes": [{"route": r, "done": c["done"], "failed": c["failed"]}
                   for r, c in sorted(routes.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))],
        "drop_to_done": _latency(rows),
        "reasons": _reasons(rows),
        "sources": dict(Counter(r.origin for r in rows)),
        "journal": journal,
        "delivery": delivery,
    }


def _day_range(days: dict) -> list[str]:
    """Every day from the first to the last with an outcome (gaps as zero rows)."""
    if not days:
        return []
    first, last = (datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=timezone.utc)
                   for d in (min(days), max(days)))
    return [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((last - first).days + 1)]


def _latency(rows: list[Row]) -> dict:
    timed = [(r.finished_at - r.dropped_at, r.file) for r in rows
             if r.status == "done" and r.dropped_at is not None]
    if not timed:
        return {"count": 0, "median_seconds": None, "worst_seconds": None, "worst_file": None}
    worst = max(timed)
    return {"count": len(timed), "median_seconds": round(statistics.median(t for t, _ in timed), 3),
            "worst_seconds": round(max(0.0, worst[0]), 3), "worst_file": worst[1]}


def _reasons(rows: list[Row]) -> list[dict]:
    ranked = Counter((r.reason_kind or "unknown", r.reason or "(no reason recorded)")
                     for r in rows if r.status == "failed")
    return [{"count": n, "reason_kind": kind, "reason": reason}
            for (kind, reason), n in sorted(ranked.items(), key=lambda kv: (-kv[1], kv[0]))]


def render(doc: dict) -> str:
    """The report as terminal tables, every character visible (names and reasons escaped)."""
    since = f" since {doc['since']}" if doc["since"] else ""
    t = doc["totals"]
    out = [f"redox-pipeline report{since} (generated {doc['generated_at']}, days in UTC)",
           f"total: {t['done']} done, {t['failed']} failed", ""]
    if doc["journal"] not in ("ok", "missing"):
        out[1:1] = [f"journal {doc['journal']}: outcomes known only to it are missing"]
    out += _table(["day", "done", "failed"], [[d["day"], d["done"], d["failed"]] for d in doc["days"]],
                  "no file finished in this period")
    if doc["data_models"]:
        out.append("")
        out += _table(["DataModel", "done", "failed"],
                      [[m["data_model"], m["done"], m["failed"]] for m in doc["data_models"]], None)
    if doc.get("routes"):
        out.append("")
        out += _table(["route", "done", "failed"],
                      [[r["route"], r["done"], r["failed"]] for r in doc["routes"]], None)
    lat = doc["drop_to_done"]
    out += ["", f"time from drop to done ({lat['count']} files): median "
                f"{timefmt.duration(lat['median_seconds'])}, worst {timefmt.duration(lat['worst_seconds'])}"
                + (f" ({lat['worst_file']})" if lat["worst_file"] else ""), ""]
    out += _table(["count", "kind", "failure reason"],
                  [[r["count"], r["reason_kind"], r["reason"]] for r in doc["reasons"]],
                  "failure reasons: none")
    if doc.get("delivery"):
        out += ["", "delivery confirmation (per Log ID): " + delivery_line(doc["delivery"])]
    return "\n".join(visible(line) for line in out)


def delivery_line(summary: dict) -> str:
    keys = ("delivered", "filtered", "failed", "gave_up", "pending", "unchecked")
    return ", ".join(f"{summary.get(k, 0)} {k.replace('_', ' ')}" for k in keys)


def _table(header: list[str], rows: list[list], empty: Optional[str]) -> list[str]:
    """Aligned columns (numbers to the right); ``empty`` instead when there are no rows."""
    if not rows:
        return [empty] if empty else []
    cells = [[visible(c) for c in row] for row in [header] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(str(row[i]).isdigit() for row in rows) for i in range(len(header))]

    def line(row):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(row, widths, numeric)).rstrip()
    return [line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]]
