"""Times as operators type and read them. Everything is UTC.

``--since`` accepts a date (``2024-05-01``, midnight UTC), a date and time
(``2024-05-01T13:30``, ``2024-05-01 13:30:00+02:00``; UTC unless it names an offset), or an
age (``90m``, ``36h``, ``7d``: that long before now).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Optional

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> float:
    """Epoch seconds for a ``--since`` value. ValueError with a readable sentence otherwise."""
    match = _AGE.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2).lower()]
    stamp = parse_iso(text.strip())
    if stamp is None:
        raise ValueError(f"--since {text!r}: expected a date (2024-05-01), a date and time "
                         "(2024-05-01T13:30, UTC unless an offset is given) or an age (36h, 7d)")
    return stamp


def parse_iso(text) -> Optional[float]:
    """Epoch seconds of an ISO 8601 date or datetime (naive = UTC), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def iso(epoch: Optional[float]) -> Optional[str]:
    """The one way the project writes a time: ``2024-05-01T13:30:00.250Z`` (UTC, milliseconds),
    or None. Sidecars, the journal's reports, status and logs all use it."""
    if epoch is None:
        return None
    stamp = datetime.fromtimestamp(epoch, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def day(epoch: float) -> str:
    """The UTC day of ``epoch``: ``2024-05-01``."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d")


def duration(seconds: Optional[float]) -> str:
    """A short human duration: ``850ms``, ``12.3s``, ``4m 05s``, ``3h 02m``, ``2d 04h``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"
