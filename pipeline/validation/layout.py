"""Which file in the schemas folder is the schema of which (DataModel, EventType).

Two layouts are accepted, and may be mixed:

* ``PatientAdmin/NewPatient.json``: a folder per data model, a file per event type, named as in
  ``Meta.DataModel`` and ``Meta.EventType``;
* Redox's own download (``schemas.zip``, unpacked): the same shape in lower case, with spaces
  and hyphens kept or dropped as Redox names the file: ``patientadmin/newpatient.json``,
  ``clinicalsummary/patientquery.json``, ``sso/sign-on.json``.

A file is matched to a message by its parent folder's name and its own name without ``.json``,
compared after :func:`normalise` (case-folded, letters and digits only), so ``Sign-On`` finds
``sign-on.json`` and ``Clinical Summary`` finds ``clinicalsummary/``. Files may sit at any depth
(the folder may be the unpacked download's parent, or hold a version folder): only the last two
parts of the path count. Files directly in the folder are not event schemas; they, and every
other file, can be the target of a ``$ref`` (shared definitions). Dot files and dot folders are
skipped. Two files that map to the same key are an error: the folder does not say which to use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

KEY = "validation.schemas"
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def normalise(name: str) -> str:
    """The form in which a data model or event type name is compared: ``"Sign-On"`` → ``"signon"``."""
    return _NOT_ALNUM.sub("", name.casefold())


@dataclass(frozen=True)
class Layout:
    """What :func:`scan` found. ``events`` maps (normalised DataModel, normalised EventType) to
    the file holding that schema; ``files`` is every ``.json`` file (event schemas and shared
    definitions alike), in a stable order."""
    folder: Path
    events: dict[tuple[str, str], Path]
    files: tuple[Path, ...]

    def shown(self, path: Path) -> str:
        """``path`` as operators see it in errors: relative to the folder, with ``/``."""
        return path.relative_to(self.folder).as_posix()


def scan(folder: str | os.PathLike[str]) -> Layout:
    """List the schema files under ``folder`` and key the event schemas.

    Raises ConfigError (``validation.schemas: <path>: <what is wrong>``) when the folder is
    missing, not a folder or unreadable, when two files claim one (DataModel, EventType), or
    when no event schema is found at all (a wrong folder, or files not laid out as above).
    Reads directory entries only, no file contents.
    """
    root = Path(folder)
    if not root.exists():
        raise ConfigError(f"{KEY}: {root}: no such folder")
    if not root.is_dir():
        raise ConfigError(f"{KEY}: {root}: not a folder")

    def fail(exc: OSError) -> None:
        where = exc.filename or root
        raise ConfigError(f"{KEY}: {where}: cannot be read ({exc.strerror or exc})")

    files: list[Path] = []
    for here, dirs, names in os.walk(root, onerror=fail):
        # in place, so that os.walk skips them; sorted, so that errors and order are stable
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(here, n) for n in sorted(names)
                     if not n.startswith(".") and n.lower().endswith(".json"))
    layout = Layout(root, {}, tuple(files))
    owners: dict[tuple[str, str], Path] = {}
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            continue            # directly in the folder: shared definitions, not an event
        key = (normalise(parts[-2]), normalise(path.stem))
        if not all(key):
            continue            # a name of punctuation only matches no message
        if key in owners:
            raise ConfigError(f"{KEY}: {layout.shown(path)}: the same DataModel/EventType as "
                              f"{layout.shown(owners[key])} (keep one of them, or point "
                              f"{KEY} at one version's folder)")
        owners[key] = path
    if not owners:
        raise ConfigError(f"{KEY}: {root}: holds no <DataModel>/<EventType>.json schema "
                          f"(for example PatientAdmin/NewPatient.json; see docs/validation.md)")
    return Layout(root, owners, tuple(files))
