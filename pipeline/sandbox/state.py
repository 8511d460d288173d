"""Shared mutable sandbox state: the fault settings and what the sandbox has seen.

Handler threads share one `State`; every public method takes its single lock, so callers never
see a half-applied fault update or a torn record list. Nothing here touches the network or disk.
"""

from __future__ import annotations

import collections
import copy
import datetime
import itertools
import random
import threading
import time
import uuid

from .faults import FAULT_DEFAULTS, validate_faults
from .wire import parse_json

# Records are capped so a long benchmark cannot grow the process without bound; `counts` keeps
# the true totals since the last reset.
MAX_RECORDS = 100_000
# SEND bodies are kept for `GET /_sandbox/records?bodies=1` only when small, and only up to a
# total budget; the oldest bodies are forgotten first.
BODY_KEEP_LIMIT = 1024 * 1024
BODY_BUDGET = 64 * 1024 * 1024
RECORD_KINDS = ("sends", "uploads", "token_requests", "log_lookups")


def iso_utc(epoch: float) -> str:
    """Format an epoch time as ISO-8601 UTC with milliseconds and a `Z` suffix."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class State:
    """Faults, records, issued Log IDs and uploaded blobs, behind one lock.

    `initial_faults` (already validated or not) are the values `reset()` returns to, so a sandbox
    started with `--latency-ms 50` keeps that latency across resets.
    """

    def __init__(self, initial_faults: dict | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = {**FAULT_DEFAULTS, **validate_faults(initial_faults or {})}
        self._ids = itertools.count(1)
        self._logs: dict[str, tuple] = {}
        self._blobs: dict[str, tuple] = {}
        self.reset()

    # -- faults -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Restore the start-up faults, reseed the RNG and clear records and rate windows.

        Issued tokens, Log IDs and blobs survive: clients holding them keep working.
        """
        with self._lock:
            self._faults = copy.deepcopy(self._initial)
            self._rng = random.Random(self._faults["seed"])
            self._window: collections.deque[float] = collections.deque()
            self._records: dict[str, collections.deque[dict]] = {
                k: collections.deque(maxlen=MAX_RECORDS) for k in RECORD_KINDS}
            self._counts = dict.fromkeys(RECORD_KINDS, 0)
            self._tokens_issued = 0
            self._kept_bodies: collections.deque[dict] = collections.deque()
            self._kept_bytes = 0

    def faults(self) -> dict:
        """Return a deep copy of the current fault set (safe to serialise or mutate)."""
        with self._lock:
            return copy.deepcopy(self._faults)

    def update_faults(self, updates: dict) -> dict:
        """Validate `updates`, merge them into the faults and return the full new fault set.

        Raises `ValueError` (nothing applied) when a name is unknown or a value invalid. Setting
        `seed` reseeds the RNG.
        """
        clean = validate_faults(updates)
        with self._lock:
            self._faults.update(clean)
            if "seed" in clean:
                self._rng = random.Random(clean["seed"])
            return copy.deepcopy(self._faults)

    def fault(self, name: str):
        """Return one fault value (the live object: treat as read-only)."""
        with self._lock:
            return self._faults[name]

    def take_next(self, queue: str):
        """Pop and return the first item of fault list `queue` (a status of `fail_next`, a mode
        of `send_wire_next`, ...), or None when it is empty."""
        with self._lock:
            pending = self._faults[queue]
            return pending.pop(0) if pending else None

    def roll(self, rate_name: str) -> bool:
        """Return True with probability `faults[rate_name]`, from the seeded RNG."""
        with self._lock:
            rate = self._faults[rate_name]
            return rate > 0 and self._rng.random() < rate

    def admit(self) -> bool:
        """Count one rate-limited request; False when the sliding 1-second window is full.

        Refused requests are not counted, so a client that backs off gets back in.
        """
        with self._lock:
            limit = self._faults["rate_limit_per_second"]
            if not limit:
                return True
            now = time.monotonic()
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= limit:
                return False
            self._window.append(now)
            return True

    # -- ids, logs and blobs ------------------------------------------------------------------

    def next_id(self) -> int:
        """Return a fresh positive integer (message and error IDs)."""
        with self._lock:
            return next(self._ids)

    def issue_logs(self, count: int, marker) -> list[dict]:
        """Issue `count` Log entries `{"ID", "AttemptID"}` tied to `marker` for later lookups."""
        now = time.time()
        logs = [{"ID": str(uuid.uuid4()), "AttemptID": str(uuid.uuid4())} for _ in range(count)]
        with self._lock:
            for log in logs:
                self._logs[log["ID"]] = (log["AttemptID"], now, marker)
        return logs

    def log_result(self, log_id: str) -> dict | None:
        """Return the Platform API `result` for an issued Log ID, or None when unknown.

        The status comes from, in order: `delivery_overrides[log_id]`, the SEND's marker being
        in `delivery_fail_marker` (failed) or `delivery_pending_marker` (pending), else
        `delivery_status`.
        """
        with self._lock:
            entry = self._logs.get(log_id)
            if entry is None:
                return None
            attempt_id, at, marker = entry
            status = self._faults["delivery_overrides"].get(log_id)
            if status is None and marker is not None:
                if marker in self._faults["delivery_fail_marker"]:
                    status = "failed"
                elif marker in self._faults["delivery_pending_marker"]:
                    status = "pending"
            status = status or self._faults["delivery_status"]
        latest = {"id": attempt_id, "attemptAt": iso_utc(at), "status": status}
        return {"id": log_id, "attempts": {"total": 1, "latest": latest}}

    def add_blob(self, source: str, size: int, sha256: str) -> str:
        """Remember an uploaded file's metadata and return its new blob id."""
        blob_id = str(uuid.uuid4())
        with self._lock:
            self._blobs[blob_id] = (source, size, sha256)
        return blob_id

    def blob(self, blob_id: str) -> tuple[str, int, str] | None:
        """Return `(source, size, sha256)` for an issued blob id, or None."""
        with self._lock:
            return self._blobs.get(blob_id)

    # -- records ------------------------------------------------------------------------------

    def record(self, kind: str, entry: dict, body: bytes | None = None) -> None:
        """Append `entry` (with an `at` timestamp added) to the `kind` records.

        `body`, when given and under BODY_KEEP_LIMIT, is kept for `records(bodies=True)`.
        """
        entry["at"] = time.time()
        with self._lock:
            self._records[kind].append(entry)
            self._counts[kind] += 1
            if kind == "token_requests" and entry["status"] == 200:
                self._tokens_issued += 1
            if body is not None and len(body) < BODY_KEEP_LIMIT:
                self._keep_body(entry, body)

    def _keep_body(self, entry: dict, body: bytes) -> None:
        # Caller holds the lock. Oldest bodies go first once the budget is spent.
        entry["_raw"] = body
        self._kept_bodies.append(entry)
        self._kept_bytes += len(body)
        while self._kept_bytes > BODY_BUDGET:
            old = self._kept_bodies.popleft()
            self._kept_bytes -= len(old.pop("_raw", b""))

    def records(self, bodies: bool = False) -> dict:
        """Return a JSON-ready snapshot of all records (shape: see control.py).

        With `bodies`, each SEND record gains `body`: its parsed JSON when kept, else None.
        """
        with self._lock:
            lists = {k: [dict(e) for e in self._records[k]] for k in RECORD_KINDS}
            tokens_issued = self._tokens_issued
            counts = dict(self._counts)
        for entry in lists["sends"]:
            raw = entry.pop("_raw", None)
            if bodies:
                entry["body"] = parse_json(raw)
        return {**lists, "tokens_issued": tokens_issued, "counts": counts}
