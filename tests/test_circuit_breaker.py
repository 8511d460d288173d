"""CircuitBreaker: closed, open after ``threshold`` transient failures in a row, half-open with
one probe once the cooldown has passed; the cooldown doubles (jittered) up to ``max_cooldown``.

The clock is a fake that moves only when told; the cooldown's jitter draw is fixed by replacing
the random module the breaker uses with ``Draws``. Nothing sleeps; thread safety is not tested
here (a timing test would prove nothing).
"""

from __future__ import annotations

import pytest
from fakes import Clock

from pipeline.flow.retry import CircuitBreaker

THRESHOLD, COOLDOWN, MAX_COOLDOWN = 3, 10.0, 35.0


class Draws:
    """The breaker's jitter source: every draw gives ``value`` (settable)."""

    def __init__(self, value: float = 0.0):
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock():
    return Clock(100.0)


@pytest.fixture
def draws():
    return Draws()


@pytest.fixture
def jitter(draws):
    """jitter(x): every cooldown from now on is (0.5 + x/2) of its full length; 0.0 to start."""
    def fix(value: float) -> None:
        draws.value = value
    return fix


@pytest.fixture
def breaker(clock, draws):
    return CircuitBreaker(THRESHOLD, COOLDOWN, MAX_COOLDOWN, clock=clock, rand=draws)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure()


# -- closed -> open ----------------------------------------------------------------------------------

def test_a_new_breaker_is_closed_and_lets_every_attempt_through(breaker):
    assert [breaker.allow() for _ in range(5)] == [True] * 5
    assert breaker.is_open is False
    assert breaker.wait_time() == 0.0


def test_it_opens_after_threshold_transient_failures_in_a_row(breaker):
    fail(breaker, THRESHOLD - 1)
    assert breaker.is_open is False
    assert breaker.allow() is True and breaker.wait_time() == 0.0
    fail(breaker, 1)
    assert breaker.is_open is True
    assert breaker.allow() is False
    assert breaker.wait_time() == 5.0                 # the 10 s cooldown, jittered down to half


def test_a_threshold_of_one_opens_on_the_first_failure(clock, draws):
    breaker = CircuitBreaker(1, COOLDOWN, MAX_COOLDOWN, clock=clock, rand=draws)
    fail(breaker, 1)
    assert breaker.is_open is True and breaker.allow() is False


def test_a_success_resets_the_run_of_failures(breaker):
    fail(breaker, THRESHOLD - 1)
    breaker.record_success()
    fail(breaker, THRESHOLD - 1)
    assert breaker.is_open is False and breaker.allow() is True
    fail(breaker, 1)
    assert breaker.is_open is True


def test_a_success_while_open_closes_it(breaker):
    fail(breaker, THRESHOLD)
    breaker.record_success()                          # an attempt begun before it opened
    assert breaker.is_open is False
    assert breaker.allow() is True and breaker.wait_time() == 0.0


# -- open: the cooldown ---------------------------------------------------------------------------------

@pytest.mark.parametrize("draw, wait", [(0.0, 5.0), (0.5, 7.5), (0.999, 9.995)])
def test_the_cooldown_is_jittered_between_half_and_all_of_it(breaker, jitter, draw, wait):
    jitter(draw)
    fail(breaker, THRESHOLD)
    assert breaker.wait_time() == pytest.approx(wait)


def test_while_open_nothing_passes_until_the_cooldown_has_passed(breaker, clock, jitter):
    jitter(0.5)                                       # open for 7.5 s
    fail(breaker, THRESHOLD)
    assert breaker.wait_time() == 7.5
    clock.advance(7.0)
    assert [breaker.allow() for _ in range(3)] == [False] * 3
    assert breaker.wait_time() == 0.5
    clock.advance(0.5)
    assert breaker.wait_time() == 0.0
    assert breaker.allow() is True


def test_wait_time_counts_down_with_the_clock_and_never_goes_below_zero(breaker, clock):
    fail(breaker, THRESHOLD)                          # open for 5 s
    seen = []
    for _ in range(4):
        seen.append(breaker.wait_time())
        clock.advance(2.0)
    assert seen == [5.0, 3.0, 1.0, 0.0]
    assert breaker.is_open is True                    # still open until a probe succeeds


# -- half-open: one probe ---------------------------------------------------------------------------

def test_half_open_lets_exactly_one_probe_through(breaker, clock):
    fail(breaker, THRESHOLD)
    clock.advance(5.0)
    assert breaker.allow() is True                    # the probe
    assert [breaker.allow() for _ in range(5)] == [False] * 5
    clock.advance(1000.0)                             # however long the probe takes
    assert breaker.allow() is False
    assert breaker.is_open is True


def test_a_successful_probe_closes_it_and_resets_the_cooldown(breaker, clock):
    fail(breaker, THRESHOLD)
    clock.advance(5.0)
    assert breaker.allow() is True
    breaker.record_failure()                          # the first probe fails: 20 s next time
    clock.advance(breaker.wait_time())
    assert breaker.allow() is True
    breaker.record_success()
    assert breaker.is_open is False and breaker.wait_time() == 0.0
    assert [breaker.allow() for _ in range(3)] == [True] * 3
    fail(breaker, THRESHOLD - 1)
    assert breaker.is_open is False                   # a fresh run of failures is needed
    fail(breaker, 1)
    assert breaker.wait_time() == 5.0                 # the base 10 s again, not 40 s


@pytest.mark.parametrize("draw", [0.0, 0.999])
def test_a_failed_probe_reopens_it_with_a_doubled_cooldown_capped_at_max(breaker, clock, jitter, draw):
    jitter(draw)
    factor = 0.5 + draw / 2
    fail(breaker, THRESHOLD)
    waits = [breaker.wait_time()]
    for _ in range(4):
        clock.advance(waits[-1])
        assert breaker.allow() is True                # one probe ...
        assert breaker.allow() is False               # ... and only one
        breaker.record_failure()
        assert breaker.is_open is True and breaker.allow() is False
        waits.append(breaker.wait_time())
    assert waits == pytest.approx([factor * c for c in (10.0, 20.0, 35.0, 35.0, 35.0)])


def test_after_a_failed_probe_the_next_probe_waits_for_the_new_cooldown(breaker, clock):
    fail(breaker, THRESHOLD)
    clock.advance(5.0)
    assert breaker.allow() is True
    breaker.record_failure()                          # reopened for 20 s * 0.5
    clock.advance(9.5)
    assert breaker.allow() is False and breaker.wait_time() == 0.5
    clock.advance(0.5)
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_a_zero_cooldown_probes_at_once_then_grows_from_a_50_ms_floor(clock, draws):
    breaker = CircuitBreaker(1, 0.0, 1.0, clock=clock, rand=draws)
    fail(breaker, 1)
    assert breaker.is_open is True and breaker.wait_time() == 0.0
    assert breaker.allow() is True and breaker.allow() is False
    waits = []
    for _ in range(3):
        breaker.record_failure()
        waits.append(breaker.wait_time())
        clock.advance(waits[-1])
        assert breaker.allow() is True
    assert waits == pytest.approx([0.025, 0.05, 0.1])


def test_a_probe_whose_step_asked_redox_nothing_frees_the_probe_when_settled(breaker, clock):
    """The probe can go to a step that ends without a verdict (a file finished from the
    journal, one rejected before sending): settling it lets the next probe through, instead of
    keeping the breaker open for ever."""
    fail(breaker, THRESHOLD)
    clock.advance(COOLDOWN)
    probe, other = object(), object()
    assert breaker.allow(probe) is True
    breaker.settle(other)                             # someone else's step: changes nothing
    assert breaker.allow(other) is False
    breaker.settle(probe)
    assert breaker.allow(other) is True               # the next probe
    assert breaker.is_open is True                    # still no verdict: not closed
