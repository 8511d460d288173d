"""Test helper: run the Redox sandbox as a subprocess and steer it over its control API.

`SandboxProcess(*extra_args).start()` runs `python -m pipeline.sandbox --port 0 ...` and waits
for its ready line; `.url` is the base URL. The subprocess gets this checkout's root on
PYTHONPATH, so it works whether or not the package is installed.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import jwt
import requests

REPO = Path(__file__).resolve().parents[1]
READY_PREFIX = "sandbox listening on "
# The private half of the key the sandbox trusts by default (kid sandbox-key, sandbox-client).
DEV_KEY_FILE = REPO / "examples" / "sandbox-client-key.pem"
DEV_KID, DEV_CLIENT_ID = "sandbox-key", "sandbox-client"
LEGACY_API_KEY, LEGACY_SECRET = "sandbox-api-key", "sandbox-secret"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def dev_assertion(url: str) -> str:
    """A fresh client assertion for the sandbox at `url`, signed with the development key."""
    now = int(time.time())
    claims = {"iss": DEV_CLIENT_ID, "sub": DEV_CLIENT_ID, "aud": f"{url}/v2/auth/token",
              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, DEV_KEY_FILE.read_bytes(), algorithm="ES384",
                      headers={"kid": DEV_KID})


def token_form(url: str) -> dict:
    """The form fields of an OAuth token request to the sandbox at `url` (fresh assertion)."""
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": dev_assertion(url)}


class SandboxProcess:
    """One sandbox subprocess. Usable as a context manager; `stop()` is idempotent."""

    def __init__(self, *extra_args: str, startup_timeout: float = 15.0) -> None:
        self.extra_args = [str(a) for a in extra_args]
        self.startup_timeout = startup_timeout
        self.url: str | None = None
        self.proc: subprocess.Popen | None = None
        self._http = requests.Session()

    def start(self) -> "SandboxProcess":
        """Start the subprocess and wait for its ready line. Raises RuntimeError on failure."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "pipeline.sandbox", "--port", "0", *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            line = ""
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"sandbox did not start (exit {self.proc.returncode}): {line!r}")
        self.url = line[len(READY_PREFIX):].strip()
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _control(self, method: str, name: str, **kwargs) -> dict:
        reply = self._http.request(method, f"{self.url}/_sandbox/{name}", timeout=10, **kwargs)
        reply.raise_for_status()
        return reply.json()

    def faults(self, **updates) -> dict:
        """Merge fault settings (names as in pipeline.sandbox.faults); returns the full set."""
        return self._control("POST", "faults", json=updates)

    def reset(self) -> dict:
        """Faults back to start-up values, records cleared; returns the fault set."""
        return self._control("POST", "reset")

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid."""
        self._control("POST", "expire-tokens")

    def records(self, bodies: bool = False) -> dict:
        """What the sandbox saw (sends, uploads, token_requests, log_lookups, ...)."""
        return self._control("GET", "records", params={"bodies": "1"} if bodies else None)

    def oauth_token(self) -> str:
        """An access token from the OAuth endpoint (dev key). Consumes a token_reply_next mode
        and leaves a token_requests record, as any token request does."""
        reply = self._http.post(f"{self.url}/v2/auth/token", data=token_form(self.url),
                                timeout=10)
        reply.raise_for_status()
        return reply.json()["access_token"]

    def peak_rss_bytes(self) -> int:
        """The subprocess's peak resident memory so far (Linux: VmHWM), in bytes."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def stop(self) -> int | None:
        """Terminate the subprocess (SIGTERM, then SIGKILL); returns its exit status."""
        self._http.close()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "SandboxProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _pump(stream, lines: queue.Queue) -> None:
    # Keeps reading after the ready line so the child can never block on a full pipe.
    for line in stream:
        lines.put(line)
    lines.put("")
