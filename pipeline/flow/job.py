"""What the runner holds for each claimed file between steps (Job), and what a step returns (Step).

A Job lives in the runner from the claim to the file's outcome, across every step and retry, so
it is where a worker keeps what the journal could not take yet: Redox's answer to a SEND
(``answer``) and a decided outcome (``outcome``). A step that finds either finishes recording it
and never sends again (pipeline/flow/send.py).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from pipeline.errors import DeliveryError, TransientDelivery
from pipeline.flow.addressing import Routed
from pipeline.journal import Record
from pipeline.values import Claim, Message, Outcome, Sent

log = logging.getLogger("pipeline.work")


class Client(Protocol):
    """What the per-file stages need of the Redox client."""
    tokens: Any

    def send(self, body: bytes, departing: Optional[Callable[[], None]] = None,
             destinations: int = 0) -> Sent:
        """``departing()`` is called just before the request is written (after its turn at the
        rate limit and its connection); what it raises ends the SEND unsent."""
        ...


@dataclass(frozen=True)
class Answer:
    """How SEND ``n`` ended: ``sent`` (accepted) or ``error`` (refused, failed, or not an
    answer at all: see :func:`unexpected`)."""
    n: int
    sent: Optional[Sent] = None
    error: Optional[DeliveryError] = None


@dataclass
class Job:
    """A claimed file and what is known about it so far.

    ``answer``: a SEND's answer the journal does not hold yet (its write failed): the next step
    records it instead of sending. ``outcome``: the file's outcome, decided; only its finish is
    left (the journal may not know it yet either). ``last_error`` / ``last_reason``: the last
    transient failure as recorded and in our own words (only the latter is ever logged).
    """
    claim: Claim
    record: Optional[Record] = None
    message: Optional[Message] = None
    last_error: Optional[str] = None       # as recorded, Redox's texts and all (for the sidecar)
    last_reason: Optional[str] = None      # the same in our own words (logs, status): reasons.py
    answer: Optional[Answer] = None
    outcome: Optional[Outcome] = None
    route: Optional[Routed] = None         # its route and ordering key, once checked

    def held(self) -> Record:
        """The journal record (every stage after read + check has one)."""
        if self.record is None:
            raise RuntimeError("the file has no journal record yet")
        return self.record


@dataclass(frozen=True)
class Step:
    """What happened (``error``, when set, is in our own words: it is logged): ``finished``
    (status done|failed), ``retry`` (after ``delay`` s), ``auth``
    (credentials refused: stop), ``lost`` (the file vanished), ``released`` (not a regular
    file after all: put back in the inbox, where it is left alone), ``stuck`` (could not read it
    consistently or could not finish: try again later, the file stays claimed), ``wait``
    (ordering: an earlier file of its key goes first; ask again after ``delay`` s). ``storage``:
    a ``stuck`` because our own storage failed (a journal or finish write), which /healthz
    reports; a file still being written, or a bug, is stuck too but says nothing of storage."""
    kind: str
    status: Optional[str] = None
    delay: float = 0.0
    error: Optional[str] = None
    dest: Optional[str] = None
    unreachable: bool = False
    storage: bool = False


def unexpected(exc: BaseException, what: str, name: str) -> TransientDelivery:
    """An exception that is not an answer from Redox (a bug, a broken HTTP library) raised
    during a request (``what``: "SEND" or "upload") of the file ``name``, as a transient
    failure. Whether the request left is unknown, so Redox may have seen it, unless the
    exception says otherwise (a boolean ``maybe_seen``, as DeliveryError has).

    Its text is never kept or logged: it may quote a header, a token or the message. The log
    line names its class and, as its ``reason``, where it was raised.
    """
    said = getattr(exc, "maybe_seen", None)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None
    kind = type(exc).__name__
    log.error(f"unexpected error during the {what}; retried later, counted as an attempt",
              extra={"file": name, "error": kind, "reason": where})
    return TransientDelivery(f"unexpected {kind} during the {what} (not an answer from Redox)",
                             maybe_seen=said if isinstance(said, bool) else True)
