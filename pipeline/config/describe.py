"""What pydantic refused in a config, in our words: each validation error as ``key.path: what is
wrong`` (with the closest known key for an unknown one), and the settings with the refused keys
left out, so the checks that span keys still run on the rest (load.examine).
"""

from __future__ import annotations

import copy
import difflib
import typing
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from pipeline.config.models import UUID_PATTERN, Settings

_GONE = object()


def without_offenders(expanded: dict, exc: ValidationError) -> Optional[Settings]:
    """The settings with every key the model refused left out (a list item that cannot be
    read goes whole), so the checks that span keys can still run; None when even that fails."""
    data = copy.deepcopy(expanded)
    errors = exc.errors()
    for _ in range(8):
        for err in errors:
            _drop(data, err["loc"])
        data = _compact(data)
        try:
            return Settings.model_validate(data)
        except ValidationError as again:
            errors = again.errors()
    return None


def _drop(data: Any, loc: tuple) -> None:
    """Remove the deepest value on ``loc`` that exists (a missing key: the mapping that lacks
    it; the member-type parts pydantic adds to union locations are not in the data)."""
    parent: Any = None
    key: Any = None
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            parent, key, node = node, part, node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            parent, key, node = node, part, node[part]
        else:
            break
    if parent is None or key == "config_path":
        return
    if isinstance(parent, dict):
        parent.pop(key, None)
    else:
        parent[key] = _GONE             # removed by _compact: indices of later errors hold


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not _GONE}
    if isinstance(value, list):
        return [_compact(v) for v in value if v is not _GONE]
    return value


def overlaps(key: str, reported: list[str]) -> bool:
    """A problem about ``key`` follows from one already reported (the same key, or one above
    or below it: a destination left out for its bad ID leaves "destinations" empty)."""
    return any(key == r or key.startswith(r + ".") or r.startswith(key + ".") for r in reported)


def _known_keys(loc: tuple) -> list[str]:
    """The keys the model knows where ``loc`` points (a mapping), or [] when it cannot tell."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return [name for name in model.model_fields if name != "config_path"]


def _model_in(annotation: Any) -> Any:
    """The settings model an annotation holds (directly, Optional, or as tuple items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def describe(err: Any) -> str:
    """One pydantic error (its ErrorDetails) as ``key.path: what is wrong``."""
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "missing":
        return f"{path}: missing"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]), _known_keys(err["loc"][:-1]), n=1)
        return f"{path}: unknown key" + (f" (did you mean {close[0]}?)" if close else "")
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == UUID_PATTERN:
        return f"{path}: must be a UUID (like af394f14-b34a-464f-8d24-895f370af4c9)"
    return f"{path}: {err['msg']}"
