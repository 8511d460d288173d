"""The finished files in ``folders.done``, as delivery confirmation sees them (a storage seam).

Reconcile needs three things from wherever done files live: list them, read a sidecar, and
replace a sidecar atomically. ``LocalDoneFolder`` does that for local folders; an S3 store can
offer the same three methods. A file is named by its ``ref``: its path below the done folder
with ``/`` separators (date subfolders included), the same for every kind of store.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator, Optional

from pipeline.errors import StorageError
from pipeline.jsondoc import parse_object
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.local import fsops

MAX_SIDECAR_BYTES = 16 * 1024 * 1024   # a sidecar holds names and IDs; anything bigger is not ours


class LocalDoneFolder:
    """``folders.done`` on the local filesystem. Never follows symlinks."""

    def __init__(self, root: str):
        self.root = root

    def refs(self) -> Iterator[str]:
        """Every finished file that has its sidecar beside it, as a ref.

        A sidecar whose file is not (yet) there is skipped: finish writes the sidecar first and
        moves the file second, so that sidecar still belongs to a finish in progress.
        Hidden names (temp files, ``.tmp-*``) are never refs.
        """
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            names = set(files)
            for name in sorted(files):
                if name.startswith(".") or not name.endswith(SIDECAR_SUFFIX):
                    continue
                base = name[: -len(SIDECAR_SUFFIX)]
                if base in names and _is_regular(os.path.join(folder, base)):
                    rel = os.path.relpath(os.path.join(folder, base), self.root)
                    yield rel.replace(os.sep, "/")

    def where(self, ref: str) -> str:
        """The file's path, for logs and reports."""
        return os.path.join(self.root, *ref.split("/"))

    def read_sidecar(self, ref: str) -> Optional[dict]:
        """The sidecar as a dict; None when it is gone, not a regular file or not a JSON object."""
        path = self.where(ref) + SIDECAR_SUFFIX
        try:
            with fsops.open_regular(path) as handle:
                raw = handle.read(MAX_SIDECAR_BYTES + 1)
        except (StorageError, OSError):
            return None
        if len(raw) > MAX_SIDECAR_BYTES:
            return None
        return parse_object(raw)

    def write_sidecar(self, ref: str, data: bytes) -> bool:
        """Replace the sidecar atomically (temp name, fsync, rename). False when the file it
        describes is no longer there (moved away meanwhile): nothing is written then.
        Raises StorageError when the write fails."""
        path = self.where(ref)
        if not _is_regular(path):
            return False
        try:
            fsops.write_atomic(path + SIDECAR_SUFFIX, data, replace=True)
        except OSError as exc:
            raise StorageError(f"cannot rewrite sidecar ({exc.strerror})", path + SIDECAR_SUFFIX) from None
        return True


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
