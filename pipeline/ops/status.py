"""status: what is waiting, in flight, done and failed, and whether Redox lets us in.

``collect()`` builds one JSON-able object from the folders (through the folders seam), the
journal (retries) and a short token request; ``render()`` turns it into text. Only names,
counts, times, statuses and reasons appear: never message content, never the token, never
Redox's error texts (they may quote the message): a failure is shown by its ``reason`` in our
own words (pipeline/reasons.py) and the path of the sidecar that holds the texts. Every
character ``render()`` prints is visible (pipeline/terminal.py): a file name with an ESC, a
newline or a bidi override is shown escaped.

Other features add their own part of the picture through :data:`SECTIONS` (e.g. delivery
confirmation's counts): each provider gets the settings and returns a JSON-able dict (or None
to stay silent); it appears under ``sections.<name>`` in ``--json`` and as its own block in text.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from pipeline import reasons, timefmt
from pipeline.errors import AuthError, ConfigError, StorageError, TransientDelivery
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.view import FOLDERS, age
from pipeline.terminal import visible

SECTIONS: dict[str, Callable[[object], Optional[dict]]] = {}
AUTH_TIMEOUT_SECONDS = 5.0
PROBLEMS_SHOWN = 10


def delivery_section(settings) -> Optional[dict]:
    """Delivery confirmation's counts per Log ID (docs/delivery.md), when it is enabled: the
    counts, ``unchecked``, and the oldest failed or given-up deliveries (at most 10)."""
    if not settings.delivery_check.enabled:
        return None
    from pipeline.delivery.records import delivery_summary
    try:
        summary = delivery_summary(settings)
    except StorageError as exc:
        return {"error": f"the journal cannot be read ({exc})"}
    summary["problems_total"] = len(summary["problems"])
    summary["problems"] = [_safe_problem(p) for p in summary["problems"][:PROBLEMS_SHOWN]]
    return summary


def _safe_problem(problem: dict) -> dict:
    """A failed or given-up delivery without the Platform API's text (``error``), which the
    sidecar's ``delivery`` entry and the journal keep."""
    shown = {k: v for k, v in problem.items() if k != "error"}
    if problem.get("error"):
        shown["reason"] = "the last look-up gave no status (why: the sidecar's delivery entry)"
    return shown


SECTIONS["delivery"] = delivery_section


def collect(settings, view, *, probe: Optional[Callable[[], dict]], errors: int = 5,
            now: Optional[float] = None) -> dict:
    """The status object. ``probe`` checks Redox auth (None: not checked)."""
    now = time.time() if now is None else now
    inbox = list(view.entries("inbox"))
    processing = list(view.entries("processing"))
    failed = {e.path for e in view.entries("failed")}
    doc: dict = {
        "inbox": len(inbox),
        "processing": len(processing),
        "done": sum(1 for _ in view.entries("done")),
        "failed": len(failed),
        "oldest_waiting": _oldest(inbox, now),
        "retries": [],
        "routes": [],
        "held": held_keys(view),
        "last_errors": last_errors(view, errors, failed),
        "auth": probe() if probe else {"state": "not_checked"},
        "journal": "missing",
        "sections": {},
        "config": settings.config_path,
        "checked_at": timefmt.iso(now),
    }
    doc["journal"], doc["retries"], doc["routes"] = _retries(settings.state.path, view, inbox,
                                                             processing, now)
    for name, provider in SECTIONS.items():
        section = provider(settings)
        if section is not None:
            doc["sections"][name] = section
    return doc


def _oldest(inbox: list, now: float) -> Optional[dict]:
    if not inbox:
        return None
    oldest = min(inbox, key=lambda e: e.mtime)
    return {"file": oldest.path, "age_seconds": round(age(oldest.mtime, now), 3),
            "since": timefmt.iso(oldest.mtime)}


def last_errors(view, limit: int, present: set[str]) -> list[dict]:
    """The most recent failures (by when their sidecar was written) whose file is still in
    failed/ (``present``): file, when, kind, status, the reason in our own words (sidecars
    written before ``reason`` existed: one built from kind and status) and where the sidecar
    is; never its ``errors``. A sidecar left without its file (a replay interrupted between its
    two steps) is not a current failure."""
    cars = [e for e in view.sidecars("failed") if e.path[: -len(SIDECAR_SUFFIX)] in present]
    newest = sorted(cars, key=lambda e: e.mtime, reverse=True)[:max(0, limit)]
    found = []
    for entry in newest:
        car = view.read_sidecar("failed", entry.path) or {}
        found.append({"file": entry.path[: -len(SIDECAR_SUFFIX)],
                      "failed_at": car.get("finished_at") or timefmt.iso(entry.mtime),
                      "reason_kind": car.get("reason_kind"), "http_status": car.get("http_status"),
                      "reason": reasons.of_failed_sidecar(car),
                      "error_texts": reasons.error_count(car),
                      "sidecar": view.where("failed", entry.path)})
    return found


def held_keys(view) -> list[dict]:
    """With ordering.on_failure hold: each key held by a failed file (a short keyed hash of the
    key, never the key), the file, why it failed, since when, and how many later files of the
    key are claimed and waiting (files still in the inbox have not been read: not counted)."""
    from pipeline.flow.board import operator_board
    board = operator_board(view)
    if board is None:
        return []
    held = []
    for key, item, info in board.held():
        where = info.get("failed") or info.get("name")
        held.append({"key": key[:12], "file": where, "reason_kind": info.get("reason"),
                     "since": timefmt.iso(item.mtime),
                     "waiting": sum(1 for e in board.entries(key).values() if e.place != item.place)})
    return sorted(held, key=lambda h: h["since"] or "")


def _retries(path: str, view, inbox: list, processing: list, now: float) -> tuple[str, list, list]:
    """Files with a retry scheduled in the journal that are still where the journal says:
    ``released`` (back in the inbox, untouched until due) or ``waiting`` (held by a service),
    each with its last failure in our own words (from the attempt's kind, status and whether
    it may have arrived; the journal keeps what Redox said); and the journal's outcomes by
    route."""
    from pipeline.journal import read_existing
    with read_existing(path) as (state, journal):
        if journal is None:
            return state, [], []
        present = {"released": {e.path for e in inbox},
                   "waiting": {view.claimed_name(e) for e in processing}}
        retries = []
        for record in journal.scheduled_retries():
            if record.name not in present[record.state] or record.next_retry_at is None:
                continue             # handled or removed since: the row is history
            retries.append({"file": record.name, "state": record.state, "attempts": record.attempts,
                            "next_retry_at": timefmt.iso(record.next_retry_at),
                            "due_in_seconds": round(max(0.0, record.next_retry_at - now), 3),
                            "last_error": reasons.last_attempt(journal.attempts_of(record.claim_id))})
        routes = [{"route": name, **counts} for name, counts in sorted(journal.outcomes_by_route().items())]
        return "ok", retries, routes


def probe_auth(settings, timeout: float = AUTH_TIMEOUT_SECONDS) -> dict:
    """Ask Redox for a token (short timeouts): ok | refused | unreachable | error, with a
    sentence (refused: ``cause`` credentials, or unusable_reply when the token endpoint
    answered with something that is not a usable token). Never raises: ``status`` reports the
    auth state, it does not fail because of it. The token itself is never returned or printed."""
    from pipeline.app import tls_verify
    from pipeline.redox.auth import make_tokens
    from pipeline.redox.tokenreply import UnusableTokenReply
    from pipeline.redox.transport import Transport
    redox = settings.redox
    url = redox.token_url
    try:
        transport = Transport(timeout, timeout, tls_verify(settings), pool_size=1)
    except ConfigError as exc:
        return {"state": "error", "detail": "; ".join(exc.problems)}
    try:
        make_tokens(redox.auth, url, redox.base_url, transport).token()
    except UnusableTokenReply as exc:
        # no token either way; ``cause`` tells the operator that rotating the key would not help
        return {"state": "refused", "cause": "unusable_reply",
                "detail": f"{exc}; the reply is at fault, not the credentials ({url})"}
    except AuthError as exc:
        return {"state": "refused", "cause": "credentials", "detail": f"{exc} ({url})"}
    except TransientDelivery as exc:
        return {"state": "unreachable", "detail": f"{'; '.join(exc.errors)} ({url})"}
    except ConfigError as exc:
        return {"state": "error", "detail": "; ".join(exc.problems)}
    except Exception as exc:  # noqa: BLE001 - a probe reports, whatever went wrong
        return {"state": "error", "detail": f"the token request failed unexpectedly "
                                            f"({type(exc).__name__}; {url})"}
    finally:
        transport.close()
    return {"state": "ok", "detail": f"a token was issued by {url}"}


def render(doc: dict) -> str:
    """The status object as text for a terminal: one line per entry, every character of it
    visible (a newline or ESC in a file name is escaped, never printed)."""
    lines = [f"redox-pipeline status at {doc['checked_at']} (config {doc['config']})"]
    oldest = doc["oldest_waiting"]
    for folder in FOLDERS:
        line = f"  {folder:<11}{doc[folder]:>7}"
        if folder == "inbox" and oldest:
            line += f"   oldest waiting: {oldest['file']}, {timefmt.duration(oldest['age_seconds'])}"
        lines.append(line)
    auth = doc["auth"]
    lines.append(f"Redox auth: {auth['state'].replace('_', ' ')}"
                 + (f" ({auth['detail']})" if auth.get("detail") else ""))
    if doc["journal"] == "missing":
        lines.append("journal: none yet (nothing has been run with this config)")
    elif doc["journal"] != "ok":
        lines.append(f"journal: {doc['journal']}")
    lines.append(f"Waiting for a retry: {len(doc['retries']) or 'none'}")
    for r in doc["retries"]:
        lines.append(f"  {r['file']}  after {r['attempts']} attempt(s), due in "
                     f"{timefmt.duration(r['due_in_seconds'])} ({r['next_retry_at']})"
                     + (f"  last error: {r['last_error']}" if r["last_error"] else ""))
    if doc["routes"]:
        lines.append("Outcomes by route (this machine's journal): " + ", ".join(
            f"{r['route']} {r['done']} done/{r['failed']} failed" for r in doc["routes"]))
    if doc["held"]:
        lines.append(f"Held keys (ordering.on_failure hold): {len(doc['held'])}")
    for h in doc["held"]:
        lines.append(f"  key {h['key']}…  held by {h['file']} ({h['reason_kind'] or '?'}) since "
                     f"{h['since']}; {h['waiting']} later file(s) of it claimed and waiting; "
                     "retry-failed it, or remove it, to release them")
    lines.append(f"Last errors: {len(doc['last_errors']) or 'none'}")
    for e in doc["last_errors"]:
        kind = e["reason_kind"] or "?"
        lines.append(f"  {e['failed_at']}  {e['file']}  {kind}: {e['reason'] or '-'}")
    for name, section in doc["sections"].items():
        lines.append(f"{name}:")
        lines += _section_lines(section)
    return "\n".join(visible(line) for line in lines)


def _section_lines(section: dict) -> list[str]:
    """Scalars on one line (``delivered 12, failed 1, ...``), each list item on its own."""
    scalars = [f"{k} {v}" for k, v in section.items() if not isinstance(v, (list, dict))]
    lines = [f"  {', '.join(scalars)}"] if scalars else []
    for key, value in section.items():
        if isinstance(value, list):
            for item in value:
                text = (" ".join(f"{k}={v}" for k, v in item.items() if v not in (None, "", []))
                        if isinstance(item, dict) else str(item))
                lines.append(f"  {key}: {text}")
        elif isinstance(value, dict):
            lines.append(f"  {key}: " + " ".join(f"{k}={v}" for k, v in value.items()))
    return lines
