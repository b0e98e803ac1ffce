"""``experiments.timing``: the statistics every benchmark reports."""

import time

import pytest

from experiments.timing import Clock, interleaved_medians, median_seconds


def test_median_of_the_timed_calls_after_an_untimed_warm_up():
    calls, durations = [], iter([0.0] * 1000)

    def fn():
        calls.append(time.perf_counter())
        time.sleep(next(durations))

    assert median_seconds(fn, 3) < 0.01 and len(calls) == 3
    calls.clear()
    median_seconds(fn, 3, warmup_s=0.05)
    assert len(calls) > 3 and calls[-3] - calls[0] >= 0.05  # warm-up calls came first, for ≥ 50 ms

    sleeps = iter([0.001, 0.030, 0.002])
    # the median, 2 ms (the mean would be 11 ms)
    assert median_seconds(lambda: time.sleep(next(sleeps)), 3) == pytest.approx(0.002, abs=0.005)


@pytest.mark.parametrize("kwargs, match", [({"repeats": 0}, "`repeats`"), ({"repeats": 1, "warmup_s": -1.0},
                                                                             "`warmup_s`")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        median_seconds(lambda: None, **kwargs)


def test_interleaved_medians_alternate_the_calls():
    order = []
    sleeps = {"a": iter([0.001, 0.020, 0.001]), "b": iter([0.010, 0.010, 0.030])}

    def make(name):
        def fn():
            order.append(name)
            time.sleep(next(sleeps[name]))
        return fn

    a, b = interleaved_medians((make("a"), make("b")), 3)
    assert order == ["a", "b"] * 3
    assert a == pytest.approx(0.001, abs=0.005) and b == pytest.approx(0.010, abs=0.005)
    with pytest.raises(ValueError, match="`repeats`"):
        interleaved_medians((make("a"),), 0)


def test_clock_measures_wall_and_cpu_seconds():
    with Clock() as idle:
        time.sleep(0.05)
    with Clock() as busy:
        sum(i * i for i in range(2_000_000))
    assert idle.wall >= 0.05 and idle.cpu < 0.5 * idle.wall  # sleeping costs wall time, not CPU time
    assert 0.02 < busy.cpu <= busy.wall + 0.01  # one thread busy: CPU time accrues, never faster than the wall
