"""Which inbox names count, and what a finished file and its sidecar are called.

Shared by the stores: a name is taken only if the file can end in done/ or failed/ under that
name with its ``<name>.redox.json`` sidecar beside it, and be written faithfully into the
journal, the sidecar and the logs (so it must be UTF-8).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from typing import Iterator, Optional

from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX

_NEVER_OURS = (".tmp", ".part")
NAME_MAX = 255                          # bytes in one path component (Linux filesystems)
# A file must be able to end in done/ or failed/ under its own name with its sidecar beside it
# (the README's promise), so its name leaves room for the sidecar suffix.
MAX_NAME_BYTES = NAME_MAX - len(SIDECAR_SUFFIX)


def is_candidate_name(name: str, pattern: str) -> bool:
    """Names that count: match ``pattern``, and are never hidden, temporary or a sidecar."""
    return (not name.startswith(".") and not name.endswith(_NEVER_OURS)
            and not name.endswith(SIDECAR_SUFFIX) and "\x00" not in name
            and _matcher(pattern)(name) is not None)


@functools.lru_cache(maxsize=32)
def _matcher(pattern: str):
    """fnmatchcase, compiled once: it runs for every name of every scan."""
    return re.compile(fnmatch.translate(pattern)).match


def name_problem(name: str) -> Optional[str]:
    """Why a candidate name cannot be taken (it is then left alone in the inbox), or None.

    A name that is not UTF-8 cannot be written into the sidecar, journal or logs faithfully;
    one longer than MAX_NAME_BYTES cannot have its ``.redox.json`` sidecar beside it.
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:          # undecodable bytes, kept by os.listdir as surrogates
        return "its name is not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"its name is {size} bytes long; at most {MAX_NAME_BYTES} leave room for the sidecar"
    return None


def candidates(name: str) -> Iterator[str]:
    """``a.json``, then ``a-1.json``, ``a-2.json``, ... (the suffix keeps the extension).

    A long name is shortened (deterministically, at a character boundary) just enough for the
    suffix and the sidecar's ``.redox.json`` to fit in NAME_MAX (the sidecar's ``name`` field
    keeps the original).
    """
    yield name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(1, 100000):
        yield fit("", stem, f"-{n}.{ext}" if ext else f"-{n}")


def fit(prefix: str, stem: str, suffix: str) -> str:
    """``prefix + stem + suffix`` with ``stem`` cut short so the result is at most
    MAX_NAME_BYTES long in UTF-8."""
    room = MAX_NAME_BYTES - len((prefix + suffix).encode("utf-8"))
    cut = stem.encode("utf-8")[:max(0, room)].decode("utf-8", "ignore")
    return prefix + cut + suffix


def printable(name: str) -> str:
    """A name as it can be logged: undecodable bytes shown as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def original_name(slot_name: str) -> str:
    """The inbox name of a file in a claim folder (``.2~a.json`` was ``a.json``)."""
    head, sep, rest = slot_name[1:].partition("~") if slot_name.startswith(".") else ("", "", "")
    return rest if sep and head.isdigit() and rest else slot_name
