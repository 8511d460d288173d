"""Test helper: the per-file stages (hostile.Rig) with a real journal whose writes fail on cue,
and a Redox client that raises what it is told to before it accepts."""

from __future__ import annotations

import json
import sqlite3

from hostile import FakeClient, Rig

from pipeline.errors import StorageError
from pipeline.journal import Journal

# an HTTP library's complaint about a token with CR/LF quotes the header: it must go nowhere
SECRET = "tok\r\nX-Injected: Jane Doe MRN 0012345"


class FailingJournal(Journal):
    """A real journal whose named writes fail (as on a full disk) the next ``failures[name]``
    times they are called; ``forever`` makes them fail until it is cleared."""

    def __init__(self, path: str):
        super().__init__(path)
        self.failures: dict[str, int] = {}
        self.forever: set[str] = set()

    def _maybe_fail(self, name: str) -> None:
        if name in self.forever or self.failures.get(name, 0) > 0:
            self.failures[name] = self.failures.get(name, 0) - 1
            raise StorageError("journal: database or disk is full", self.path)

    def attempt_started(self, *args, **kwargs):
        self._maybe_fail("attempt_started")
        return super().attempt_started(*args, **kwargs)

    def attempt_ended(self, *args, **kwargs):
        self._maybe_fail("attempt_ended")
        return super().attempt_ended(*args, **kwargs)

    def finishing(self, *args, **kwargs):
        self._maybe_fail("finishing")
        return super().finishing(*args, **kwargs)

    def finished(self, *args, **kwargs):
        self._maybe_fail("finished")
        return super().finished(*args, **kwargs)


class ScriptedClient(FakeClient):
    """Raises the given exceptions for the first SENDs, in order, then accepts."""

    def __init__(self, *failures: BaseException):
        super().__init__()
        self.failures = list(failures)

    def send(self, body: bytes, departing=None, destinations=0):
        if departing is not None:
            departing()
        if self.failures:
            self.bodies.append(body)
            raise self.failures.pop(0)
        return super().send(body)


def rig_with(tmp_path, client=None) -> Rig:
    rig = Rig(tmp_path)
    rig.journal.close()
    rig.journal = rig.work.journal = FailingJournal(str(tmp_path / "state.db"))
    if client is not None:
        rig.client = rig.work.client = client
    return rig


def sidecar(tmp_path, folder: str, name: str = "a.json") -> dict:
    return json.loads((tmp_path / folder / f"{name}.redox.json").read_bytes())


def open_attempts(rig: Rig) -> list:
    db = sqlite3.connect(rig.root / "state.db")
    try:
        return db.execute("SELECT kind, n FROM attempts WHERE result IS NULL").fetchall()
    finally:
        db.close()
