"""A jsonschema error → ``<JSON path>: <rule>`` lines that carry nothing from the message.

jsonschema's own messages quote the instance (``'1990-13-45' does not match ...``), so they are
never used. Each line is built from three things only:

* the path, from the error's instance path, where an object key is shown only when the schema
  names that property (see :func:`walk.property_names`); any other key came from the message
  (``additionalProperties``, ``patternProperties``) and is shown as ``*``; array indexes are
  shown as they are (``Patient.Identifiers[0].ID``); the document itself is ``$``;
* the keyword that failed;
* the schema's value for it (a pattern, a bound, the allowed values), which is schema text.

From the instance only its JSON type (``got number``), which of the schema's own property names
are missing (``required``) and how many keys the schema does not allow are used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError

ROOT = "$"
MAX_SCHEMA_TEXT = 80        # a pattern or value list longer than this is cut: lines stay readable
MAX_ENUM_SHOWN = 8          # more allowed values than this are not listed
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def path_text(parts: Iterable[str | int], known: frozenset[str]) -> str:
    """``("Patient", "Identifiers", 0, "ID")`` → ``Patient.Identifiers[0].ID``; ``()`` → ``$``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in known:
            out += ".*" if out else "*"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"      # a schema name with a space, dot or bracket
    return out or ROOT


def render(error: ValidationError, known: frozenset[str]) -> list[str]:
    """The problem lines for one error (usually one; ``required`` and ``dependencies`` give one
    per missing property, each at that property's own path)."""
    parts = list(error.absolute_path)
    keyword = str(error.validator)
    schema = error.schema if isinstance(error.schema, dict) else {}
    rule = error.validator_value
    if keyword == "required" and isinstance(error.instance, dict):
        return [f"{path_text(parts + [name], known)}: required"
                for name in _missing(error.instance, rule)]
    if keyword == "dependencies" and isinstance(error.instance, dict) and isinstance(rule, dict):
        return [f"{path_text(parts + [need], known)}: required when "
                f"{path_text([name], known)} is present"
                for name, needs in rule.items() if name in error.instance and isinstance(needs, list)
                for need in _missing(error.instance, needs)]
    return [f"{path_text(parts, known)}: {_rule(keyword, rule, schema, error)}"]


def _missing(instance: dict, names: Any) -> list[str]:
    return [n for n in names if isinstance(n, str) and n not in instance] if isinstance(names, list) else []


def _rule(keyword: str, rule: Any, schema: dict, error: ValidationError) -> str:
    """What is wrong, in words, from the keyword and the schema's value for it."""
    if keyword == "type":
        wanted = " or ".join(map(str, rule)) if isinstance(rule, list) else str(rule)
        return f"wrong type (expected {wanted}, got {json_type(error.instance)})"
    if keyword == "enum":
        return "not one of the allowed values" + _listed(rule)
    if keyword == "pattern":
        return f"does not match the pattern {_cut(str(rule))}"
    if keyword == "format":
        return f"is not a valid {_cut(str(rule))}"
    if keyword == "additionalProperties":
        count = _extra_keys(error.instance, schema)
        return ("has a property the schema does not allow" if count <= 1
                else f"has {count} properties the schema does not allow")
    if keyword == "additionalItems":
        allowed = len(schema["items"]) if isinstance(schema.get("items"), list) else 0
        return f"has more items than the schema allows (at most {allowed})"
    if keyword in ("minimum", "maximum"):
        exclusive = schema.get("exclusiveMinimum" if keyword == "minimum" else "exclusiveMaximum")
        words = {("minimum", False): "at least", ("minimum", True): "greater than",
                 ("maximum", False): "at most", ("maximum", True): "less than"}
        return f"must be {words[keyword, exclusive is True]} {_num(rule)}"
    if keyword == "oneOf" and not error.context:
        return "matches more than one of the alternatives (exactly one is allowed)"
    fixed = {
        "minLength": "too short (at least {} characters)",
        "maxLength": "too long (at most {} characters)",
        "minItems": "too few items (at least {})",
        "maxItems": "too many items (at most {})",
        "minProperties": "too few properties (at least {})",
        "maxProperties": "too many properties (at most {})",
        "multipleOf": "must be a multiple of {}",
        "uniqueItems": "has duplicate items",
        "anyOf": "does not match any of the allowed alternatives",
        "oneOf": "does not match any of the allowed alternatives",
        "allOf": "does not match every schema it must match",
        "not": "matches a schema it must not match",
    }
    if keyword in fixed:
        return fixed[keyword].format(_num(rule))
    return f'fails the schema\'s "{_cut(keyword)}" rule'


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _extra_keys(instance: Any, schema: dict) -> int:
    """How many keys ``additionalProperties: false`` refused (a count: the keys are not shown)."""
    if not isinstance(instance, dict):
        return 0
    declared = schema.get("properties")
    patterns = schema.get("patternProperties")
    names: dict[str, Any] = declared if isinstance(declared, dict) else {}
    regexes: dict[str, Any] = patterns if isinstance(patterns, dict) else {}
    return sum(1 for key in instance
               if key not in names and not any(re.search(p, key) for p in regexes))


def _listed(values: Any) -> str:
    """`` (Female, Male, null)`` for a short enum; nothing for a long one."""
    if not isinstance(values, list) or not values or len(values) > MAX_ENUM_SHOWN:
        return ""
    shown = ", ".join(v if isinstance(v, str) else json.dumps(v) for v in values)
    return f" ({shown})" if len(shown) <= MAX_SCHEMA_TEXT else ""


def _num(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SCHEMA_TEXT else text[:MAX_SCHEMA_TEXT - 1] + "…"
