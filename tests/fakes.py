"""Shared test doubles: the fakes unit tests inject in place of a clock, the Redox client, the
storage seam or a stream. Each one is as small as the tests need and behaves the same wherever
it is used; a fake that only one test needs stays in that test.

- ``Clock``: a clock that stands still until told (``advance()``, or set ``now``).
- ``FakeTokens``, ``FakeClient``: a Redox client that accepts every SEND and keeps the bodies.
- ``FlakyFinish``, ``UnreadableStore``: a LocalStore whose finish() fails a few times, or which
  refuses to open one name, as a full or unwritable folder and the kernel would.
- ``NonSeekableStream``: a read-only stream that cannot seek, like an S3 object's body.
- ``SizedStream``: an in-memory stream that knows its length, like an open file.
"""

from __future__ import annotations

import io

from pipeline.errors import StorageError, Unreadable
from pipeline.sources.local.store import LocalStore
from pipeline.values import Sent


class Clock:
    """A clock for ``clock=``, ``wall=`` or ``mono=`` seams: it returns ``now`` and moves only
    when a test moves it."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        self.now += seconds
        return self.now

    def sleep(self, seconds: float) -> None:
        """A ``sleep=`` seam: sleeping moves the clock, nothing waits."""
        self.now += seconds


# -- Redox ---------------------------------------------------------------------------------------


class FakeTokens:
    """A token source that always has the same token (invalidating it changes nothing)."""

    def token(self) -> str:
        return "token"

    def invalidate(self, token: str) -> None:
        pass


class FakeClient:
    """Accepts every SEND and remembers the bodies."""

    def __init__(self):
        self.tokens = FakeTokens()
        self.bodies: list[bytes] = []

    def send(self, body: bytes, departing=None, destinations=0) -> Sent:
        if departing is not None:
            departing()
        self.bodies.append(body)
        return Sent(200, ({"ID": f"log-{len(self.bodies)}", "AttemptID": "a"},), 0.001)


# -- the storage seam ------------------------------------------------------------------------------


class FlakyFinish(LocalStore):
    """finish() fails ``failures`` times (a full or unwritable folder), then works."""
    failures = 2

    def finish(self, claim, status, sidecar, claim_id):
        if self.failures:
            self.failures -= 1
            raise StorageError("cannot write sidecar (No space left on device)", "done/x")
        return super().finish(claim, status, sidecar, claim_id)


class UnreadableStore(LocalStore):
    """The storage seam refusing to open one name, as the kernel does for a non-root process."""

    def open(self, claim):
        if claim.name == "locked.json":
            raise Unreadable("cannot read the file (Permission denied)", claim.location)
        return super().open(claim)


# -- streams ---------------------------------------------------------------------------------------


class NonSeekableStream(io.RawIOBase):
    """A read-only, non-seekable stream, like an S3 object's body."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


class SizedStream(io.BytesIO):
    """An in-memory body that knows its length, as an open file does."""

    def __len__(self):
        return len(self.getvalue())
