"""Deterministic crash points for the crash tests: ``PIPELINE_TEST_CRASH_AT=<point>``.

The one place the pipeline reads a test-only setting. When the environment variable names the
point just reached, the process kills itself with SIGKILL: no cleanup and no ``finally``
blocks run, as with a power cut or the OOM killer, so a test can show that a restart completes
the work without repeating what was already done. Unset (always, in production) it does nothing.

Points: ``after_upload`` (transfer.py: a document's URI is saved in the journal, the next
upload or the SEND has not started).
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINE_TEST_CRASH_AT"


def reached(point: str) -> None:
    """Die here, at once, when the crash tests asked for ``point``."""
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
