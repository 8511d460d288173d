"""When a SEND departs: connected first, then its turn at the rate limit, then the journal's
record of the attempt, then the request on the wire.

- A new connection's handshake never sits between the limiter and Redox, so when the
  controller opens many connections at once their requests still reach Redox spaced as the
  limiter let them go (Redox counts arrivals).
- The attempt is recorded once the request has its turn: a process killed while its files wait
  for the limiter never flags them ``possible_duplicate`` (they never left); one killed after
  the record does (it may have reached Redox).
"""

from __future__ import annotations

import json
import socket
import threading

import pytest
from fakes import Clock, FakeTokens
from hostile import Rig
from pipeline_env import message

from pipeline.flow.work import Job
from pipeline.redox.client import RedoxClient, Transport
from pipeline.redox.ratelimit import RateLimiter

DEST = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "EMR"}
BODY = json.dumps({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient",
                            "Destinations": [DEST]}}).encode()
REPLY = json.dumps({"Meta": {"Logs": [{"ID": "log-1", "AttemptID": "a-1"}]}}).encode()



class Server:
    """Keep-alive HTTP on loopback that writes down, in a list shared with the test, when a
    request has arrived."""

    def __init__(self, events: list[str]):
        self.events = events
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length")), 0)
                reader.read(length)
                self.events.append("request")
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(REPLY) + REPLY)

    def close(self) -> None:
        self.sock.close()


def established_to(port: int) -> int:
    """Established TCP connections to 127.0.0.1:``port`` on this machine (Linux's table)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[2].endswith(f":{port:04X}") and row[3] == "01")


class Noting(RateLimiter):
    """No limit; writes down each turn it gives (and how many connections to ``port`` were
    established by then), or dies there (``kill``)."""

    def __init__(self, events: list[str], kill: bool = False, port: int = 0):
        super().__init__(0)
        self.events, self.kill, self.port = events, kill, port

    def acquire(self, patience: float = float("inf")) -> float:
        if self.kill:
            raise Killed()
        self.events.append(f"limiter with {established_to(self.port)} connected")
        return 0.0


class Killed(BaseException):
    """The process dying right here (SIGKILL, as far as the code after it is concerned)."""


@pytest.fixture
def events():
    return []


@pytest.fixture
def server(events):
    srv = Server(events)
    yield srv
    srv.close()


def test_a_request_departs_connected_then_limited_then_recorded(server, events):
    limiter = Noting(events, port=server.port)
    client = RedoxClient(server.url, server.url + "/upload", Transport(2, 5), FakeTokens(), limiter)
    client.send(BODY, lambda: events.append("recorded"))
    client.send(BODY, lambda: events.append("recorded"))    # the connection kept alive
    assert events == ["limiter with 1 connected", "recorded", "request",
                      "limiter with 1 connected", "recorded", "request"]


def test_a_connection_that_cannot_be_made_never_reaches_the_limiter(events):
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()                                     # nothing listens there any more
    client = RedoxClient(url, url + "/upload", Transport(2, 5), FakeTokens(), Noting(events))
    with pytest.raises(Exception) as caught:
        client.send(BODY, lambda: events.append("recorded"))
    assert getattr(caught.value, "maybe_seen", None) is False
    assert events == []


def rig_with(tmp_path, server: Server, limiter: RateLimiter) -> Rig:
    rig = Rig(tmp_path)
    rig.work.client = RedoxClient(server.url, server.url + "/upload", Transport(2, 5), FakeTokens(), limiter)
    return rig


def test_killed_while_waiting_for_the_limiter_is_not_a_possible_duplicate(tmp_path, server, events):
    rig = rig_with(tmp_path, server, Noting(events, kill=True))
    rig.drop("a.json", message("a"))
    job = Job(rig.claim("a.json"))
    with pytest.raises(Killed):
        rig.work.run(job)
    assert "request" not in events
    claim_id = job.held().claim_id
    assert rig.journal.attempts_of(claim_id) == []          # no attempt was ever open
    rig.journal.close_interrupted(claim_id)                 # what the next start does
    assert rig.journal.get(claim_id).possible_duplicate is False
    rig.close()


def test_killed_once_the_attempt_is_recorded_is_a_possible_duplicate(tmp_path, server, events, monkeypatch):
    rig = rig_with(tmp_path, server, Noting(events))
    rig.drop("a.json", message("a"))
    job = Job(rig.claim("a.json"))
    from pipeline import failpoints

    def die(name: str) -> None:
        if name == "before_send":
            raise Killed()
    monkeypatch.setattr(failpoints, "reached", die)
    with pytest.raises(Killed):
        rig.work.run(job)
    assert "request" not in events
    claim_id = job.held().claim_id
    rig.journal.close_interrupted(claim_id)
    assert rig.journal.get(claim_id).possible_duplicate is True
    rig.close()


@pytest.mark.parametrize("shared", [False, True])
def test_a_departure_recorded_late_is_counted_when_it_really_left(tmp_path, shared):
    # two a second: departures at 0 and 0.5 fill the window; the first one was held up
    # (its attempt was being recorded) and really left at 0.3, so the third may not leave
    # before 1.3 (+ the margin), where without the restamp it could at 1.0
    clock = Clock(1000.0)
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep,
                          shared_path=str(tmp_path / "limit") if shared else None)
    limiter.acquire()
    clock.now += 0.3
    limiter.departed(0.3)
    clock.now += 0.2
    limiter.acquire()
    before = clock.now
    limiter.acquire()
    from pipeline.redox.ratebucket import MARGIN
    assert clock.now - before == pytest.approx(0.8 + MARGIN)
