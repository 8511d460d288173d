"""systemd's notification protocol (``Type=notify``, ``WatchdogSec=``), without a library.

When systemd starts the service it sets ``NOTIFY_SOCKET`` (a Unix datagram socket; ``@`` is the
abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``. The service says ``READY=1``
once it runs, ``WATCHDOG=1`` from its main loop (so a loop that stalls stops the pings and
systemd restarts the service), and ``STOPPING=1`` when it begins to stop. Without
``NOTIFY_SOCKET`` (cron, a terminal, a container) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping, Optional

log = logging.getLogger("pipeline.notify")


class Notifier:
    """Sends notifications to ``environ['NOTIFY_SOCKET']``; ``ping()`` at most every half
    watchdog interval (``WATCHDOG_USEC``, when it is meant for this process)."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None,
                 mono: Callable[[], float] = time.monotonic):
        env = os.environ if environ is None else environ
        self.mono = mono
        path = env.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + path[1:]) if path.startswith("@") else path
        self.interval: Optional[float] = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.interval = int(usec) / 2e6
        self._last_ping = float("-inf")

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, text: str) -> None:
        """One notification; a failure is logged once per call, never raised."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(text.encode())
        except OSError as exc:
            log.warning("cannot notify systemd", extra={"error": exc.strerror or str(exc)})

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")
        self._last_ping = self.mono()

    def stopping(self, status: str) -> None:
        self.send(f"STOPPING=1\nSTATUS={status}")

    def ping(self) -> None:
        """``WATCHDOG=1``, throttled: call it at every loop turn."""
        if self.interval is None:
            return
        now = self.mono()
        if now - self._last_ping >= self.interval:
            self._last_ping = now
            self.send("WATCHDOG=1")
