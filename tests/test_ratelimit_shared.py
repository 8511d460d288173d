"""One rate limit per host: every process that shares a state folder draws from one budget.

Real processes acquire from one state file and write down when each was let go; the property
checked is on those recorded times (never more than the limit in any one-second window), not
on how long the test took. The rest injects clocks: corrupt and implausible files, a pause
shared between processes, a file replaced under a running process, the fallback when the
file cannot be used, the order threads are served in, and the wiring that makes token
requests and Platform API look-ups count.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from pipeline.errors import TransientDelivery
from pipeline.redox import ratefile, sharedbucket
from pipeline.redox.client import PAUSE_PATIENCE
from pipeline.redox.ratebucket import MARGIN, Paused
from pipeline.redox.ratefile import FILE_SIZE, host_clock
from pipeline.redox.ratelimit import LimitedTransport, RateLimiter
from pipeline.redox.transport import Reply
from pipeline.redox.turns import Turns

REPO = Path(__file__).resolve().parents[1]
HEADER_BYTES = ratefile.HEADER.size + ratefile.CRC.size


class Clock:
    """A clock several limiters share (as processes share CLOCK_MONOTONIC); sleeping moves it."""

    def __init__(self, now: float = 5000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` in any half-open window [t, t + 1) (it suffices to start windows
    at the times themselves)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


def limiter(path, clock: Clock, per_second: float = 10, max_pause: float = 300.0) -> RateLimiter:
    return RateLimiter(per_second, clock=clock, sleep=clock.sleep, max_pause=max_pause,
                       shared_path=str(path))


# -- several processes (real ones) -------------------------------------------------------------

CHILD = r"""
import json, os, sys, time
from pipeline.redox.ratelimit import RateLimiter
path, rate, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
seen = []
def clock():
    # the limiter reads its clock once the file is locked; the last read before acquire()
    # returns is the time it let this request go
    t = time.monotonic()
    seen.append(t)
    return t
limiter = RateLimiter(rate, clock=clock, shared_path=path)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()                      # all start together
granted, returned = [], []
for i in range(count):
    if i == count // 2:                   # the CPU of the second half: warmed up
        cpu = time.process_time()
    limiter.acquire()
    returned.append(time.monotonic())
    granted.append(seen[-1])
cpu = (time.process_time() - cpu) / (count - count // 2)
print(json.dumps({"granted": granted, "returned": returned, "cpu": cpu,
                  "resets": limiter._bucket.resets}))
"""


def start_children(path, rate: float, count: int, processes: int) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(rate), str(count)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env=env, cwd=REPO) for _ in range(processes)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    return children


def results(children: list[subprocess.Popen]) -> list[dict]:
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    out = []
    for child in children:
        stdout, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        out.append(json.loads(stdout))
    return out


@pytest.mark.slow
def test_processes_sharing_a_state_folder_never_exceed_the_limit_in_any_second(tmp_path):
    rate, count, processes = 25, 30, 4         # 120 requests: about five seconds at 25/s
    path = tmp_path / "state.db.ratelimit"
    done = results(start_children(path, rate, count, processes))
    granted = [t for d in done for t in d["granted"]]
    returned = [t for d in done for t in d["returned"]]
    assert len(granted) == count * processes
    # the departures as the limiter let them go, all processes together
    assert busiest_second(granted) <= rate
    # ... and spaced: no two closer than the shared interval allows (a few microseconds of
    # float rounding aside)
    ordered = sorted(granted)
    assert min(b - a for a, b in zip(ordered, ordered[1:])) >= 1 / rate - 1e-6
    # every process was served all along (the oldest waiter first), not one after the other
    first_half = [sum(1 for t in d["granted"] if t < ordered[len(ordered) // 2]) for d in done]
    assert min(first_half) >= count // 4
    # between being let go and the next line of the caller: what MARGIN is for
    lag = max(r - g for r, g in zip(returned, granted))
    print(f"\n{processes} processes, {count * processes} requests at {rate}/s: busiest second "
          f"{busiest_second(granted)} (as let go) / {busiest_second(returned)} (as returned); "
          f"largest lag let-go to return {lag * 1000:.2f} ms (MARGIN {MARGIN * 1000:.0f} ms); "
          f"each process's share of the first half {first_half}")


@pytest.mark.slow
def test_the_cost_of_acquire_per_process(tmp_path):
    """CPU per acquire() in one process alone and in two at once (limit high enough that
    nobody sleeps: the cost of the shared file itself)."""
    path = tmp_path / "state.db.ratelimit"
    alone = results(start_children(path, 1_000_000, 1000, 1))[0]
    pair = results(start_children(path, 1_000_000, 500, 2))
    per_alone = alone["cpu"] * 1e6
    per_pair = max(d["cpu"] for d in pair) * 1e6
    print(f"\nacquire() CPU: {per_alone:.1f} us alone, {per_pair:.1f} us with two processes "
          "contending")
    assert per_alone < 500 and per_pair < 500          # tens of microseconds at most


HOLDER = r"""
import fcntl, os, sys, time
from pipeline.redox.ratelimit import RateLimiter
path = sys.argv[1]
RateLimiter(10, shared_path=path).acquire()          # the file exists and is valid
fd = os.open(path, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, b"\xff" * 20, 0)                       # half-way through rewriting the header
sys.stdout.write("holding\n"); sys.stdout.flush()
time.sleep(600)
"""


@pytest.mark.slow
def test_a_process_killed_while_holding_the_lock_blocks_nobody(tmp_path):
    path = tmp_path / "state.db.ratelimit"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                              text=True, env=env, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "holding"
        waiting = start_children(path, 10, 5, 2)   # they will block on the lock ...
        for child in waiting:
            child.stdin.write("go\n")
            child.stdin.flush()
        holder.send_signal(signal.SIGKILL)          # ... until the kernel drops it with the holder
        holder.wait(timeout=30)
        done = []
        for child in waiting:
            stdout, _ = child.communicate(timeout=120)
            assert child.returncode == 0
            done.append(json.loads(stdout))
    finally:
        holder.kill()
        holder.wait()
    assert sum(len(d["granted"]) for d in done) == 10
    assert sum(d["resets"] for d in done) == 1     # the torn header was noticed and reset, once
    assert busiest_second([t for d in done for t in d["granted"]]) <= 10
    assert valid(path)


def test_a_corrupt_state_file_is_recovered_by_the_next_process(tmp_path):
    path = tmp_path / "state.db.ratelimit"
    path.write_bytes(os.urandom(5000))
    done = results(start_children(path, 1000, 3, 1))[0]
    assert len(done["granted"]) == 3 and done["resets"] == 1
    assert valid(path)


def valid(path) -> bool:
    raw = Path(path).read_bytes()
    return len(raw) == FILE_SIZE and raw.startswith(ratefile.MAGIC) and \
        ratefile.header_problem(raw[:HEADER_BYTES]) is None


# -- one process, clocks injected ------------------------------------------------------------------

def test_two_limiters_on_one_file_share_one_budget(tmp_path):
    clock = Clock()
    first, second = limiter(tmp_path / "rl", clock), limiter(tmp_path / "rl", clock)
    departures = []
    for i in range(100):
        (first if i % 3 else second).acquire()
        departures.append(clock.now)
    assert busiest_second(departures) == 10
    # 100 requests at 10/s: the first ten spaced 0.1 s, then one second plus the margin after
    # the one ten back
    assert departures[-1] - departures[0] == pytest.approx(9 * (1 + MARGIN) + 0.9, abs=1e-6)


def test_a_limiter_alone_is_as_fast_as_the_limit_allows(tmp_path):
    clock = Clock()
    only = limiter(tmp_path / "rl", clock, per_second=20)
    waits = [only.acquire() for _ in range(20)]
    assert waits[0] == 0 and all(w == pytest.approx(0.05) for w in waits[1:])


def test_a_long_pause_set_by_one_process_is_not_sat_out_by_another_without_the_patience(tmp_path):
    clock = Clock()
    first, second = limiter(tmp_path / "rl", clock), limiter(tmp_path / "rl", clock)
    first.acquire()
    first.pause_for(120)
    with pytest.raises(Paused) as caught:
        second.acquire(patience=5)
    assert caught.value.seconds == pytest.approx(120)
    clock.sleep(117)
    assert second.acquire(patience=5) == pytest.approx(3)     # within patience: waited for
    assert first.acquire(patience=0) == pytest.approx(0.1)    # the spacing, whatever the patience


def test_a_pause_holds_back_every_process_and_is_capped(tmp_path):
    clock = Clock()
    first, second = limiter(tmp_path / "rl", clock, max_pause=30), limiter(tmp_path / "rl", clock,
                                                                           max_pause=30)
    first.acquire()
    first.pause_for(12.5)
    assert second.acquire() == pytest.approx(12.5)
    second.pause_for(float("nan"))
    second.pause_for(1e300)
    assert first.acquire() == pytest.approx(30)
    first.pause_for(-4)
    assert second.acquire() == pytest.approx(0.1)   # only the spacing


@pytest.mark.parametrize("damage", ["garbage", "short", "empty-header", "bad-checksum",
                                    "truncated-ring", "nan"])
def test_a_damaged_file_is_reset_and_holds_everyone_back_one_second(tmp_path, damage):
    clock = Clock()
    path = tmp_path / "rl"
    first = limiter(path, clock)
    for _ in range(12):
        first.acquire()
    raw = bytearray(path.read_bytes())
    if damage == "garbage":
        raw = bytearray(os.urandom(len(raw)))
    elif damage == "short":
        raw = raw[:17]
    elif damage == "empty-header":
        raw[:HEADER_BYTES] = bytes(HEADER_BYTES)
    elif damage == "bad-checksum":
        raw[20] ^= 0x01
    elif damage == "truncated-ring":
        raw = raw[:100]
    elif damage == "nan":
        head = ratefile.HEADER.pack(ratefile.MAGIC, ratefile.RING, 0, 12, math.nan, 0.0, 0.0, 0.0)
        raw[:HEADER_BYTES] = head + ratefile.CRC.pack(zlib.crc32(head))
    path.write_bytes(bytes(raw))
    second = limiter(path, clock)
    before = clock.now
    assert second.acquire() == pytest.approx(1 + MARGIN)
    assert clock.now - before == pytest.approx(1 + MARGIN)
    assert second._bucket.resets == 1 and valid(path)
    for _ in range(30):                               # and it limits as before
        first.acquire()
    assert first._bucket.resets == 0


def test_a_departure_in_the_future_is_taken_for_a_clock_step(tmp_path):
    clock = Clock(100_000.0)
    path = tmp_path / "rl"
    ahead = limiter(path, clock)
    for _ in range(15):
        ahead.acquire()
    clock.now -= 3600                                 # a wall clock stepped back an hour
    behind = limiter(path, clock)
    assert behind.acquire() == pytest.approx(1 + MARGIN)   # not an hour
    assert behind._bucket.resets == 1
    waits = [behind.acquire() for _ in range(9)]
    assert max(waits) == pytest.approx(0.1)


def test_a_removed_file_is_made_again_and_everyone_moves_to_it(tmp_path):
    clock = Clock()
    path = tmp_path / "rl"
    first, second = limiter(path, clock), limiter(path, clock)
    first.acquire()
    second.acquire()
    path.unlink()
    clock.sleep(sharedbucket.REOPEN_CHECK_SECONDS)
    first.acquire()
    second.acquire()
    assert path.exists()
    assert os.fstat(first._bucket._fd).st_ino == os.fstat(second._bucket._fd).st_ino \
        == path.stat().st_ino


def test_a_symlink_in_place_of_the_file_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("not ours")
    path = tmp_path / "rl"
    path.symlink_to(target)
    clock = Clock()
    limiter(path, clock).acquire()
    assert target.read_text() == "not ours"
    assert not path.is_symlink() and valid(path)


def test_a_file_that_cannot_be_used_leaves_the_process_limiting_itself(tmp_path, caplog):
    clock = Clock()
    path = tmp_path / "rl"
    path.mkdir()                                      # a folder where the file should be
    alone = limiter(path, clock)
    departures = []
    for _ in range(25):
        alone.acquire()
        departures.append(clock.now)
    assert busiest_second(departures) == 10
    assert "limits itself alone" in caplog.text
    path.rmdir()
    clock.sleep(sharedbucket.RETRY_FILE_SECONDS)
    alone.acquire()
    assert valid(path)                                # tried again, and shared again


def test_a_missing_folder_is_made(tmp_path):
    clock = Clock()
    path = tmp_path / "not" / "yet" / "rl"
    limiter(path, clock).acquire()
    assert valid(path)
    assert path.stat().st_mode & 0o077 == 0


def test_no_limit_shares_nothing(tmp_path):
    clock = Clock()
    unlimited = limiter(tmp_path / "rl", clock, per_second=0)
    assert [unlimited.acquire() for _ in range(100)] == [0.0] * 100
    unlimited.pause_for(3)
    assert unlimited.acquire() == pytest.approx(3)
    assert not (tmp_path / "rl").exists()


def test_the_host_file_sits_beside_the_journal_named_for_the_boot(tmp_path):
    clock, tag = host_clock()
    made = RateLimiter.for_host(20, str(tmp_path / "state.db"), max_pause=60)
    assert made.shared_path == f"{tmp_path / 'state.db'}.ratelimit-{tag}"
    assert made.max_pause == 60 and made.clock is clock
    if Path(ratefile.BOOT_ID).exists():
        assert tag.startswith("boot-") and clock is time.monotonic


def test_files_of_earlier_boots_are_removed_once_a_day_old(tmp_path):
    state = tmp_path / "state.db"
    old, recent = Path(f"{state}.ratelimit-boot-old"), Path(f"{state}.ratelimit-boot-recent")
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    RateLimiter.for_host(20, str(state))
    assert not old.exists() and recent.exists()


# -- processes take turns: the oldest waiter first --------------------------------------------------

def test_a_process_that_may_go_lets_an_older_waiter_have_the_slot(tmp_path):
    clock = Clock()
    older, younger = limiter(tmp_path / "rl", clock), limiter(tmp_path / "rl", clock)
    older.acquire()                                    # the slot after this one is at +0.1
    assert older._bucket.take() == pytest.approx(0.1)  # refused: the oldest waiter now
    clock.sleep(0.05)
    assert younger._bucket.take() == pytest.approx(0.05)
    clock.sleep(0.05)                                  # the slot: the younger one wakes first
    assert younger._bucket.take() == sharedbucket.DEFER
    assert older._bucket.take() == 0.0                 # and the older one goes
    assert younger._bucket.take() == pytest.approx(0.1)    # refused: the next slot is its
    clock.sleep(0.1)
    assert older._bucket.take() == sharedbucket.DEFER     # (older asks again: now the younger)
    assert younger._bucket.take() == 0.0


def test_an_older_waiter_that_never_comes_back_holds_nobody_for_long(tmp_path):
    clock = Clock()
    gone, alive = limiter(tmp_path / "rl", clock), limiter(tmp_path / "rl", clock)
    gone.acquire()
    gone._bucket.take()                                # refused, and then killed: never asks again
    clock.sleep(0.01)
    before = clock.now
    alive.acquire()                                    # defers a few times, then goes
    assert clock.now - before <= 0.09 + sharedbucket.MAX_DEFER + sharedbucket.DEFER + 1e-9
    clock.sleep(sharedbucket.WAITER_SLACK + 0.1)          # and once its promise is stale ...
    assert alive.acquire() == 0.0                      # ... it is ignored altogether


def test_a_forked_child_is_a_process_of_its_own(tmp_path):
    parent = RateLimiter(1000, shared_path=str(tmp_path / "rl"))
    parent.acquire()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:                                       # the child: its own id, its own file
        try:
            parent.acquire()
            ok = parent._bucket._fd is not None and parent._bucket._pid == os.getpid()
            os.write(writer, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(writer)
    assert os.read(reader, 1) == b"1"
    os.waitpid(pid, 0)
    parent.acquire()


# -- threads ----------------------------------------------------------------------------------------

def test_threads_are_served_in_the_order_they_asked():
    turns = Turns()
    order: list[int] = []
    turns.__enter__()                                 # held: everyone else queues
    threads = []
    for i in range(8):
        thread = threading.Thread(target=lambda i=i: (turns.__enter__(), order.append(i),
                                                      turns.__exit__()))
        thread.start()
        threads.append(thread)
        while len(turns._waiting) < i + 1:            # queued before the next one starts
            time.sleep(0.001)
    turns.__exit__()
    for thread in threads:
        thread.join(timeout=30)
    assert order == list(range(8))


def test_threads_of_one_process_share_the_file_without_exceeding_it(tmp_path):
    path = tmp_path / "rl"
    seen = threading.local()

    def clock() -> float:            # what the limiter last read in this thread: when it let go
        seen.last = time.monotonic()
        return seen.last

    shared = RateLimiter(40, clock=clock, shared_path=str(path))
    granted: list[float] = []
    lock = threading.Lock()

    def work():
        for _ in range(15):
            shared.acquire()
            with lock:
                granted.append(seen.last)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(granted) == 60
    assert busiest_second(granted) <= 40


# -- every request counts ----------------------------------------------------------------------------

class CountingLimiter(RateLimiter):
    def __init__(self):
        super().__init__(0, max_pause=50)
        self.acquired, self.paused = 0, []

    def acquire(self, patience: float = math.inf) -> float:
        self.acquired += 1
        return 0.0

    def pause_for(self, seconds: float) -> None:
        self.paused.append(seconds)


class ScriptedTransport:
    def __init__(self, *replies: Reply):
        self.replies, self.calls = list(replies), []

    def request(self, method, url, **kw):
        self.calls.append((method, url))
        return self.replies.pop(0)


def test_a_limited_transport_waits_for_its_turn_and_pauses_everyone_on_429():
    counting = CountingLimiter()
    inner = ScriptedTransport(Reply(200, {}, b"{}", 0.01), Reply(429, {"Retry-After": "7"}, b"", 0.01),
                              Reply(429, {}, b"", 0.01), Reply(429, {"Retry-After": "999999999"}, b"", 0.01))
    limited = LimitedTransport(inner, counting)
    for _ in range(4):
        limited.request("POST", "https://example.invalid/token")
    assert counting.acquired == 4 and len(inner.calls) == 4
    assert counting.paused == [7.0, 1.0, 50.0]


def test_a_token_request_meeting_a_long_pause_is_not_sent():
    clock = Clock()
    paused = RateLimiter(0, clock=clock, sleep=clock.sleep, max_pause=300)
    paused.pause_for(100)
    inner = ScriptedTransport()
    with pytest.raises(TransientDelivery) as caught:
        LimitedTransport(inner, paused, patience=2).request("POST", "https://example.invalid/token")
    exc = caught.value
    assert exc.status == 429 and exc.maybe_seen is False and exc.retry_after == pytest.approx(100)
    assert "not sent" in str(exc) and inner.calls == []


def settings_for(tmp_path, **delivery):
    from pipeline.config.models import Settings
    return Settings.model_validate({
        "source": {"inbox": str(tmp_path / "in")}, "state": {"path": str(tmp_path / "s" / "state.db")},
        "redox": {"base_url": "http://127.0.0.1:9", "max_requests_per_second": 20,
                  "auth": {"method": "legacy", "api_key": "k", "secret": "s"}},
        "retry": {"backoff_max_seconds": 45},
        "destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "d"}],
        "delivery_check": {"organization_id": "1", "platform_url": "http://127.0.0.1:9/platform",
                           **delivery}})


def test_sends_tokens_uploads_and_look_ups_draw_from_the_host_budget(tmp_path):
    from pipeline import app
    settings = settings_for(tmp_path)
    client = app.make_client(settings)
    assert client.limiter.shared_path.startswith(str(tmp_path / "s" / "state.db.ratelimit-"))
    assert client.limiter.per_second == 20 and client.limiter.max_pause == 45
    assert isinstance(client.tokens.transport, LimitedTransport)
    assert client.tokens.transport.limiter is client.limiter
    assert client.tokens.transport.patience == PAUSE_PATIENCE
    # the reconcile command's own client: its own limiter object, the same file
    platform = app.make_platform_client(settings)
    assert platform.limiter.shared_path == client.limiter.shared_path
    assert isinstance(platform.tokens.transport, LimitedTransport)
    assert platform.tokens.transport.limiter is platform.limiter
    # the service's background passes share the SEND client's limiter and tokens
    background = app.make_background_reconcile(settings, journal(tmp_path), client=client)
    assert background.reconciler.client.limiter is client.limiter
    assert background.reconciler.client.tokens is client.tokens


def test_a_separate_platform_key_draws_from_the_same_budget(tmp_path):
    from pipeline import app
    settings = settings_for(tmp_path, auth={"method": "oauth", "client_id": "c", "key_id": "k",
                                            "private_key_file": str(make_key(tmp_path))})
    client = app.make_client(settings)
    background = app.make_background_reconcile(settings, journal(tmp_path), client=client)
    platform = background.reconciler.client
    assert platform.tokens is not client.tokens and platform.limiter is client.limiter
    assert platform.tokens.transport.limiter is client.limiter


def journal(tmp_path):
    from pipeline.journal import Journal
    return Journal(str(tmp_path / "s" / "state.db"))


def make_key(tmp_path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path
