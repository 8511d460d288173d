"""route: a pure decision on how a checked file travels.

Up to ``send_limit_bytes`` a file is sent as it is. A larger one takes Redox's Transferring
Files path: its embedded documents are uploaded and replaced by URIs, then the
small message is sent. What cannot travel either way is rejected with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Decision:
    action: str                    # "send" | "transfer" | "reject"
    reason: Optional[str] = None   # for "reject": the sidecar's error text
    kind: Optional[str] = None     # for "reject": the reason class


def route(size: int, send_limit: int, can_transfer: bool) -> Decision:
    """``size`` is the file's size as dropped. ``can_transfer``: is the upload path available."""
    if size <= send_limit:
        return Decision("send")
    if can_transfer:
        return Decision("transfer")
    return Decision("reject", f"file is {size} bytes, over the send limit of {send_limit} bytes, "
                              "and cannot take the Transferring Files path", "too_large")
