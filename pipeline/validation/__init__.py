"""Validation of Redox messages against Redox's JSON Schemas (draft-04), before they are sent.

Public API (the lead wires it into config and the run path):

* :func:`load_schemas` ``(folder, *, max_problems=20) -> SchemaSet``: at start-up, reads,
  checks and compiles every schema under ``folder`` (config key ``validation.schemas``; the
  two accepted layouts are in layout.py and docs/validation.md). Raises
  ``pipeline.errors.ConfigError`` with ``validation.schemas: <file>: <what is wrong>``.
* :meth:`SchemaSet.validate` ``(doc, data_model, event_type) -> list[str] | NoSchema``: ``[]``
  when valid, else the problems as ``<JSON path>: <rule>`` (at most ``max_problems``, then
  ``... and N more``); :data:`NO_SCHEMA` when the folder has no schema for that pair.
* :class:`Gate` ``(schemas, missing_schema="send")``: ``check(doc, data_model, event_type)``
  returns True (checked) or False (no schema, sent unchecked, warned once), or raises
  ``RejectedFile`` (:class:`SchemaMismatch`, kind ``invalid``, with the problems; or kind
  ``no_schema``).
* :class:`MissingSchema`: the values of ``validation.missing_schema`` (``send`` | ``fail``).

No problem line, reason or log line holds a value from a message, nor an object key that the
schema does not name: only paths, keywords and schema text (render.py).
"""

from pipeline.validation.gate import NO_SCHEMA_KIND, Gate, MissingSchema, SchemaMismatch
from pipeline.validation.loader import load_schemas
from pipeline.validation.schemaset import MAX_PROBLEMS, NO_SCHEMA, NoSchema, SchemaSet

__all__ = ["MAX_PROBLEMS", "NO_SCHEMA", "NO_SCHEMA_KIND", "Gate", "MissingSchema", "NoSchema",
           "SchemaMismatch", "SchemaSet", "load_schemas"]
