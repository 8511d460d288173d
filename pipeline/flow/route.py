"""route: a pure decision on how a checked message travels.

Redox's limit applies to the SEND body, Meta.Destinations written in, not to the file as it was
dropped: a file just under the limit can make a body just over it. So the body is built first
and routed by its own size: up to ``send_limit_bytes`` it is sent as it is; a larger one takes
Redox's Transferring Files path (its embedded documents are uploaded and replaced by URIs, then
the small message is sent); what cannot travel either way is rejected with the reason (never
sent to be refused with a 413).

A file already over the limit on disk is routed by that size before it is read: it is never
read whole (the transfer path streams it), and only that path can take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass(frozen=True)
class Decision:
    action: str                    # "send" | "transfer" | "reject"
    reason: Optional[str] = None   # for "reject": the sidecar's error text
    kind: Optional[str] = None     # for "reject": the reason class


def route(size: int, send_limit: int, can_transfer: bool,
          measured: Literal["body", "file"] = "body") -> Decision:
    """``size``: the SEND body's size (``measured="body"``), or the file's size as dropped
    (``"file"``: then "send" only means "small enough to read and build its body").
    ``can_transfer``: is the upload path available."""
    if size <= send_limit:
        return Decision("send")
    if can_transfer:
        return Decision("transfer")
    what = (f"file is {size} bytes" if measured == "file"
            else f"message is {size} bytes with Meta.Destinations set")
    return Decision("reject", f"{what}, over the send limit of {send_limit} bytes, and cannot "
                              "take the Transferring Files path", "too_large")
