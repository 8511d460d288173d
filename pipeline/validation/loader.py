"""Load the schemas folder once, at start-up: every file read, checked and compiled, or a
ConfigError that names the file and says what is wrong with it.

Checks, in order, for every ``.json`` file (event schemas and shared definitions alike):
readable UTF-8, JSON, an object, ``$schema`` (if given) names draft-04, valid against the
draft-04 meta-schema (including that every ``pattern`` is a regular expression), and every
``$ref`` resolves to a file in the folder and a place in it. Then each event schema is compiled
for both validators. Nothing is fetched from the network: a ``$ref`` to anything that is not a
file in the folder (or declared by one as its ``id``) is an error.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import fastjsonschema
from jsonschema import Draft4Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4

from pipeline.errors import ConfigError
from pipeline.validation.layout import KEY, Layout, scan
from pipeline.validation.schemaset import MAX_PROBLEMS, EventSchema, SchemaSet
from pipeline.validation.walk import legacy_id, nodes, property_names

DRAFT4_URI = "http://json-schema.org/draft-04/schema#"
_MAX_DETAIL = 160            # a meta-schema complaint longer than this is cut


def load_schemas(folder: str | os.PathLike[str], *, max_problems: int = MAX_PROBLEMS) -> SchemaSet:
    """Read, check and compile every schema under ``folder`` (layouts: layout.py).

    Returns a :class:`SchemaSet` whose ``validate`` lists at most ``max_problems`` problems per
    message. Raises ConfigError ``validation.schemas: <file>: <what is wrong>`` for the first
    broken file (in a stable order), or for a missing, unreadable or empty folder; ValueError
    when ``max_problems`` is below 1. Reads only files under ``folder``; never the network.
    """
    layout = scan(folder)
    docs = {path: _read(layout, path) for path in layout.files}
    bases = {path: _base(path, doc) for path, doc in docs.items()}
    # the registry's copy of each file carries its base as its id, so that a relative $ref in
    # it resolves against the file's own place, as an operator reading the folder expects
    registered = {path: dict(doc, id=bases[path]) for path, doc in docs.items()}
    registry: Registry = Registry().with_resources(
        [(path.resolve().as_uri(), DRAFT4.create_resource(c)) for path, c in registered.items()]
        + [(bases[path], DRAFT4.create_resource(c)) for path, c in registered.items()]
    ).crawl()
    for path, contents in registered.items():
        _check_refs(layout, path, contents, registry)
    known = frozenset().union(*(property_names(doc) for doc in docs.values()))
    store = {urldefrag(uri)[0]: registered[path]
             for path in docs for uri in (path.resolve().as_uri(), bases[path])}
    events = {key: _compile(layout, path, registered[path], registry, store)
              for key, path in layout.events.items()}
    return SchemaSet(events, known, max_problems)


def _fail(layout: Layout, path: Path, what: str) -> ConfigError:
    return ConfigError(f"{KEY}: {layout.shown(path)}: {what}")


def _read(layout: Layout, path: Path) -> dict[str, Any]:
    """One file → its schema object, checked as far as it can be alone."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise _fail(layout, path, f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise _fail(layout, path, f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _fail(layout, path, f"not JSON (line {exc.lineno}, column {exc.colno}: "
                                  f"{exc.msg})") from None
    except ValueError as exc:       # a key twice in one object, NaN, Infinity
        raise _fail(layout, path, f"not JSON ({exc})") from None
    except RecursionError:
        raise _fail(layout, path, "not JSON that can be read (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise _fail(layout, path, "not a JSON object (a draft-04 schema is an object)")
    dialect = doc.get("$schema")
    if dialect is not None and not (isinstance(dialect, str) and "draft-04" in dialect):
        raise _fail(layout, path, f"declares $schema {_cut(json.dumps(dialect))}; only draft-04 "
                                  "schemas are supported")
    _check_meta(layout, path, doc)
    return doc


def _check_meta(layout: Layout, path: Path, doc: dict[str, Any]) -> None:
    """Valid against the draft-04 meta-schema. The compiled meta-schema answers yes in a
    fraction of jsonschema's time; jsonschema is asked only for its words on a refusal (and,
    like everywhere here, is the authority when the two differ)."""
    try:
        _meta_check()(doc)
        return
    except Exception:       # noqa: BLE001 - refused, or the quick check failed: ask jsonschema
        pass
    try:
        Draft4Validator.check_schema(doc)
    except SchemaError as exc:
        where = "".join(f"/{p}" for p in exc.absolute_path) or "the root"
        raise _fail(layout, path, f"not a valid draft-04 schema: at {where}: "
                                  f"{_cut(exc.message)}") from None


_META: list[Callable[[Any], Any]] = []


def _meta_check() -> Callable[[Any], Any]:
    """The draft-04 meta-schema, compiled by fastjsonschema on first use."""
    if not _META:
        _META.append(fastjsonschema.compile(Draft4Validator.META_SCHEMA, use_default=False,
                                            detailed_exceptions=False))
    return _META[0]


def _base(path: Path, doc: dict[str, Any]) -> str:
    """The URI a file's relative ``$ref`` resolves against: its own ``id`` if it declares one
    (resolved against the file's place), else the file's ``file:`` URI."""
    here = path.resolve().as_uri()
    declared = legacy_id(doc)
    return urldefrag(urljoin(here, declared))[0] if declared else here


def _check_refs(layout: Layout, path: Path, contents: dict[str, Any], registry: Registry) -> None:
    """Every ``$ref`` in the file resolves, now rather than on the first invalid message."""
    for node in nodes(contents, contents["id"]):     # the base: a root $ref hides the id
        if "$ref" not in node.schema:
            continue
        ref = node.schema["$ref"]
        where = node.pointer or "the root"
        if not isinstance(ref, str):
            raise _fail(layout, path, f"$ref at {where} is not a string")
        try:
            registry.resolver(base_uri=node.base).lookup(ref)
        except (Unresolvable, KeyError):
            raise _fail(layout, path, f"$ref {_cut(json.dumps(ref))} at {where} cannot be resolved "
                                      "(no such file in the folder, or no such place in it)") from None


def _compile(layout: Layout, path: Path, contents: dict[str, Any], registry: Registry,
             store: dict[str, dict[str, Any]]) -> EventSchema:
    """Both validators for one event schema."""
    root = _rooted(contents)
    full = Draft4Validator(root, registry=registry)

    def fetch(uri: str) -> Any:
        # fastjsonschema mutates what it compiles (it rewrites $ref in place): copies only
        found = store.get(urldefrag(uri)[0])
        if found is None:
            raise fastjsonschema.JsonSchemaDefinitionException(f"no such file in the folder: {uri}")
        return copy.deepcopy(found)
    try:
        quick = fastjsonschema.compile(copy.deepcopy(root), handlers=_LocalOnly(fetch),
                                       use_default=False, use_formats=False,
                                       detailed_exceptions=False)
    except Exception as exc:        # noqa: BLE001 - any failure to compile is this file's problem
        raise _fail(layout, path, f"cannot be compiled ({type(exc).__name__}: "
                                  f"{_cut(str(exc))})") from None
    return EventSchema(layout.shown(path), quick, full, root,
                       registry.resolver(base_uri=contents["id"]))


def _rooted(contents: dict[str, Any]) -> dict[str, Any]:
    """The schema as both validators start from it: draft-04 declared (fastjsonschema would
    otherwise read it as its newest draft) and the file's base as ``id``. A root that is a
    bare ``$ref`` (whose siblings draft-04 ignores, ``id`` included) is wrapped in ``allOf``."""
    if "$ref" in contents:
        return {"$schema": DRAFT4_URI, "id": contents["id"], "allOf": [contents]}
    return {"$schema": DRAFT4_URI, **contents}


class _LocalOnly(dict[str, Callable[[str], Any]]):
    """fastjsonschema's ``handlers`` where every URI scheme has a handler, ours: without one it
    would fetch the URI itself (urllib), and schemas must never reach the network."""

    def __init__(self, fetch: Callable[[str], Any]):
        super().__init__()
        self._fetch = fetch

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return self._fetch


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {_cut(json.dumps(key))} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL - 1] + "…"
