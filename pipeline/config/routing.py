"""The pure side of config ``routes``: route names, path globs, and whether one route's match
covers another's. No I/O, and nothing of the pipeline: the config checks use it to judge a
config, and flow/routes.py to route files.

Path globs (``/`` separates folders, and no wildcard crosses it, unlike shell ``fnmatch``):

    *        any characters within one folder level     lab/*.json: lab/a.json, not lab/x/a.json
    ?        one character (not /)
    [abc]    one of the characters; [!abc] none of them; ranges such as [0-9]
    **       a whole segment: any number of folder levels, none included
             (**/*.json: every .json at any depth; lab/**: everything below lab/)
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

DEFAULT = "default"        # the name reports give the top-level destinations
UNROUTED = "unrouted"      # the reason_kind of a file no route matches, with no default
RESERVED = (DEFAULT, UNROUTED)
WILDCARDS = "*?["


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate on ``/``-separated paths for ``pattern`` (see the module docstring).
    Raises ValueError saying what is wrong with a malformed pattern."""
    if not pattern:
        raise ValueError("an empty pattern matches no file")
    if pattern.startswith("/"):
        raise ValueError("a path below the inbox never starts with /")
    if pattern.endswith("/"):
        raise ValueError("ends with /: it would match a folder, never a file")
    parts = pattern.split("/")
    if "" in parts:
        raise ValueError("an empty folder level (//)")
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        elif "**" in part:
            raise ValueError("** must be a whole folder level (like lab/** or **/*.json)")
        else:
            out.append(_segment(part) + ("" if last else "/"))
    try:
        regex = re.compile("(?s:" + "".join(out) + ")")
    except re.error as exc:                       # e.g. a range written backwards: [z-a]
        raise ValueError(f"not a valid pattern ({exc.msg})") from None
    return lambda path: regex.fullmatch(path) is not None


def _segment(part: str) -> str:
    """One folder level of a glob as a regular expression (no wildcard matches /)."""
    res: list[str] = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        if c == "*":
            if not res or res[-1] != "[^/]*":
                res.append("[^/]*")
        elif c == "?":
            res.append("[^/]")
        elif c == "[":
            i = _char_class(part, i, res)
        else:
            res.append(re.escape(c))
        i += 1
    return "".join(res)


def _char_class(part: str, start: int, res: list[str]) -> int:
    """Translate the ``[...]`` at ``start``; returns the index of its closing bracket."""
    j = start + 1
    if j < len(part) and part[j] == "!":
        j += 1
    if j < len(part) and part[j] == "]":
        j += 1                                     # a ] right after [ or [! is a member
    while j < len(part) and part[j] != "]":
        j += 1
    if j >= len(part):
        raise ValueError("a [ is never closed")
    body = part[start + 1:j]
    negate = body.startswith("!")
    body = body[1:] if negate else body
    body = body.replace("\\", r"\\")
    body = re.sub(r"([&~|\[^])", r"\\\1", body)   # literal inside a class, never set operations
    res.append("[^/" + body + "]" if negate else "[" + body + "]")
    return j


def glob_problem(pattern: str) -> Optional[str]:
    """Why ``pattern`` is not a usable path glob, or None."""
    try:
        compile_glob(pattern)
    except ValueError as exc:
        return str(exc)
    return None


def route_names(routes: Sequence) -> list[str]:
    """Each route's name: its ``name``, else "route N" (1-based, in config order)."""
    return [route.name or f"route {i + 1}" for i, route in enumerate(routes)]


def covers(earlier, later) -> bool:
    """Does the RouteMatch ``earlier`` hold for every file ``later`` holds for? Conservative:
    False when that cannot be told from the patterns (config checks warn only when True)."""
    for key in ("data_model", "event_type", "path"):
        wide, narrow = earlier.values(key), later.values(key)
        if wide is None:
            continue
        if narrow is None:
            return False
        if key != "path":
            if not set(narrow) <= set(wide):
                return False
        elif not all(_glob_covers(wide, pattern) for pattern in narrow):
            return False
    return True


def _glob_covers(wide: Sequence[str], pattern: str) -> bool:
    if pattern in wide or "**" in wide:
        return True
    if any(c in pattern for c in WILDCARDS):
        return False                      # two real globs: not decidable here, so no warning
    matchers = [compile_glob(p) for p in wide if glob_problem(p) is None]
    return any(match(pattern) for match in matchers)
