"""Failure reasons in our own words: what log lines, metrics, ``status`` and ``report`` say.

Redox's error texts (``Meta.Errors[].Text``, a gateway's plain-text or HTML error page, the
Platform API's messages) can echo the message they are about: a patient's name, a date of
birth. They stay with the file: in its sidecar's ``errors`` (the documented interface) and in
the journal, which sit in the protected folders with the message itself. Everything that
leaves those folders carries instead a *reason* built here from what we know ourselves:

- the kind of failure (``reason_kind``), the HTTP status, counts;
- sentences this code wrote: a DeliveryError's message (``str(exc)``: "Redox answered HTTP
  503", "could not connect to Redox (timed out)"; redox/client.py and redox/failures.py word
  them without quoting a reply), a RejectedFile's reason ("not valid JSON (line 3, column 7:
  Expecting value)", "unrouted"), "gave up after 5 attempts";
- where the texts are: "2 error texts in the sidecar".

A DeliveryError's ``errors`` are never read here except to count them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:
    from pipeline.errors import DeliveryError
    from pipeline.values import Outcome

# what each reason_kind means, for sidecars and journal rows written before ``reason`` existed
KIND_WORDS = {
    "invalid": "not a valid Redox message",
    "too_large": "too large to send",
    "not_a_file": "not a regular file",
    "unreadable": "the file could not be read",
    "unrouted": "no route matched the file",
    "permanent": "Redox refused it",
    "gave_up": "gave up on Redox",
}
# our own advice for statuses that usually mean configuration, not the message
_HINTS = {
    403: "check the destinations in config.yaml and the source's subscriptions",
    404: "check the destinations in config.yaml and the source's subscriptions",
    413: "over Redox's size limit",
}
_UPLOAD_HINTS = {
    403: "free development accounts cannot upload files",
    413: "the document is over Redox's upload limit",
}


def texts(n: int, where: str) -> str:
    """``1 error text in the sidecar``, ``3 error texts kept with the file``."""
    return f"{n} error text{'' if n == 1 else 's'} {where}"


def reply_texts(exc: DeliveryError) -> int:
    """How many texts ``exc`` carries besides its own message (Redox's, or our notes beside
    them): they are kept with the file, never shown elsewhere."""
    message = str(exc)
    return sum(1 for text in exc.errors if text != message)


def attempt(exc: DeliveryError) -> str:
    """One failed request, for its log line, the retry's log line and ``status``: our sentence,
    and how many texts of the reply are kept with the file (journal, later the sidecar)."""
    n = reply_texts(exc)
    return f"{exc}; {texts(n, 'kept with the file')}" if n else str(exc)


def refused(exc: DeliveryError, *, upload: bool = False) -> str:
    """A permanent refusal, as the outcome's reason: ``Redox refused the message (HTTP 400, 2
    error texts in the sidecar)``."""
    what = "a document upload" if upload else "the message"
    parts = [f"HTTP {exc.status}"] if exc.status else []
    hint = (_UPLOAD_HINTS if upload else _HINTS).get(exc.status or 0)
    if hint:
        parts.append(hint)
    n = len(exc.errors)
    if n:
        parts.append(texts(n, "in the sidecar"))
    return f"Redox refused {what}" + (f" ({', '.join(parts)})" if parts else "")


def gave_up(attempts: int, what: str, last: Optional[str]) -> str:
    """``gave up after 5 attempts; the last: Redox answered HTTP 503``."""
    return f"gave up after {attempts} {what}" + (f"; the last: {last}" if last else "")


def fallback(kind: Optional[str], status: Optional[int] = None, errors: int = 0) -> str:
    """A reason for a failure recorded without one (a sidecar written before ``reason``
    existed, a journal row): from its kind, HTTP status and how many error texts it has,
    never from the texts themselves."""
    words = KIND_WORDS.get(kind or "", kind or "failed")
    parts = [f"HTTP {status}"] if isinstance(status, int) and not isinstance(status, bool) else []
    if errors:
        parts.append(texts(errors, "in the sidecar"))
    return f"{words} ({', '.join(parts)})" if parts else words


def of_outcome(outcome: Outcome) -> Optional[str]:
    """The reason of a finished file: its own, else the fallback (failed only)."""
    if outcome.reason:
        return outcome.reason
    if outcome.status != "failed":
        return None
    return fallback(outcome.reason_kind, outcome.http_status, len(outcome.errors))


def of_sidecar(car: dict) -> Optional[str]:
    """A sidecar's reason: its ``reason``, else (a failed one) :func:`of_failed_sidecar`."""
    reason = car.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    return of_failed_sidecar(car) if car.get("status") == "failed" else None


def of_failed_sidecar(car: dict) -> str:
    """What ``status``, ``report`` and ``retry-failed`` show of a sidecar in failed/: its
    ``reason``, else one built from ``reason_kind`` and ``http_status`` (never its ``errors``)."""
    reason = car.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    kind = car.get("reason_kind")
    return fallback(kind if isinstance(kind, str) else None, car.get("http_status"), error_count(car))


def error_count(car: dict) -> int:
    """How many error texts a sidecar keeps."""
    errors = car.get("errors")
    return len(errors) if isinstance(errors, list) else 0


def last_attempt(attempts: Iterable[dict]) -> Optional[str]:
    """The latest failed attempt of a file, from its journal rows (``kind``, ``status``,
    ``result``, ``maybe_seen``), for a retry shown by ``status`` or a give-up after a restart:
    ``HTTP 503 from Redox (SEND 2)``, ``no answer from Redox (upload 1; it may have arrived)``."""
    failed = [a for a in attempts if a.get("result") in ("transient", "permanent")]
    if not failed:
        return None
    a = failed[-1]
    what = "SEND" if a.get("kind") == "send" else str(a.get("kind") or "request")
    n = a.get("n")
    which = f"{what} {n}" if isinstance(n, int) else what
    status = a.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return f"HTTP {status} from Redox ({which})"
    seen = "; it may have arrived" if a.get("maybe_seen") else ""
    return f"no answer from Redox ({which}{seen})"
