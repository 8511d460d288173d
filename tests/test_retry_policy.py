"""RetryPolicy: when a file has had its last attempt, and how long to wait before the next one.

The wait after the n-th failed attempt is full jitter under an exponential ceiling,
``rand * min(cap, initial * 2**(n-1))``; a server's Retry-After is a floor, itself capped at
``cap``. The random draw is an argument, so every value here is exact.
"""

from __future__ import annotations

import pytest

from pipeline.flow.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=5, initial=1.0, cap=300.0)
DRAWS = (0.0, 0.5, 0.999)

# attempt number -> the ceiling of its wait under POLICY: doubling from 1 s until the 300 s cap
CEILINGS = {1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0, 5: 16.0, 6: 32.0, 7: 64.0, 8: 128.0, 9: 256.0,
            10: 300.0, 11: 300.0, 12: 300.0, 30: 300.0, 64: 300.0, 1000: 300.0, 1024: 300.0}


# -- exhausted -----------------------------------------------------------------------------------

def test_exhausted_once_max_attempts_have_been_made_and_not_before():
    assert [POLICY.exhausted(n) for n in range(8)] == [False] * 5 + [True] * 3


def test_a_single_attempt_policy_is_exhausted_after_the_first():
    single = RetryPolicy(max_attempts=1)
    assert single.exhausted(0) is False
    assert single.exhausted(1) is True


def test_the_defaults_are_ten_attempts_one_second_doubling_to_five_minutes():
    default = RetryPolicy()
    assert (default.max_attempts, default.initial, default.cap) == (10, 1.0, 300.0)
    assert default.exhausted(9) is False and default.exhausted(10) is True


# -- delay: full jitter under a doubling ceiling -------------------------------------------------

@pytest.mark.parametrize("attempt", sorted(CEILINGS))
def test_delay_is_the_draw_times_the_attempts_ceiling(attempt):
    ceiling = CEILINGS[attempt]
    assert POLICY.delay(attempt, 0.0) == 0.0
    assert POLICY.delay(attempt, 0.5) == ceiling / 2
    assert POLICY.delay(attempt, 0.999) == pytest.approx(0.999 * ceiling)
    assert POLICY.delay(attempt, 0.999) < ceiling


def test_delay_never_exceeds_the_ceiling_and_the_ceiling_never_shrinks():
    for rand in DRAWS:
        waits = [POLICY.delay(n, rand) for n in range(1, 40)]
        assert waits == sorted(waits)
        assert all(0.0 <= w <= min(300.0, 2 ** (n - 1)) for n, w in enumerate(waits, start=1))
    assert POLICY.delay(39, 0.999) == pytest.approx(299.7)


def test_attempt_zero_waits_like_the_first():
    assert POLICY.delay(0, 0.5) == POLICY.delay(1, 0.5) == 0.5


def test_sub_second_steps_double_up_to_their_cap():
    fast = RetryPolicy(max_attempts=4, initial=0.01, cap=0.05)
    assert [fast.delay(n, 0.5) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.005, 0.01, 0.02, 0.025, 0.025])


def test_a_cap_smaller_than_initial_caps_even_the_first_wait():
    odd = RetryPolicy(max_attempts=5, initial=10.0, cap=3.0)
    assert [odd.delay(n, 0.5) for n in (1, 2, 3)] == [1.5, 1.5, 1.5]
    assert odd.delay(1, 0.999) == pytest.approx(2.997)
    assert odd.delay(1, 0.0) == 0.0
    assert odd.delay(1, 0.0, retry_after=60) == 3.0


def test_a_zero_cap_means_no_waiting_at_all():
    now = RetryPolicy(max_attempts=5, initial=1.0, cap=0.0)
    assert [now.delay(n, 0.999) for n in (1, 5, 50)] == [0.0, 0.0, 0.0]
    assert now.delay(3, 0.5, retry_after=30) == 0.0


# -- Retry-After ---------------------------------------------------------------------------------

def test_retry_after_is_a_floor_above_the_jitter():
    assert POLICY.delay(1, 0.0, retry_after=7.0) == 7.0
    assert POLICY.delay(1, 0.999, retry_after=7.0) == 7.0
    assert POLICY.delay(3, 0.5, retry_after=2.5) == 2.5          # jitter 2.0 is below it
    assert POLICY.delay(1, 0.0, retry_after=0.25) == 0.25        # a sub-second one counts too


def test_retry_after_does_not_lower_a_longer_jittered_wait():
    assert POLICY.delay(5, 0.5, retry_after=3.0) == 8.0
    assert POLICY.delay(9, 0.999, retry_after=7.0) == pytest.approx(0.999 * 256)


@pytest.mark.parametrize("retry_after", [300.0, 301.0, 86_400.0, 1e12])
def test_retry_after_is_capped_at_cap(retry_after):
    assert POLICY.delay(1, 0.0, retry_after=retry_after) == 300.0
    assert POLICY.delay(20, 0.999, retry_after=retry_after) == 300.0


@pytest.mark.parametrize("retry_after", [None, 0, 0.0, -5.0])
def test_retry_after_of_none_zero_or_less_is_ignored(retry_after):
    assert POLICY.delay(3, 0.5, retry_after=retry_after) == 2.0
    assert POLICY.delay(3, 0.0, retry_after=retry_after) == 0.0
    assert POLICY.delay(20, 0.999, retry_after=retry_after) == pytest.approx(299.7)


# -- huge attempt numbers ------------------------------------------------------------------------

def test_attempt_numbers_while_two_to_the_n_still_fits_a_float_are_capped():
    assert POLICY.delay(1024, 0.5) == 150.0          # 2**1023: the largest power a float holds


@pytest.mark.parametrize("attempt", [1025, 10_001])
@pytest.mark.parametrize("initial", [1.0, 0.0])
def test_huge_attempt_numbers_are_capped_at_cap_not_an_overflow(attempt, initial):
    # reachable: max_attempts has no upper bound in the config, and a file still retried after
    # 1024 failures (a day or two of an outage at the default 300 s cap) must wait, not crash
    policy = RetryPolicy(max_attempts=100_000, initial=initial, cap=300.0)
    expected = 150.0 if initial else 0.0
    assert policy.delay(attempt, 0.5) == expected
    assert policy.delay(attempt, 0.0, retry_after=60.0) == 60.0
