"""Named crash points, so the crash-safety tests can kill a real process at an exact step.

``PIPELINE_FAILPOINT=name`` (or ``name:N`` for the N-th time the point is reached) makes the
process SIGKILL itself there: no cleanup, no flush, exactly like a power cut or ``kill -9`` at
that instruction. Unset (always, in production) a point costs one dict look-up.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("PIPELINE_FAILPOINT", "")
_NAME, _, _NTH = _SPEC.partition(":")
_count = 0
_lock = threading.Lock()

POINTS = ("after_claim", "after_upload", "before_send", "after_send", "after_accept", "after_sidecar",
          "after_link", "after_move")


def reached(name: str) -> None:
    """Die here if the environment asked for it."""
    global _count
    if not _NAME or name != _NAME:
        return
    with _lock:
        _count += 1
        if _count < int(_NTH or 1):
            return
    os.kill(os.getpid(), signal.SIGKILL)
