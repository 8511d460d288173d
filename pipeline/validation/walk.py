"""Every subschema of a draft-04 schema, with where it is and the base URI its ``$ref`` uses.

Only schema positions are visited (``properties`` values, ``items``, ``allOf`` members, ...),
never a schema's data (``enum`` values, ``default``), so a property that happens to be named
``id`` or ``$ref`` is not mistaken for a keyword.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

# draft-04 keywords whose value is a schema, a list of schemas, or a name → schema map
_ONE = ("additionalItems", "additionalProperties", "not")
_LIST = ("allOf", "anyOf", "oneOf")
_MAP = ("properties", "patternProperties", "definitions")


@dataclass(frozen=True)
class Node:
    """A subschema: ``pointer`` is its JSON Pointer in the file (``""`` for the root) and
    ``base`` the URI that its relative ``$ref`` is resolved against."""
    schema: dict[str, Any]
    pointer: str
    base: str


def legacy_id(schema: dict[str, Any]) -> str | None:
    """The draft-04 ``id`` that moves the base URI, as jsonschema reads it: none beside a
    ``$ref`` (whose siblings are ignored), none that is a plain ``#fragment``."""
    value = schema.get("id")
    if "$ref" in schema or not isinstance(value, str) or value.startswith("#"):
        return None
    return value


def nodes(root: dict[str, Any], base: str) -> Iterator[Node]:
    """Every subschema of ``root`` (itself first), depth first. Iterative: a deep schema cannot
    exhaust the stack."""
    stack = [Node(root, "", base)]
    while stack:
        node = stack.pop()
        schema = node.schema
        own = legacy_id(schema)
        here = urljoin(node.base, own) if own else node.base
        yield Node(schema, node.pointer, here)
        children: list[tuple[str, Any]] = []
        for key in _ONE:
            children.append((key, schema.get(key)))
        items = schema.get("items")
        if isinstance(items, list):
            children.extend((f"items/{i}", s) for i, s in enumerate(items))
        else:
            children.append(("items", items))
        for key in _LIST:
            if isinstance(schema.get(key), list):
                children.extend((f"{key}/{i}", s) for i, s in enumerate(schema[key]))
        for key in _MAP + ("dependencies",):
            if isinstance(schema.get(key), dict):
                children.extend((f"{key}/{_escape(name)}", s) for name, s in schema[key].items())
        for path, child in reversed(children):
            if isinstance(child, dict):
                stack.append(Node(child, f"{node.pointer}/{path}", here))


def property_names(root: dict[str, Any]) -> set[str]:
    """Every name the schema itself gives a property: ``properties`` keys, ``required`` and
    ``dependencies`` entries. Error paths show an object key only when it is one of these,
    since any other key comes from the message and may itself be patient data."""
    names: set[str] = set()
    for node in nodes(root, ""):
        schema = node.schema
        if isinstance(schema.get("properties"), dict):
            names.update(schema["properties"])
        if isinstance(schema.get("required"), list):
            names.update(n for n in schema["required"] if isinstance(n, str))
        if isinstance(schema.get("dependencies"), dict):
            for name, needs in schema["dependencies"].items():
                names.add(name)
                if isinstance(needs, list):
                    names.update(n for n in needs if isinstance(n, str))
    return names


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
