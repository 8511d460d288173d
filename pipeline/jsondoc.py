"""Reading a JSON document that ought to be an object — Redox's replies, sidecars, leases —
without trusting it: anything that is not valid JSON, or not an object, reads as None."""

from __future__ import annotations

import json
from typing import Optional, Union


def parse_object(raw: Union[bytes, str]) -> Optional[dict]:
    """``raw`` parsed as a JSON object; None when it is not JSON or not an object."""
    try:
        value = json.loads(raw)
    except ValueError:          # bad JSON, and bytes that are not UTF-8
        return None
    return value if isinstance(value, dict) else None
