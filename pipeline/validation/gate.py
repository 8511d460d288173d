"""The decision for the run path: send this message, or fail it with the schema's reasons.

``validation.missing_schema`` says what happens to a message whose DataModel/EventType has no
schema in the folder:

* ``send`` (the default): it is sent unchecked, and one warning per DataModel/EventType is
  logged, once per process. A folder that holds the schemas of some event types checks those
  and lets the rest through, so adding validation, or a schema folder that lags behind a new
  feed, never stops traffic that flowed before;
* ``fail``: it goes to ``failed/`` with a reason naming the missing schema (kind
  ``no_schema``: not the file's own fault, so ``retry-failed`` can put it back once the schema
  is added). For operators who want nothing to reach Redox unchecked.

A message that does not match its schema is always failed (kind ``invalid``, like every other
message that cannot be sent as it is), with its problems in the reason.
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import Any

from pipeline.errors import RejectedFile
from pipeline.validation.layout import normalise
from pipeline.validation.schemaset import NO_SCHEMA, SchemaSet

log = logging.getLogger("pipeline.validation")

NO_SCHEMA_KIND = "no_schema"
MAX_WARNED = 1000       # distinct names remembered for the once-only warning: memory stays bounded


class SchemaMismatch(RejectedFile):
    """A message that does not match its schema (kind ``invalid``). ``reason`` is one line,
    ``does not match the schema <file>: <problem>; <problem>; ...``; :attr:`errors` is what the
    sidecar lists: the first line names the schema (reports rank reasons by it), then each
    problem on its own line."""

    def __init__(self, schema: str, problems: list[str]):
        self.schema, self.problems = schema, tuple(problems)
        super().__init__(f"does not match the schema {schema}: " + "; ".join(problems), "invalid")

    @property
    def errors(self) -> tuple[str, ...]:
        return (f"does not match the schema {self.schema}", *self.problems)


class MissingSchema(str, enum.Enum):
    """The values of ``validation.missing_schema``."""
    SEND = "send"
    FAIL = "fail"


class Gate:
    """:class:`SchemaSet` plus the missing-schema policy; safe to share between worker threads.

    ``logger`` receives the once-per-model warning (tests pass their own).
    """

    def __init__(self, schemas: SchemaSet, missing_schema: MissingSchema | str = MissingSchema.SEND,
                 logger: logging.Logger = log):
        self.schemas = schemas
        self.missing_schema = MissingSchema(missing_schema)
        self._log = logger
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def check(self, doc: Any, data_model: str, event_type: str) -> bool:
        """Pass ``doc`` (a parsed Redox message whose Meta names ``data_model`` and
        ``event_type``, already checked to be plain names) or refuse it.

        Returns True when it was checked against a schema and matches it, False when there
        is no schema for it and the policy is ``send``. Raises :class:`SchemaMismatch` (a
        RejectedFile of kind ``invalid``, reason ``does not match the schema <file>:
        <problem>; <problem>; ...``) when it does not match; kind ``no_schema`` when there is
        no schema and the policy is ``fail``.
        Reasons and the warning hold schema names, file names and paths, never message values.
        """
        problems = self.schemas.validate(doc, data_model, event_type)
        if problems is NO_SCHEMA:
            if self.missing_schema is MissingSchema.FAIL:
                raise RejectedFile(f"no schema for {data_model}/{event_type} in validation.schemas "
                                   "(validation.missing_schema is fail)", NO_SCHEMA_KIND)
            self._warn_once(data_model, event_type)
            return False
        if problems:
            found = self.schemas.find(data_model, event_type)
            name = found.name if found else f"{data_model}/{event_type}"
            raise SchemaMismatch(name, problems)
        return True

    def _warn_once(self, data_model: str, event_type: str) -> None:
        key = (normalise(data_model), normalise(event_type))     # as schemas are matched
        with self._lock:
            if key in self._warned or len(self._warned) >= MAX_WARNED:
                return
            self._warned.add(key)
        self._log.warning("no schema for %s/%s in validation.schemas: such messages are sent "
                          "unchecked (validation.missing_schema is send; this is said once)",
                          data_model, event_type)
