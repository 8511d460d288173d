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
