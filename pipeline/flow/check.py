"""check: the judgement of a file before anything is sent, shared by ``run`` and ``check``.

What ``run`` decides about a claimed file before its first request, in this order:

1. **its size on disk** (route.py): up to ``redox.send_limit_bytes`` it is read whole; a larger
   file is never read whole, and only the Transferring Files path can take it;
2. **JSON and Meta** (message.py): a JSON object whose Meta.DataModel/EventType are names;
3. **the schema** (``validation``, pipeline/validation): the parsed message is checked against
   the schema of its DataModel/EventType; a mismatch fails it (``invalid``, each problem as
   ``<JSON path>: <rule>``), a missing schema sends it unchecked or fails it (``no_schema``);
4. **the destinations** (routes.py, addressing.py): the first route that matches, else
   ``destinations``; none at all fails it (``unrouted``);
5. **the size of the body** with Meta.Destinations written in (route.py): SEND, or
6. **the Transferring Files path** (redox/transfer/documents.py): the documents it would
   upload (field, decoded size), or why it cannot travel (``too_large``, ``invalid``).

Steps 3 and 4 are one :class:`Screen`: the destinations chooser that message.check and
documents.plan already call once with the parsed message (after step 2, before any request),
so the message is parsed once, and a large message is checked with its documents in place
(their text is read only when the schema has a rule on it: validation/textpaths.py).

FileWork (work.py, transfer_step.py) makes its decision with :class:`Judge`; the ``check``
command (ops/check.py) calls :func:`judge_file`, which takes the same steps with the same
Judge and touches nothing: no journal, no claim, no request. What only ``run`` can know is
left out: whether the bytes were delivered before (``dedupe``), and Redox's own answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, ContextManager, Optional

from pipeline import message as message_stage
from pipeline.errors import RejectedFile
from pipeline.flow.route import Decision, route
from pipeline.redox.transfer import documents
from pipeline.values import Message

if TYPE_CHECKING:
    from pipeline.validation import Gate


def rejection_errors(exc: RejectedFile) -> tuple[str, ...]:
    """The sidecar's ``errors`` for a rejected file: its reason, or for a message that does not
    match its schema (validation.SchemaMismatch) the schema's name, then each problem."""
    lines = getattr(exc, "errors", None)
    return tuple(lines) if lines else (exc.reason,)


class Screen:
    """A file's destinations chooser with the schema check in front of it.

    Called with the parsed message (Meta already checked): checks it against its schema
    (raises RejectedFile: SchemaMismatch, or kind ``no_schema``), then returns what ``choose``
    (a list, or a chooser such as Addressing.picker's) picks, which may raise too (``unrouted``).
    Remembers what it learnt, for ``check``'s report. ``wants_text`` tells documents.plan whether
    the schema reads the text of a document at a path, so that the text is put in place.
    """

    __slots__ = ("gate", "choose", "data_model", "event_type", "schema", "destinations")

    def __init__(self, gate: Optional[Gate], choose: message_stage.Destinations):
        self.gate, self.choose = gate, choose
        self.data_model: Optional[str] = None
        self.event_type: Optional[str] = None
        self.schema: Optional[str] = None       # the schema file it is checked against (None: none)
        self.destinations: Optional[list[dict]] = None

    def __call__(self, doc: dict) -> list[dict]:
        meta = doc["Meta"]
        data_model = self.data_model = meta["DataModel"]
        event_type = self.event_type = meta["EventType"]
        gate = self.gate
        if gate is not None:
            found = gate.schemas.find(data_model, event_type)
            self.schema = found.name if found is not None else None
            gate.check(doc, data_model, event_type)
        self.destinations = [dict(d) for d in message_stage.chosen(doc, self.choose)]
        return self.destinations

    def wants_text(self, data_model: str, event_type: str, path: tuple) -> bool:
        return self.gate is not None and self.gate.schemas.reads_text(data_model, event_type, path)


class Judge:
    """The decisions of steps 1 to 6 for one configuration; shared by every worker thread."""

    def __init__(self, send_limit: int, can_transfer: bool, gate: Optional[Gate] = None):
        self.send_limit, self.can_transfer, self.gate = send_limit, can_transfer, gate

    def screen(self, choose: message_stage.Destinations) -> Screen:
        return Screen(self.gate, choose)

    def by_file_size(self, size: int) -> Decision:
        """Step 1: "send" (read it whole and go on), "transfer" (never read whole) or "reject"."""
        return route(size, self.send_limit, self.can_transfer, measured="file")

    def message(self, raw: bytes, choose: message_stage.Destinations,
                screen: Optional[Screen] = None) -> tuple[Message, Decision]:
        """Steps 2 to 5 for a file read whole: the message to SEND (Meta.Destinations set) and
        how it travels ("send", "transfer" or "reject" by the body's size). Raises
        RejectedFile (steps 2 to 4)."""
        checked = message_stage.check(raw, screen or self.screen(choose))
        return checked, route(len(checked.body), self.send_limit, self.can_transfer)

    def plan(self, handle: BinaryIO, size: int, upload_limit: int,
             screen: Screen) -> documents.Plan:
        """Step 6 as Transfer.prepare takes it, without uploading: raises RejectedFile."""
        return documents.plan(handle, size, self.send_limit, upload_limit, screen)


# -- check: a whole verdict, nothing touched -----------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """A document the Transferring Files path would upload."""
    field: str
    size: int            # decoded bytes


@dataclass(frozen=True)
class Verdict:
    """What ``run`` would do with a file. ``action``: "send" (one SEND), "transfer" (upload
    ``documents``, then SEND the small message) or "reject" (failed/, never sent)."""
    action: str
    data_model: Optional[str] = None
    event_type: Optional[str] = None
    schema: Optional[str] = None         # the schema it was checked against; None: none
    route: Optional[str] = None          # the route's name ("default": destinations)
    destinations: tuple[dict, ...] = ()
    documents: tuple[Planned, ...] = ()
    reason_kind: Optional[str] = None
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.action != "reject"


def judge_file(judge: Judge, opener: Callable[[], ContextManager[BinaryIO]], size: int,
               choose: message_stage.Destinations, upload_limit: int,
               route_name: Callable[[], Optional[str]] = lambda: None) -> Verdict:
    """The verdict on the file that ``opener`` opens (``size`` bytes), as FileWork would reach
    it: work.py's _prepare/_route, then transfer_step's plan. ``choose`` picks destinations
    (and may raise ``unrouted``); ``route_name`` says which route it picked. Reads the file,
    nothing else."""
    screen = judge.screen(choose)

    def verdict(action: str, **more: Any) -> Verdict:
        return Verdict(action, screen.data_model, screen.event_type, schema=screen.schema,
                       route=route_name(), destinations=tuple(screen.destinations or ()), **more)
    try:
        decision = judge.by_file_size(size)
        if decision.action == "send":
            with opener() as handle:
                raw = handle.read()
            _, decision = judge.message(raw, choose, screen)
        if decision.action == "send":
            return verdict("send")
        if decision.action == "reject":
            return verdict("reject", reason_kind=decision.kind or "too_large",
                           errors=(decision.reason or "too large",))
        with opener() as handle:
            plan = judge.plan(handle, size, upload_limit, screen)
        return verdict("transfer", documents=tuple(Planned(d.field, d.size) for d in plan.documents))
    except RejectedFile as exc:
        return verdict("reject", reason_kind=exc.kind, errors=rejection_errors(exc))
