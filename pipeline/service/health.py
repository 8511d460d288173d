"""``GET /healthz``: is the service doing its job? Judged from the run's pulse (flow/pulse.py).

200 with a small JSON body while the loop turns and Redox answers (or nothing needs sending);
503 with every reason that holds, the first one also as ``reason``:

- ``credentials``: Redox (or the source) refused the credentials (the service is stopping);
- ``breaker``: the circuit breaker has been open for ``health.breaker_open_minutes``;
- ``redox``: files wait, and Redox has not answered for ``health.redox_silent_minutes``;
- ``storage``: the last journal write or finish failed (a folder missing, unwritable or full),
  until a file finishes again;
- ``loop``: the main loop has not turned for ``health.loop_stall_seconds``.

The body holds states and reasons only: never a secret, never message content.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from pipeline import __version__
from pipeline.flow.pulse import Pulse


class Health:
    """``check()`` → (HTTP status, body). ``settings`` is the config's ``health`` section."""

    def __init__(self, pulse: Pulse, settings, mono: Callable[[], float] = time.monotonic):
        self.pulse, self.settings, self.mono = pulse, settings, mono
        self.started = mono()

    def check(self) -> tuple[int, dict]:
        snap, cfg = self.pulse.snapshot(), self.settings
        reasons = []
        if snap.refused:
            reasons.append(("credentials", f"the credentials were refused: {snap.refused}"))
        if snap.breaker_open_for is not None and snap.breaker_open_for >= cfg.breaker_open_minutes * 60:
            reasons.append(("breaker", f"the circuit breaker has been open for {snap.breaker_open_for:.0f}s"
                                       + _last(snap.last_error)))
        silent = snap.since_answer if snap.since_answer is not None else snap.now - self.started
        if snap.busy and silent >= cfg.redox_silent_minutes * 60:
            reasons.append(("redox", f"files are waiting and Redox has not answered for {silent:.0f}s"
                                     + _last(snap.last_error)))
        if snap.storage_error:
            reasons.append(("storage", f"writes are failing: {snap.storage_error}"))
        if snap.since_turn >= cfg.loop_stall_seconds:
            reasons.append(("loop", f"the main loop has not turned for {snap.since_turn:.0f}s"))
        body: dict = {"status": "unhealthy" if reasons else "ok"}
        if reasons:
            body["reason"] = reasons[0][1]
            body["reasons"] = [{"check": check, "detail": detail} for check, detail in reasons]
        body.update({
            "version": __version__,
            "uptime_seconds": round(snap.now - self.started, 1),
            "loop_turned_seconds_ago": round(snap.since_turn, 1),
            "redox_answered_seconds_ago": _round(snap.since_answer),
            "breaker_open_seconds": _round(snap.breaker_open_for),
            "busy": snap.busy,
        })
        return (503 if reasons else 200), body


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 1)


def _last(error: Optional[str]) -> str:
    return f" (last error: {error})" if error else ""
