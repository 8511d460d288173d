"""The exit statuses of every command, in one place (the README's tables list them).

``run --once``: OK nothing went to failed/, FAILED something did (or could not be finished),
USAGE bad config or usage (nothing touched), REDOX Redox (or the source) could not be reached,
refused the credentials, or answered nothing but server errors and timeouts. ``reconcile``
adds PENDING: none failed, but some deliveries are still pending.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    REDOX = 3
    PENDING = 4
