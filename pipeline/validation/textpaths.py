"""Does a schema look at the text of the string at a given path, or only at its type?

A message over the send limit is never held whole: its embedded documents (base64 strings of
up to tens of megabytes) are set aside by the scan and stand in the parsed message as
placeholder strings (pipeline/redox/transfer/documents.py). For the schema, a placeholder is a
string like the document's text, so every rule that only asks "is it a string" reads both
alike. Only four draft-04 keywords read a string's text: ``pattern``, ``minLength``,
``maxLength`` and ``enum`` (``format`` is not enforced here). :func:`reads_text` tells whether
any subschema that applies at a path (through ``properties``, ``patternProperties``,
``additionalProperties``, ``items``, ``additionalItems``, ``allOf``/``anyOf``/``oneOf``/``not``
and ``$ref``) has one of them; only then is the document's text put in place for validation.

When it cannot tell (a ``$ref`` that does not resolve here), it answers True: reading the text
costs memory, never a wrong verdict.
"""

from __future__ import annotations

import re
from typing import Any

from referencing.jsonschema import DRAFT4

from pipeline.validation.walk import legacy_id

TEXT_KEYWORDS = frozenset({"pattern", "minLength", "maxLength", "enum"})
_MAX_NODES = 10_000      # a pathological schema: give up (True) rather than walk for ever


class _Unsure(Exception):
    pass


def reads_text(root: dict[str, Any], resolver: Any, path: tuple) -> bool:
    """Does a rule of ``root`` (resolving ``$ref`` with the referencing ``resolver``) read the
    text of a string found at ``path`` (keys and array indexes from the top of the message)?"""
    try:
        here = _expand([(root, resolver)])
        for step in path:
            here = _expand([child for node in here for child in _children(node, step)])
            if not here:
                return False        # nothing applies there: any string is as good as another
        return any(TEXT_KEYWORDS & schema.keys() for schema, _ in here)
    except _Unsure:
        return True


def _children(node: tuple[dict, Any], step: Any) -> list[tuple[dict, Any]]:
    """The subschemas that apply to the member ``step`` (a key, or an index) of an instance
    that ``node`` applies to."""
    schema, resolver = node
    out: list[Any] = []
    if isinstance(step, int):
        items = schema.get("items")
        if isinstance(items, dict):
            out.append(items)
        elif isinstance(items, list):
            out.append(items[step] if step < len(items) else schema.get("additionalItems"))
    else:
        props = schema.get("properties")
        named = False
        if isinstance(props, dict) and step in props:
            out.append(props[step])
            named = True
        patterns = schema.get("patternProperties")
        matched = False
        if isinstance(patterns, dict):
            for pattern, sub in patterns.items():
                try:
                    found = re.search(pattern, step) is not None
                except re.error:
                    raise _Unsure() from None
                if found:
                    out.append(sub)
                    matched = True
        if not named and not matched:
            out.append(schema.get("additionalProperties"))
    return [(sub, resolver) for sub in out if isinstance(sub, dict)]


def _expand(nodes: list[tuple[dict, Any]]) -> list[tuple[dict, Any]]:
    """``nodes`` and every subschema that applies at the same place: members of allOf, anyOf,
    oneOf and not, the target of each ``$ref`` (whose siblings draft-04 ignores)."""
    out: list[tuple[dict, Any]] = []
    seen: set[int] = set()
    stack = list(nodes)
    while stack:
        schema, resolver = stack.pop()
        if id(schema) in seen:
            continue
        seen.add(id(schema))
        if len(seen) > _MAX_NODES:
            raise _Unsure()
        if legacy_id(schema):
            resolver = resolver.in_subresource(DRAFT4.create_resource(schema))
        ref = schema.get("$ref")
        if isinstance(ref, str):
            try:
                resolved = resolver.lookup(ref)
            except Exception:       # noqa: BLE001 - unresolvable here: assume the worst
                raise _Unsure() from None
            if not isinstance(resolved.contents, dict):
                raise _Unsure()
            stack.append((resolved.contents, resolved.resolver))
            continue
        out.append((schema, resolver))
        for key in ("allOf", "anyOf", "oneOf"):
            members = schema.get(key)
            if isinstance(members, list):
                stack.extend((m, resolver) for m in members if isinstance(m, dict))
        if isinstance(schema.get("not"), dict):
            stack.append((schema["not"], resolver))
    return out
