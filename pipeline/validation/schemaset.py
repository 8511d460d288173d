"""The loaded schemas, and ``validate``: a message → its problems, or "no schema for it".

Two validators, one answer. Every message first goes through the schema compiled by
fastjsonschema, a yes/no check (about 60 µs for a typical 8 KB NewPatient against a schema of
400 properties, where jsonschema takes 1.6 ms: scripts/bench/validation.py). Only a message it
refuses is given to jsonschema's Draft4Validator, which lists every problem with structured
paths that can be rendered without quoting the message (render.py). jsonschema is the
authority: when it finds nothing in a message that the fast check refused (they read a few
corner cases differently, e.g. a ``$`` in a pattern before a trailing newline), the message is
valid, and ``disagreements`` counts it.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft4Validator

from pipeline.validation.layout import normalise
from pipeline.validation.render import render
from pipeline.validation.textpaths import reads_text

MAX_PROBLEMS = 20


class NoSchema(enum.Enum):
    """The marker :meth:`SchemaSet.validate` returns when the folder has no schema for the
    message's DataModel/EventType (compare with ``is NO_SCHEMA``)."""
    NO_SCHEMA = "no schema"


NO_SCHEMA = NoSchema.NO_SCHEMA


@dataclass(frozen=True)
class EventSchema:
    """One event type's schema, ready: ``name`` is its file, relative to the folder."""
    name: str
    quick: Callable[[Any], Any]          # fastjsonschema: returns, or raises when invalid
    full: Draft4Validator                # jsonschema: lists the problems
    root: dict[str, Any] = field(compare=False)     # the schema as both validators read it
    resolver: Any = field(compare=False)            # referencing: resolves root's $ref
    _reads: dict[tuple, bool] = field(default_factory=dict, compare=False, repr=False)

    def reads_text(self, path: tuple) -> bool:
        """Does a rule of this schema read the text of a string at ``path`` (textpaths.py)?
        Remembered per path: the same few document fields are asked about again and again."""
        found = self._reads.get(path)
        if found is None:
            found = reads_text(self.root, self.resolver, path)
            if len(self._reads) < 1000:      # paths of a few fields; bounded all the same
                self._reads[path] = found
        return found


@dataclass
class SchemaSet:
    """Every schema of the folder, compiled; safe to share between worker threads.

    ``known`` is every property name the schemas give (what error paths may show);
    ``max_problems`` caps the list ``validate`` returns.
    """
    events: dict[tuple[str, str], EventSchema]
    known: frozenset[str]
    max_problems: int = MAX_PROBLEMS
    disagreements: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.max_problems < 1:       # 0 would list nothing, and nothing listed means valid
            raise ValueError(f"max_problems must be at least 1, not {self.max_problems}")

    def __len__(self) -> int:
        return len(self.events)

    def names(self) -> list[str]:
        """The event schema files, relative to the folder (for a start-up log line)."""
        return sorted(e.name for e in self.events.values())

    def find(self, data_model: str, event_type: str) -> EventSchema | None:
        """The schema for this DataModel/EventType, matched as layout.normalise says."""
        return self.events.get((normalise(data_model), normalise(event_type)))

    def reads_text(self, data_model: str, event_type: str, path: tuple) -> bool:
        """Would validating a message of this DataModel/EventType read the text of the string
        at ``path``, or only its type? False when there is no schema for it."""
        schema = self.find(data_model, event_type)
        return schema is not None and schema.reads_text(path)

    def validate(self, doc: Any, data_model: str, event_type: str) -> list[str] | NoSchema:
        """The problems of ``doc`` against its schema: ``[]`` when it is valid, else up to
        ``max_problems`` lines ``<JSON path>: <rule>`` in path order, then
        ``... and N more`` when there are more. :data:`NO_SCHEMA` when the folder has no
        schema for ``data_model``/``event_type``. No line holds a value or an unknown key from
        ``doc``. Never raises for any parsed JSON ``doc``; does not modify it. When the quick
        check refuses ``doc`` and jsonschema fails while listing why, the one problem is
        ``$: does not match the schema (its problems could not be listed: <error type>)``.
        """
        schema = self.find(data_model, event_type)
        if schema is None:
            return NO_SCHEMA
        try:
            schema.quick(doc)
            return []
        except Exception:       # noqa: BLE001 - refused, or the check itself failed: jsonschema decides
            pass
        # a set: one error can repeat a line (two dependencies on one property); sorted, because
        # jsonschema's order is not stable (it walks some keys as a set) and the same problems
        # must give the same reason every time, for reports that rank reasons
        try:
            lines = sorted(set(self._lines(schema.full, doc)), key=_natural)
        except Exception as exc:    # noqa: BLE001 - e.g. a $ref read differently at run time
            # refused by the quick check, and jsonschema cannot say why: failing is the safe
            # side (the file can be retried once the schema is fixed); the reason names no value
            return [f"$: does not match the schema (its problems could not be listed: "
                    f"{type(exc).__name__})"]
        shown, more = lines[:self.max_problems], len(lines) - self.max_problems
        if not shown:
            with self._lock:
                self.disagreements += 1
            return []
        return shown + ([f"... and {more} more"] if more > 0 else [])

    def _lines(self, validator: Draft4Validator, doc: Any) -> Iterator[str]:
        for error in validator.iter_errors(doc):
            yield from render(error, self.known)


def _natural(line: str) -> list[str | int]:
    """Sort key that puts ``Identifiers[2]`` before ``Identifiers[10]``."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(line)]


_DIGITS = re.compile(r"(\d+)")
