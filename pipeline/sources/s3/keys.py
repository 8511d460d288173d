"""Which keys below the S3 prefix count, and how folder prefixes are written (shared by the
S3 store, its recovery and its view)."""

from __future__ import annotations

from pipeline.names import is_candidate_name


def is_ours(name: str, pattern: str) -> bool:
    """A key below the prefix counts when its base name does (the local rule: not hidden,
    temporary or a sidecar) and no folder on its path is hidden (``.leases/``, ``.tmp/``)."""
    parts = name.split("/")
    return (bool(name) and all(p and not p.startswith(".") for p in parts[:-1])
            and is_candidate_name(parts[-1], pattern))


def visible(rel: str) -> bool:
    """Not empty, and nothing on the path hidden (a lease, a probe, a temp object)."""
    return bool(rel) and not any(part.startswith(".") for part in rel.split("/"))


def folder_prefix(value: str) -> str:
    """A key prefix that names a folder: no leading ``/``, one trailing ``/`` (unless empty)."""
    value = value.strip("/")
    return value + "/" if value else ""
