"""The concurrency controller (pipeline/flow/concurrency.py) and the ``workers`` setting.

A small simulation in virtual time stands in for the runner, the limiter and Redox: the runner
keeps ``target()`` files in flight, the limiter lets one leave every 1/rate seconds, Redox
answers each after its latency, and every answer is observed. Nothing sleeps.
"""

from __future__ import annotations

import heapq
import math
import random

import pytest

from pipeline import config
from pipeline.config.models import Settings
from pipeline.errors import ConfigError
from pipeline.flow.concurrency import AUTO_CEILING, Concurrency, Outcome, outcome_of


def simulate(control: Concurrency, rate: float, latency, answers: int, outcome=lambda n: Outcome.ANSWERED):
    """Run ``answers`` requests; returns (targets seen after each answer, answer times).
    ``latency(n)`` and ``outcome(n)`` describe the n-th request."""
    now, next_slot, started = 0.0, 0.0, 0
    in_flight: list[tuple[float, int, float]] = []      # (answer time, n, latency)
    targets, times = [], []
    while len(times) < answers:
        while len(in_flight) < control.target():
            leaves = max(now, next_slot)                 # the limiter: one per 1/rate
            next_slot = leaves + 1 / rate
            took = latency(started)
            heapq.heappush(in_flight, (leaves + took, started, took))
            started += 1
        now, n, took = heapq.heappop(in_flight)
        control.observe(took, outcome(n))
        targets.append(control.target())
        times.append(now)
    return targets, times


def steady_rate(times: list[float]) -> float:
    """Answers per second between the 20th and the 90th percentile of answer times."""
    lo, hi = int(len(times) * 0.2), int(len(times) * 0.9)
    return (hi - lo) / (times[hi] - times[lo])


def jittered(mean: float, seed: int = 7):
    rng = random.Random(seed)
    return lambda n: mean * rng.uniform(0.7, 1.3)


# -- converges to rate × latency -------------------------------------------------------------------

@pytest.mark.parametrize("latency, expected", [(0.1, 4), (0.25, 8), (1.0, 26)])
def test_it_converges_to_rate_times_latency_with_headroom(latency, expected):
    # ceil(20 × latency × 1.25) + 1
    control = Concurrency(20)
    targets, times = simulate(control, 20, lambda n: latency, 400)
    assert targets[-1] == expected
    assert set(targets[20:]) == {expected}
    assert control.latency == pytest.approx(latency)
    assert steady_rate(times) == pytest.approx(20, rel=0.01)


@pytest.mark.parametrize("latency, expected", [(0.1, 4), (0.25, 8), (1.0, 26)])
def test_it_converges_when_latencies_scatter(latency, expected):
    control = Concurrency(20)
    targets, times = simulate(control, 20, jittered(latency), 1500)
    assert all(abs(t - expected) <= max(1, 0.2 * expected) for t in targets[200:])
    assert control.latency == pytest.approx(latency, rel=0.15)
    assert steady_rate(times) >= 0.95 * 20


def test_a_fixed_pool_of_four_cannot_reach_the_limit_at_one_second():
    """The figure the controller exists for: 4 workers, 1 s away, drain at 4/s."""
    _targets, times = simulate(Concurrency.for_workers(4, 20), 20, lambda n: 1.0, 200)
    assert steady_rate(times) == pytest.approx(4, rel=0.01)


def test_it_follows_a_change_of_latency_both_ways():
    control = Concurrency(20)
    simulate(control, 20, lambda n: 0.1, 200)
    assert control.target() == 4
    simulate(control, 20, lambda n: 1.0, 300)
    assert control.target() == 26
    simulate(control, 20, lambda n: 0.25, 300)
    assert control.target() == 8


def test_one_stalled_request_does_not_send_it_to_the_ceiling():
    control = Concurrency(20)
    for _ in range(50):
        control.observe(0.25, Outcome.ANSWERED)
    control.observe(120.0, Outcome.ANSWERED)           # one SEND that took two minutes
    assert control.target() <= 2 * 8
    for _ in range(30):
        control.observe(0.25, Outcome.ANSWERED)
    assert control.target() == 8


def test_before_any_answer_it_assumes_a_quarter_second():
    assert Concurrency(20).target() == 8
    assert Concurrency(20, initial_latency=1.0).target() == 26


# -- backs off and recovers (AIMD) -----------------------------------------------------------------

def test_a_429_halves_it_once_per_batch_and_answers_bring_it_back():
    control = Concurrency(20)
    simulate(control, 20, lambda n: 1.0, 300)
    assert control.target() == 26
    control.observe(None, Outcome.THROTTLED)
    assert control.target() == 13
    for _ in range(25):                                # the rest of that batch: same event
        control.observe(None, Outcome.THROTTLED)
    assert control.target() == 13
    control.observe(None, Outcome.THROTTLED)           # a new batch throttled too
    assert control.target() == 6
    seen = []
    for _ in range(400):
        control.observe(1.0, Outcome.ANSWERED)
        seen.append(control.target())
    assert seen == sorted(seen)                        # one more file per round of answers
    assert seen[-1] == 26
    assert seen.index(26) > 250                        # additive: it takes a few hundred answers


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, None])
def test_server_errors_and_no_answer_back_off_like_a_429(status):
    control = Concurrency(20)
    simulate(control, 20, lambda n: 1.0, 300)
    control.observe_reply(status, None)
    assert control.target() == 13


@pytest.mark.parametrize("status", [200, 400, 403, 404, 413])
def test_answers_about_the_message_are_not_congestion(status):
    control = Concurrency(20)
    simulate(control, 20, lambda n: 1.0, 300)
    control.observe_reply(status, 1.0)
    assert control.target() == 26


def test_throttled_in_the_simulation_it_settles_lower_and_recovers_after():
    control = Concurrency(20)
    storm = range(300, 400)                            # Redox throttles these requests
    targets, _ = simulate(control, 20, lambda n: 1.0, 1500,
                          outcome=lambda n: Outcome.THROTTLED if n in storm else Outcome.ANSWERED)
    assert min(targets) == 2                           # backed off to the floor
    assert targets[-1] == 26                           # and came back


def test_outcomes_of_statuses():
    assert [outcome_of(s) for s in (200, 201, 400, 404, 413)] == [Outcome.ANSWERED] * 5
    assert outcome_of(429) is Outcome.THROTTLED
    assert [outcome_of(s) for s in (None, 408, 500, 502, 503, 504)] == [Outcome.FAILED] * 6


# -- bounds ----------------------------------------------------------------------------------------

def test_it_never_exceeds_the_ceiling_nor_falls_below_the_floor():
    rng = random.Random(3)
    control = Concurrency(25)
    odd = [None, math.nan, math.inf, -1.0, 0.0, 1e9, 1e-9]
    for _ in range(20_000):
        pick = rng.random()
        latency = rng.choice(odd) if pick < 0.1 else rng.expovariate(1 / rng.choice([0.05, 1, 10]))
        outcome = rng.choice(list(Outcome)) if pick < 0.3 else Outcome.ANSWERED
        control.observe(latency, outcome)
        assert 2 <= control.target() <= AUTO_CEILING
        assert math.isfinite(control.latency) and control.latency >= 0


def test_a_slow_redox_is_capped_at_the_ceiling():
    assert simulate(Concurrency(20), 20, lambda n: 10.0, 300)[0][-1] == AUTO_CEILING
    assert simulate(Concurrency(20, ceiling=10), 20, lambda n: 10.0, 100)[0][-1] == 10


def test_a_fast_redox_keeps_the_floor():
    assert simulate(Concurrency(20), 20, lambda n: 0.001, 200)[0][-1] == 2
    assert Concurrency(20, ceiling=1).target() == 1        # the floor is never above the ceiling


# -- fixed --------------------------------------------------------------------------------------------

def test_a_number_of_workers_is_a_fixed_cap_whatever_happens():
    control = Concurrency.for_workers(4, 20)
    assert (control.fixed, control.ceiling) == (True, 4)
    for latency, outcome in [(1.0, Outcome.ANSWERED), (None, Outcome.THROTTLED),
                             (None, Outcome.FAILED), (0.001, Outcome.ANSWERED), (60.0, Outcome.ANSWERED)]:
        for _ in range(50):
            control.observe(latency, outcome)
            assert control.target() == 4


def test_auto_without_a_rate_limit_is_a_fixed_cap_at_the_ceiling():
    control = Concurrency.for_workers("auto", 0)
    assert control.fixed
    for _ in range(10):
        control.observe(None, Outcome.THROTTLED)
        control.observe(5.0, Outcome.ANSWERED)
    assert control.target() == AUTO_CEILING


def test_auto_adapts_up_to_64():
    control = Concurrency.for_workers("auto", 20)
    assert (control.fixed, control.ceiling) == (False, 64)


# -- the setting ------------------------------------------------------------------------------------

GOOD = """
source: {inbox: in}
redox:
  auth: {method: oauth, client_id: c, key_id: k, private_key_file: key.pem}
destinations: [{ID: af394f14-b34a-464f-8d24-895f370af4c9, Name: d}]
"""


def load(tmp_path, extra: str = "") -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD + extra)
    return config.load(path, environ={})


def test_workers_is_auto_unless_set(tmp_path):
    settings = load(tmp_path)
    assert settings.workers == "auto"
    assert settings.worker_ceiling == AUTO_CEILING
    assert settings.fixed_workers == 4                 # until the runner follows the controller


@pytest.mark.parametrize("text, value", [("auto", "auto"), ("Auto", "auto"), ("'auto'", "auto"),
                                         ("1", 1), ("8", 8), ("'12'", 12), ("256", 256)])
def test_workers_takes_auto_or_a_number(tmp_path, text, value):
    settings = load(tmp_path, f"workers: {text}\n")
    assert settings.workers == value
    if value != "auto":
        assert settings.worker_ceiling == settings.fixed_workers == value


@pytest.mark.parametrize("text", ["0", "257", "-3", "2.5", "many", "true", "null", "[4]", "''"])
def test_anything_else_is_one_clear_problem(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"workers: {text}\n")
    assert caught.value.problems == ["workers: must be auto or a whole number from 1 to 256"]
