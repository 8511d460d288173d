"""addressing: where a claimed file goes (routes) and when it may go (ordering), for FileWork.

FileWork asks this module, at fixed points of a file's path:

- ``picker(job)``: the per-file Meta.Destinations chooser handed to message.check and to the
  Transferring Files path (through flow/check.py's Judge, which checks the schema first). It
  is called with the checked message, records the decision on ``job.route`` and, with
  ordering on, registers the file under its key; a file no route matches fails as
  ``unrouted`` there and is never sent;
- ``gate(job)``: just before an attempt: None (go), or a :class:`Wait` while an earlier file of
  its key must go first (ordering.py);
- ``before_finish`` / ``after_finish`` / ``lost``: the file's place in its key's sequence ends
  (or, with ``on_failure: hold``, is kept while it sits in failed/);
- ``described(job)`` / ``sidecar_fields(job)``: what the journal and the sidecar record (the
  route's name and the destinations), also for a file finished after a restart without being
  read again (from the journal).

Nothing here logs message content; an ordering key is only ever shown as a short keyed hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from pipeline.config.routing import UNROUTED
from pipeline.errors import RejectedFile
from pipeline.flow.routes import Choice, Router


@dataclass
class Routed:
    """What is known about one claimed file's way: its route (None: unrouted) and, with
    ordering on, its key (a keyed hash; None: not ordered) and its place in the sequence."""
    choice: Optional[Choice]
    key: Optional[str] = None
    sending: bool = False             # its key is ours: it was cleared to send (sticky)
    blocked_since: Optional[float] = None
    waiting_for: Optional[str] = None  # parked: "mark" | "key" | "hold" (parking.py)
    registered: bool = True           # False: the board could not be written when it was read


@dataclass(frozen=True)
class Wait:
    """Not yet: ask again in ``delay`` seconds (``reason`` for logs and status)."""
    delay: float
    reason: str


class Addressing:
    """Routes (always) and ordering (``sequencer``, None when ``ordering.by`` is none)."""

    def __init__(self, router: Router, sequencer=None):
        self.router, self.sequencer = router, sequencer

    @classmethod
    def fixed(cls, destinations) -> "Addressing":
        """Every file to ``destinations`` (config models or dicts), nothing ordered."""
        return cls(Router((), [d if isinstance(d, dict) else d.model_dump() for d in destinations]))

    # -- routes ----------------------------------------------------------------------------
    def picker(self, job) -> Callable[[dict], list[dict]]:
        """The destinations chooser for ``job`` (see the module docstring)."""
        def pick(doc: dict) -> list[dict]:
            meta = doc["Meta"]
            choice = self.router.pick(meta["DataModel"], meta["EventType"], job.claim.name)
            route = Routed(choice)
            if job.route is not None:              # asked again (a transfer retried): same place
                route.sending, route.blocked_since = job.route.sending, job.route.blocked_since
                route.waiting_for = job.route.waiting_for
            if self.sequencer is not None:     # never raises: the gate retries a failed write
                route.key = self.sequencer.key_of(doc, job.claim.name)
                route.registered = self.sequencer.keyed(job.claim, route.key)
            job.route = route
            if choice is None:
                raise RejectedFile(f"no route matches this file (DataModel {meta['DataModel']}, "
                                   f"EventType {meta['EventType']}) and destinations is empty",
                                   UNROUTED)
            return [dict(d) for d in choice.destinations]
        return pick

    def described(self, job) -> tuple:
        """What the journal records with a SEND: (data model, event type, route, destinations)."""
        message, route = job.message, job.route
        if route is None or route.choice is None:
            return (message.data_model, message.event_type)
        return (message.data_model, message.event_type, route.choice.name,
                [dict(d) for d in route.choice.destinations])

    def sidecar_fields(self, job) -> dict:
        """``route`` and ``destinations`` for the sidecar: from this run's decision, else
        from the journal (a file Redox accepted before a restart is not read again)."""
        route, record = job.route, job.record
        if route is not None:
            if route.choice is None:
                return {"route": None, "destinations": []}
            return {"route": route.choice.name,
                    "destinations": [dict(d) for d in route.choice.destinations]}
        if record is not None and record.route is not None:
            return {"route": record.route, "destinations": list(record.destinations or [])}
        return {"route": None, "destinations": []}

    # -- ordering --------------------------------------------------------------------------
    def gate(self, job) -> Optional[Wait]:
        """None when ``job`` may be sent now; a Wait while an earlier file of its key goes first."""
        if self.sequencer is None:
            return None
        return self.sequencer.gate(job)

    def before_finish(self, job, outcome) -> None:
        """``outcome`` is decided and the move follows: with ``hold``, a failure holds its key
        from this moment (so no kill between the move and the next call lets later files by)."""
        if self.sequencer is not None:
            self.sequencer.before_finish(job, outcome)

    def after_finish(self, job, outcome, dest: str) -> None:
        """The file is in done/ or failed/ (``dest``): its place in the sequence ends or is held."""
        if self.sequencer is not None:
            self.sequencer.after_finish(job, outcome, dest)

    def lost(self, job) -> None:
        """The claimed file vanished, or went back to the inbox to be left alone: its place in
        the sequence ends."""
        if self.sequencer is not None:
            self.sequencer.lost(job)
