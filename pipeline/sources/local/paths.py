"""Names with folders: a local file's name is its path below the inbox, ``/``-separated.

With ``source.recursive`` the inbox's subfolders count the way S3 keys below the prefix do:
``lab/2024/a.json`` keeps that path in processing/<owner>/, done/ and failed/, in the journal,
the sidecar and the logs. Hidden folders (a leading dot) never count, symlinked folders are
never followed, and two files of the same name in different folders are different files.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator, Optional

from pipeline import names
from pipeline.names import NAME_MAX, is_candidate_name


def split(name: str) -> tuple[str, str]:
    """(folder, base name): ``a/b/c.json`` → (``a/b``, ``c.json``); no folder → ("", name)."""
    folder, _, base = name.rpartition("/")
    return folder, base


def join(root: str, name: str) -> str:
    """The filesystem path of ``name`` (``/``-separated) below ``root``."""
    return os.path.join(root, *name.split("/")) if name else root


def shape_problem(name: str, recursive: bool) -> Optional[str]:
    """Why ``name`` can never be an inbox name (a path outside the inbox, a hidden folder, a
    folder at all when not recursive), or None. Names from events and look-ups pass here."""
    parts = name.split("/")
    if len(parts) > 1 and not recursive:
        return "in a subfolder (source.recursive is false)"
    if any(p in ("", ".", "..") for p in parts):
        return "not a plain path below the inbox"
    if any(p.startswith(".") for p in parts[:-1]):
        return "in a hidden folder"
    return None


def is_candidate(name: str, pattern: str, recursive: bool) -> bool:
    """A path whose base name counts (``pattern``, never hidden or temporary) and whose folders
    are not hidden."""
    return shape_problem(name, recursive) is None and is_candidate_name(split(name)[1], pattern)


def name_problem(name: str) -> Optional[str]:
    """Why a candidate path cannot be taken (it is then left alone), or None: it must be UTF-8
    (journal, sidecar, logs), its base name must leave room for the sidecar's suffix."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:          # undecodable bytes, kept by os.listdir as surrogates
        return "its name is not valid UTF-8"
    folder, base = split(name)
    why = names.name_problem(base)
    if why:
        return why
    if any(len(p.encode("utf-8")) > NAME_MAX for p in folder.split("/") if folder):
        return "a folder name on its path is too long"   # pragma: no cover - the OS refuses first
    return None


def walk(root: str, recursive: bool) -> Iterator[tuple[str, os.DirEntry]]:
    """(name, entry) of what lies in ``root`` (lazily, one folder at a time): everything at the
    top, and with ``recursive`` what lies in subfolders (hidden ones skipped, symlinks to
    folders not followed). Folders themselves are yielded only when not recursive, so the
    caller can say why a name that counts is left alone. OSError when ``root`` cannot be
    listed; a subfolder that vanishes or cannot be listed meanwhile is skipped."""
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            listing = os.scandir(join(root, rel))
        except OSError:
            if not rel:
                raise
            continue
        with listing:
            for entry in listing:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if recursive and _is_dir(entry):
                    if not entry.name.startswith("."):
                        pending.append(name)
                    continue
                yield name, entry


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return False


def tidy(root: str, folder: str) -> None:
    """Remove ``folder`` (below ``root``) and then its parents while they are empty, never
    ``root`` itself. A folder someone is filling meanwhile is simply not empty, or is made
    again by whoever needs it (claims retry a rename whose folder vanished)."""
    while folder:
        try:
            os.rmdir(join(root, folder))
        except OSError:
            return
        folder = split(folder)[0]


def ensure_parent(root: str, name: str) -> str:
    """The path of ``name`` below ``root``, its folder created if missing (process umask)."""
    path = join(root, name)
    folder = split(name)[0]
    if folder:
        os.makedirs(join(root, folder), exist_ok=True)
    return path


def regular_candidates(root: str, pattern: str, recursive: bool) -> Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of each regular file below ``root`` whose name counts (:func:`is_candidate`):
    what ``run`` would take. Symlinks, FIFOs and folders are left out, and so is an entry that
    vanishes meanwhile. OSError when ``root`` cannot be listed (:func:`walk`)."""
    for name, entry in walk(root, recursive):
        if not is_candidate(name, pattern, recursive):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            yield name, info
