"""Finishing a claimed local file, mixed into LocalStore: the sidecar first, then the file
moved beside it (that move is the commit point), and the batched directory fsyncs that make
the moves durable.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from pipeline import failpoints, sidecar
from pipeline.errors import ClaimLost, StorageError
from pipeline.names import candidates as _candidates
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.local import fsops, paths
from pipeline.sources.local.claims import ClaimFolders
from pipeline.values import Claim

SYNC_INTERVAL = 0.5   # seconds between directory fsyncs of one output folder


class Finishing:
    """The finish half of LocalStore (its output folders, claim folder and sync books)."""

    folders: dict[str, str]
    claims: ClaimFolders
    _synced: dict[str, float]
    _dirty: set[str]

    # -- finish ----------------------------------------------------------------------------
    def finish(self, claim: Claim, status: str, sidecar: bytes, claim_id: str) -> str:
        """Write the sidecar, then move the file beside it: that move is the commit point.

        Never overwrites: a taken name gets a ``-N`` suffix. A sidecar left by our own earlier,
        interrupted finish (same ``claim_id``, no file beside it) is reused. Returns the path.
        """
        sub, base = paths.split(claim.name)
        folder = paths.join(self.folders[status], sub)
        if not os.path.isdir(folder):       # removed while we run (or a new subfolder): made
            fsops.ensure_dir(folder)
        for candidate in _candidates(base):
            dest = os.path.join(folder, candidate)
            if os.path.lexists(dest):
                if _sidecar_claim_id(dest + SIDECAR_SUFFIX) == claim_id:
                    # ours already (see _already_moved): a crash between link and unlink
                    fsops.unlink_quietly(claim.location)
                    return dest
                continue
            if not self._write_sidecar(dest, sidecar, claim_id):
                continue
            failpoints.reached("after_sidecar")
            try:
                fsops.move_noreplace(claim.location, dest)
            except FileExistsError:
                fsops.unlink_quietly(dest + SIDECAR_SUFFIX)
                continue
            except ClaimLost:
                raise
            except (OSError, StorageError) as exc:
                # no sidecar without its file: take ours back; the file stays claimed
                fsops.unlink_quietly(dest + SIDECAR_SUFFIX)
                why = exc.strerror if isinstance(exc, OSError) else str(exc).split(":")[0]
                raise StorageError(f"cannot move the file to {status} ({why})", dest) from None
            self._sync_soon(folder)
            self.claims.tidy(claim.location)
            return dest
        raise StorageError("no free name to finish to", folder)  # pragma: no cover

    @staticmethod
    def _already_moved(dest: str, claim_id: str) -> bool:
        """Our sidecar is written before our move, so a file beside a sidecar that carries our
        claim_id is ours: an earlier finish got as far as the move and was interrupted."""
        return os.path.lexists(dest) and _sidecar_claim_id(dest + SIDECAR_SUFFIX) == claim_id

    def find_finished(self, name: str, status: str, claim_id: str,
                      location: Optional[str]) -> Optional[str]:
        """Where an interrupted finish put the file ``name`` for ``claim_id``, if it got there
        (None while the file still lies at ``location``: its owner, or our adoption, finishes it)."""
        if location and os.path.lexists(location):
            return None
        sub, base = paths.split(name)
        for candidate in _candidates(base):
            dest = os.path.join(paths.join(self.folders[status], sub), candidate)
            if not os.path.lexists(dest + SIDECAR_SUFFIX):
                return None
            if self._already_moved(dest, claim_id):
                return dest
        return None  # pragma: no cover

    def _sync_soon(self, folder: str) -> None:
        """Make moves into ``folder`` durable, batched: at most one directory fsync per folder
        every SYNC_INTERVAL (and at close). A file's own bytes and its sidecar are fsynced
        before the move, so what a power cut can undo is only a recent move, which leaves the
        file in processing/ for recovery: nothing is lost."""
        now = time.monotonic()
        if now - self._synced.get(folder, 0.0) >= SYNC_INTERVAL:
            self._synced[folder] = now
            fsops.fsync_dir(folder)
        else:
            self._dirty.add(folder)

    def _write_sidecar(self, dest: str, sidecar: bytes, claim_id: str) -> bool:
        """Write the sidecar for ``dest`` (a free name): False when that name's sidecar
        belongs to another file."""
        path = dest + SIDECAR_SUFFIX
        try:
            fsops.write_atomic(path, sidecar, replace=False)
            return True
        except FileExistsError:
            if _sidecar_claim_id(path) != claim_id:
                return False
        except OSError as exc:
            raise StorageError(f"cannot write sidecar ({exc.strerror})", path) from None
        try:
            fsops.write_atomic(path, sidecar, replace=True)   # ours, from an interrupted finish
        except OSError as exc:
            raise StorageError(f"cannot write sidecar ({exc.strerror})", path) from None
        return True


def _sidecar_claim_id(path: str) -> str | None:
    """The claim_id of the sidecar at ``path``; None when there is none, it is not a regular
    file (a FIFO there would block the read: it is not ours) or not one of ours."""
    try:
        with fsops.open_regular(path) as handle:
            doc = sidecar.read(handle)
    except (OSError, StorageError):
        return None
    return doc.get("claim_id") if doc else None
